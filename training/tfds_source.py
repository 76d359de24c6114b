"""Any tensorflow-datasets image dataset, named ``tfds:NAME[/CONFIG][:SPLIT]``, and the offline check every tfds read
passes first.

``SPLIT`` is the split trained on (default ``train``). The valid split is the dataset's ``validation`` split when it
has one and no ``SPLIT`` was given, else the last ``valid_fraction`` of the training split; the test split is the
dataset's ``test`` split (a dataset without one has none). The image feature is the dataset's one `Image` feature (or
``image_key``); labels are its ``label`` `ClassLabel` (or its only one). Images come as decoded uint8 ``[H, W, C]``;
resizing and channel conversion are the caller's (``training.data``).

A dataset that is neither prepared in the data directory nor downloadable fails at once: a network probe of a few
seconds replaces tensorflow-datasets' minutes of download retries.

Example:

>>> spec = parse("tfds:oxford_flowers102:train")
>>> spec.name, spec.split
('oxford_flowers102', 'train')
>>> facts = tfds_facts("tfds:tiny_pics", data_dir="/data/tfds")     # reads dataset_info.json only
>>> facts.image_shape, facts.class_names, facts.split_sizes
((12, 10, 3), ('cat', 'dog'), {'train': 18, 'valid': 2, 'test': 6})
>>> ds = tfds_examples("tfds:tiny_pics", "valid", data_dir="/data/tfds")   # (uint8 image, int32 label)
"""

import dataclasses
import difflib
import functools
import re
import socket
import threading

PREFIX = "tfds:"
# Where tensorflow-datasets downloads from: reachable means a download may be tried.
_PROBE_HOSTS = (("storage.googleapis.com", 443), ("www.tensorflow.org", 443))
PROBE_SECONDS = 3.0
_NAME = re.compile(r"^[a-z0-9_]+(/[A-Za-z0-9_.\-]+)?$")
_VALID_SPLITS = ("validation", "valid", "val")


@dataclasses.dataclass(frozen=True)
class TfdsSpec:
    """A parsed ``tfds:NAME[/CONFIG][:SPLIT]``; ``split`` is None when the training split was not given."""

    name: str
    config: str | None
    split: str | None

    @property
    def builder_name(self):
        return self.name if self.config is None else f"{self.name}/{self.config}"

    @property
    def text(self):
        return PREFIX + self.builder_name + ("" if self.split is None else f":{self.split}")


@dataclasses.dataclass(frozen=True)
class TfdsFacts:
    """What a prepared tfds dataset holds, read from its ``dataset_info.json``."""

    spec: TfdsSpec
    image_key: str
    label_key: str | None
    image_shape: tuple  # (H, W, C); H and W are None when the images' sizes vary
    num_classes: int | None
    class_names: tuple | None
    split_sizes: dict  # train / valid / test -> examples (test 0 when the dataset has no test split)
    tfds_splits: dict  # train / valid / test -> the tfds split string read (test None when absent)


def is_tfds(dataset):
    """Whether ``dataset`` names a tfds dataset by the ``tfds:`` prefix."""
    return isinstance(dataset, str) and dataset.startswith(PREFIX)


def parse(dataset):
    """The `TfdsSpec` of ``tfds:NAME[/CONFIG][:SPLIT]``; ValueError naming the string when malformed."""
    body = dataset[len(PREFIX):] if is_tfds(dataset) else dataset
    name_part, _, split = body.partition(":")
    if not _NAME.match(name_part) or (split == "" and body.endswith(":")):
        raise ValueError(f"--dataset {dataset!r}: expected tfds:NAME, tfds:NAME/CONFIG or tfds:NAME[/CONFIG]:SPLIT "
                         "(e.g. tfds:oxford_flowers102:train).")
    name, _, config = name_part.partition("/")
    return TfdsSpec(name, config or None, split or None)


def network_reachable(timeout=PROBE_SECONDS):
    """Whether a tensorflow-datasets download host answers within ``timeout`` seconds (DNS included)."""
    answered = threading.Event()

    def probe():
        for host in _PROBE_HOSTS:
            try:
                with socket.create_connection(host, timeout=timeout):
                    answered.set()
                    return
            except OSError:
                continue

    thread = threading.Thread(target=probe, daemon=True)  # a hung DNS lookup is left behind, not waited for
    thread.start()
    thread.join(timeout)
    return answered.is_set()


def _prepare_hint(builder_name, data_dir):
    where = data_dir or "DIR"
    return (f"To prepare it offline: on a machine with a network run `tfds build {builder_name} --data_dir {where}` "
            f"(or tensorflow_datasets.builder({builder_name!r}, data_dir={where!r}).download_and_prepare()), "
            f"copy {where} here and pass --data-dir {where}.")


