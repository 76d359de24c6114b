"""training.tfds_source: any tfds image dataset from a locally prepared data dir, and the fast offline failure."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_vae.training import tfds_source
from keras_vae.training.data import DataUnavailableError


def _store(data_dir, name, splits, shape=(12, 10, 3), labels=("cat", "dog"), extra_image=False):
    """A tfds dataset prepared in ``data_dir`` by tensorflow-datasets' own ad-hoc builder."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.dataset_builders import adhoc_builder

    features = {"image": tfds.features.Image(shape=shape)}
    if labels:
        features["label"] = tfds.features.ClassLabel(names=list(labels))
    if extra_image:
        features["mask"] = tfds.features.Image(shape=shape)
    rng = np.random.default_rng(0)

    def examples(n):
        for i in range(n):
            example = {"image": rng.integers(0, 256, shape, dtype=np.uint8)}
            if labels:
                example["label"] = i % len(labels)
            if extra_image:
                example["mask"] = example["image"]
            yield i, example

    adhoc_builder.store_as_tfds_dataset(name=name, version="1.0.0", features=tfds.features.FeaturesDict(features),
                                        split_datasets={k: list(examples(n)) for k, n in splits.items()},
                                        data_dir=str(data_dir))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    _store(root, "tiny_pics", {"train": 20, "test": 6})
    _store(root, "tiny_valid", {"train": 8, "validation": 4}, shape=(9, 9, 1), labels=None)
    _store(root, "two_images", {"train": 4}, extra_image=True)
    return str(root)


def test_parse():
    spec = tfds_source.parse("tfds:oxford_flowers102/config_a:train[:50%]")
    assert (spec.name, spec.config, spec.split) == ("oxford_flowers102", "config_a", "train[:50%]")
    assert spec.text == "tfds:oxford_flowers102/config_a:train[:50%]"
    assert tfds_source.parse("tfds:mnist").split is None
    for bad in ("tfds:", "tfds:Bad Name", "tfds:mnist:"):
        with pytest.raises(ValueError, match="expected tfds:NAME"):
            tfds_source.parse(bad)


def test_facts_carve_valid_from_train(data_dir):
    facts = tfds_source.tfds_facts("tfds:tiny_pics", data_dir)
    assert facts.image_shape == (12, 10, 3)
    assert facts.class_names == ("cat", "dog") and facts.num_classes == 2
    assert facts.split_sizes == {"train": 18, "valid": 2, "test": 6}
    assert facts.tfds_splits == {"train": "train[:18]", "valid": "train[18:]", "test": "test"}


def test_facts_use_validation_split_and_no_labels(data_dir):
    facts = tfds_source.tfds_facts("tfds:tiny_valid", data_dir)
    assert facts.tfds_splits["valid"] == "validation" and facts.split_sizes == {"train": 8, "valid": 4, "test": 0}
    assert facts.label_key is None and facts.num_classes is None
    with pytest.raises(DataUnavailableError, match="no 'test' split"):
        tfds_source.tfds_examples("tfds:tiny_valid", "test", data_dir)


def test_examples_are_the_prepared_images(data_dir):
    import tensorflow_datasets as tfds

    examples = list(tfds_source.tfds_examples("tfds:tiny_pics", "valid", data_dir).as_numpy_iterator())
    direct = list(tfds.load("tiny_pics", split="train[18:]", data_dir=data_dir).as_numpy_iterator())
    assert len(examples) == 2
    for (image, label), raw in zip(examples, direct):
        assert image.dtype == np.uint8 and image.shape == (12, 10, 3)
        np.testing.assert_array_equal(image, raw["image"])
        assert label == raw["label"]


def test_image_key_is_required_when_several(data_dir):
    with pytest.raises(ValueError, match="several image features.*--image-key"):
        tfds_source.tfds_facts("tfds:two_images", data_dir)
    assert tfds_source.tfds_facts("tfds:two_images", data_dir, image_key="mask").image_key == "mask"
    with pytest.raises(ValueError, match="--image-key 'nope'"):
        tfds_source.tfds_facts("tfds:two_images", data_dir, image_key="nope")


def test_named_split_and_unknown_split(data_dir):
    facts = tfds_source.tfds_facts("tfds:tiny_pics:test", data_dir)
    assert facts.tfds_splits["train"] == "test[:5]" and facts.split_sizes["valid"] == 1
    with pytest.raises(ValueError, match="no split 'nope'"):
        tfds_source.tfds_facts("tfds:tiny_pics:nope", data_dir)


def test_unknown_dataset_suggests_names(tmp_path):
    with pytest.raises(DataUnavailableError, match="no dataset 'oxford_flower102'.*oxford_flowers102"):
        tfds_source.builder("oxford_flower102", str(tmp_path))


@pytest.mark.skipif(tfds_source.network_reachable(), reason="checks the offline failure; this machine is online")
def test_offline_unprepared_dataset_fails_fast_with_one_line(tmp_path):
    """The real command: one line naming the dataset, the data dir and how to prepare it; no traceback; < 10 s."""
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", "from keras_vae.training import tfds_source as t; "
         f"t.tfds_facts('tfds:oxford_flowers102', {str(tmp_path)!r})"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert "'oxford_flowers102' is not prepared in data dir" in message and str(tmp_path) in message
    assert "tfds build oxford_flowers102" in message
    # The 10-second budget is for the lookup, TensorFlow already started (as in any command that trains).
    lookup = subprocess.run(
        [sys.executable, "-c", "import time, tensorflow, tensorflow_datasets; from keras_vae.training import tfds_source as t\n"
         "start = time.monotonic()\ntry:\n    t.builder('oxford_flowers102', None)\nexcept Exception as e:\n"
         "    print(round(time.monotonic() - start, 2), type(e).__name__)"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "TFDS_DATA_DIR": str(tmp_path)})
    seconds, kind = lookup.stdout.split()
    assert kind == "DataUnavailableError" and float(seconds) < 10, lookup.stdout + lookup.stderr
    assert time.monotonic() - start < 120