def _unknown(name):
    import tensorflow_datasets as tfds

    close = difflib.get_close_matches(name, tfds.list_builders(), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else " `tfds.list_builders()` lists them."
    return f"tensorflow-datasets has no dataset {name!r}.{hint}"


def builder(spec_or_name, data_dir=None):
    """The tfds builder of a `TfdsSpec` or a dataset name, prepared in ``data_dir`` or downloaded and prepared there
    when a network answers; else a `DataUnavailableError` within seconds, naming the dataset, the data directory and
    how to prepare it offline."""
    import tensorflow_datasets as tfds

    from keras_vae.training.local_files import DataUnavailableError

    builder_name = spec_or_name.builder_name if isinstance(spec_or_name, TfdsSpec) else spec_or_name
    try:
        found = tfds.builder(builder_name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise DataUnavailableError(_unknown(builder_name.split("/")[0])) from None
    except ValueError as err:  # an unknown config
        raise DataUnavailableError(f"tensorflow-datasets: {builder_name!r}: {str(err).splitlines()[0]}") from None
    if found.is_prepared():
        return found
    if not network_reachable():
        raise DataUnavailableError(
            f"Dataset {builder_name!r} is not prepared in data dir {str(found.data_dir_root)!r} and no network "
            f"answers to download it. {_prepare_hint(builder_name, data_dir)}")
    try:
        found.download_and_prepare()
    except Exception as err:  # tfds raises many kinds (network, GCS, manual downloads); all mean "unavailable"
        first = str(err).splitlines()[0] if str(err) else ""
        raise DataUnavailableError(f"tensorflow-datasets could not download and prepare {builder_name!r} in "
                                   f"{str(found.data_dir_root)!r}: {type(err).__name__}: {first}. "
                                   f"{_prepare_hint(builder_name, data_dir)}") from None
    return found


def _feature_keys(features, image_key, text):
    import tensorflow_datasets as tfds

    images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    if image_key is not None:
        if image_key not in images:
            raise ValueError(f"--image-key {image_key!r}: {text} has no image feature of that name; its image "
                             f"features: {', '.join(images) or 'none'}.")
    elif len(images) == 1:
        image_key = images[0]
    else:
        raise ValueError(f"{text} has {'no' if not images else 'several'} image features"
                         f"{'' if not images else ' (' + ', '.join(images) + ')'}; "
                         f"{'it cannot be trained on.' if not images else 'choose one with --image-key.'}")
    labels = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
    label_key = "label" if "label" in labels else (labels[0] if len(labels) == 1 else None)
    return image_key, label_key


def _splits(spec, available, valid_fraction, sizes_of):
    train = spec.split or "train"
    if spec.split is None and "train" not in available:
        raise ValueError(f"{spec.text} has no 'train' split; name one: {spec.text}:SPLIT with SPLIT one of "
                         f"{', '.join(available)}.")
    valid = next((s for s in _VALID_SPLITS if s in available), None) if spec.split is None else None
    if valid is None:  # carve the last valid_fraction of the training split, by example count
        total = sizes_of(train)
        held = max(1, round(total * valid_fraction))
        if total - held < 1:
            raise ValueError(f"{spec.text}: split {train!r} holds {total} examples, too few to hold out "
                             f"valid_fraction {valid_fraction}.")
        base = train if "[" not in train else None
        if base is None:
            raise ValueError(f"{spec.text}: a sliced split cannot be carved further; give the plain split name "
                             "and --valid-fraction.")
        train, valid = f"{base}[:{total - held}]", f"{base}[{total - held}:]"
    return {"train": train, "valid": valid, "test": "test" if "test" in available else None}


@functools.lru_cache(maxsize=16)
def tfds_facts(dataset, data_dir=None, image_key=None, valid_fraction=0.1):
    """The `TfdsFacts` of ``tfds:...`` ``dataset`` (prepares it first; see `builder`)."""
    spec = parse(dataset)
    found = builder(spec, data_dir)
    info = found.info
    image_key, label_key = _feature_keys(info.features, image_key, spec.text)
    available = list(info.splits.keys())

    def sizes_of(split):
        try:
            return info.splits[split].num_examples
        except (KeyError, ValueError) as err:
            raise ValueError(f"{spec.text}: no split {split!r}; its splits: {', '.join(available)}.") from err

    tfds_splits = _splits(spec, available, valid_fraction, sizes_of)
    image = info.features[image_key]
    if str(getattr(image.dtype, "name", image.dtype)) != "uint8":
        raise ValueError(f"{spec.text}: image feature {image_key!r} holds {image.dtype} pixels; only 8-bit images "
                         "are read.")
    label = info.features[label_key] if label_key else None
    return TfdsFacts(
        spec=spec,
        image_key=image_key,
        label_key=label_key,
        image_shape=tuple(image.shape),
        num_classes=label.num_classes if label else None,
        class_names=tuple(label.names) if label else None,
        split_sizes={k: (sizes_of(v) if v else 0) for k, v in tfds_splits.items()},
        tfds_splits=tfds_splits,
    )


def tfds_examples(dataset, split, data_dir=None, image_key=None, valid_fraction=0.1, shuffle_files=False):
    """A `tf.data.Dataset` of ``(uint8 image [H, W, C], int32 label or None)`` of our ``split`` of ``dataset``."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from keras_vae.training.local_files import DataUnavailableError

    facts = tfds_facts(dataset, data_dir, image_key, valid_fraction)
    tfds_split = facts.tfds_splits[split]
    if tfds_split is None:
        raise DataUnavailableError(f"{facts.spec.text} has no {split!r} split (its splits: "
                                   f"{', '.join(s for s in facts.tfds_splits.values() if s)}).")
    ds = tfds.load(facts.spec.builder_name, split=tfds_split, data_dir=data_dir, download=False,
                   shuffle_files=shuffle_files)

    def convert(example):
        label = example[facts.label_key] if facts.label_key else None
        return example[facts.image_key], None if label is None else tf.cast(label, tf.int32)

    return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
