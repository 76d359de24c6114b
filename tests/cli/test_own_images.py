"""`keras-vae train --dataset FOLDER` end to end: a colour folder of two classes trained, sampled, exported (SavedModel
and TFLite), served, opened in the studio; bad folders refused by name before anything is written."""

import json
import os
import subprocess
import sys
import threading
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_vae.cli import main
from tests.training.test_image_folder import _folder_case, write_images

pytestmark = pytest.mark.timeout(600)
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SMALL = ["--architecture", "conv", "--latent-dim", "4", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8",
         "--strategy", "default", "--set", "image_grid_size=4", "--set", "model.filters=[4, 8]",
         "--set", "model.dense_units=16"]


@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    """Two classes of colour images, PNG and JPEG, of two sizes; a text file beside them."""
    root = tmp_path_factory.mktemp("own") / "pets"
    write_images(root / "cats", 12, size=(24, 20), formats=("png", "jpg"))
    write_images(root / "dogs", 12, size=(18, 18), formats=("jpg", "png"), seed=1)
    (root / "dogs" / "list.txt").write_text("not an image")
    return str(root)


@pytest.fixture(scope="module")
def run(pets, tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("runs") / "pets")
    assert main(["train", "--dataset", pets, "--image-size", "16", "--variant", "cvae", "--run-dir", run_dir,
                 *SMALL]) == 0
    return run_dir


def test_the_run_records_the_folder_options_and_the_colour_likelihood(run, pets):
    from keras_vae.run_config import read_run_config

    config = read_run_config(run)
    assert config["dataset"] == pets and config["image_size"] == [16, 16] and config["image_shape"] == [16, 16, 3]
    assert config["model"]["likelihood"] == "gaussian" and config["model"]["num_classes"] == 2
    assert os.path.isfile(os.path.join(run, "model.keras"))


def test_the_printout_names_the_likelihood_and_the_ignored_file(pets, tmp_path, capsys):
    assert main(["train", "--dataset", pets, "--image-size", "16", "--run-dir", str(tmp_path / "r"), *SMALL,
                 "--set", "verbose=2"]) == 0
    out = capsys.readouterr().out
    assert "likelihood gaussian: the images are colour (3 channels)" in out
    assert "24 images, 2 classes" in out and "1 non-image files ignored" in out


def test_image_folder_is_what_the_cli_trains_on(run, pets):
    from keras_vae.training.config import load_config
    from keras_vae.training.data import image_folder
    from keras_vae.training.strategies import make_strategy
    from keras_vae.training.train import _datasets

    config = load_config(os.path.join(run, "config.yaml"))
    trained, valid = _datasets(config, make_strategy("default"), with_labels=True)
    ours = image_folder(pets, image_size=16, batch_size=8, with_labels=True, shuffle=True, seed=config.seed)
    for (x, y), (a, b) in zip(trained.take(4), ours.take(4)):
        np.testing.assert_array_equal(x.numpy(), a.numpy())
        np.testing.assert_array_equal(y.numpy(), b.numpy())
    held_out = image_folder(pets, image_size=16, batch_size=8, with_labels=True, split="valid")
    np.testing.assert_array_equal(next(iter(valid))[0].numpy(), next(iter(held_out))[0].numpy())


def test_samples_are_in_colour(run, tmp_path):
    out = str(tmp_path / "grid.png")
    assert main(["sample", run, "--out", out, "-n", "4", "--label", "1"]) == 0
    grid = np.asarray(Image.open(out).convert("RGB"), np.float32)
    assert np.abs(grid[..., 0] - grid[..., 1]).max() > 1  # channels differ: colour, not grey


def test_export_serve_and_tflite(run, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from keras_vae.export.server import make_server

    base = str(tmp_path / "models")
    assert main(["export", run, "--name", "pets", "--base-dir", base, "--tflite", "--with-encoder"]) == 0
    signatures = tf.saved_model.load(os.path.join(base, "pets", "1")).signatures
    z = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    images = signatures["serving_default"](z=tf.constant(z), label=tf.constant([0, 1]))["images"].numpy()
    assert images.shape == (2, 16, 16, 3) and np.isfinite(images).all()

    tflite = os.path.join(base, "pets", "tflite", "1", "float32.tflite")
    runner = Interpreter(model_path=tflite).get_signature_runner("sample")
    drawn = runner(num_samples=np.array(2, np.int32), temperature=np.array(1.0, np.float32), seed=np.array(7),
                   label=np.array([0, 1], np.int32))
    assert drawn["images"].shape == (2, 16, 16, 3) and np.isfinite(drawn["images"]).all()

    server = make_server(os.path.join(base, "pets"), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        body = json.dumps({"inputs": {"z": z.tolist(), "label": [0, 1]}}).encode()
        request = urllib.request.Request(f"http://{host}:{port}/v1/models/pets:predict", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            served = np.asarray(json.loads(response.read())["outputs"])  # one output: unnamed
        np.testing.assert_allclose(served, images, atol=1e-5)
    finally:
        server.shutdown()
        server.server_close()


def test_the_studio_names_classes_by_their_folders(run, pets, tmp_path):
    from keras_vae.cli.studio import compute_attributes
    from keras_vae.export.layout import latest_version_dir
    from keras_vae.export.studio import prepare_model, studio_document
    from keras_vae.training.run_dir import data_source

    version_dir = latest_version_dir(prepare_model(run))
    _, data_dir, source = data_source(run)
    assert source["image_size"] == [16, 16]
    compute_attributes(version_dir, data_dir, count=20, source_options=source, log=lambda line: None)
    doc = studio_document(version_dir, "pets")
    assert doc["class_names"] == ["cats", "dogs"]
    assert {"cats", "dogs"} <= {attribute["name"] for attribute in doc["attributes"]}


def test_plots_name_classes_by_their_folders(run, tmp_path):
    import keras_vae
    from keras_vae.training.data import load_examples
    from keras_vae.training.plots import latent_scatter_picture
    from keras_vae.training.run_dir import data_source

    out = str(tmp_path / "scatter.png")
    assert main(["plot", run, "--kind", "latent-scatter", "--num", "16", "--split", "train", "--out", out]) == 0
    assert Image.open(out).size[0] > 100
    dataset, data_dir, source = data_source(run)
    images, labels = load_examples(dataset, "train", data_dir, count=16, with_labels=True, source_options=source)
    figure = latent_scatter_picture(keras_vae.load_vae(run, compile=False), images, labels,
                                    label_names=("cats", "dogs"))
    assert sorted(t.get_text() for t in figure.axes[0].get_legend().get_texts()) == ["cats", "dogs"]


def test_sample_quality_says_there_is_no_feature_network(run, capsys):
    assert main(["evaluate", run, "--sample-quality", "--max-examples", "4"]) == 2
    err = capsys.readouterr().err
    assert "No feature network for dataset" in err and "a feature network of your own" in err
    assert "Traceback" not in err


BAD = {  # case -> (extra flags, message)
    "missing": ([], "no such folder"),
    "no images": ([], "holds no images"),
    "truncated": ([], "Unreadable image"),
    "mixed sizes": ([], "holds images of 2 sizes"),
    "tiny": ([], "at least 8 pixels a side"),
    "single class": (["--variant", "cvae"], "needs at least 2 classes"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_folders_are_refused_by_name_and_nothing_is_written(tmp_path, capsys, case):
    if case == "single class":
        path = str(tmp_path / "one")
        write_images(os.path.join(path, "only"), 6)
        culprit = path
    else:
        path, culprit = _folder_case(tmp_path, case)
    flags, message = BAD[case]
    run_dir = tmp_path / "run"
    assert main(["train", "--dataset", path, "--run-dir", str(run_dir), *SMALL, *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and (culprit in err or os.path.abspath(culprit) in err), err
    assert "Traceback" not in err and not run_dir.exists()


def test_skip_bad_images_trains_and_counts(tmp_path, capsys):
    path, bad = _folder_case(tmp_path, "truncated")
    assert main(["train", "--dataset", path, "--run-dir", str(tmp_path / "run"), *SMALL, "--skip-bad-images",
                 "--set", "verbose=2"]) == 0
    assert "1 unreadable images skipped" in capsys.readouterr().out


def test_folder_options_with_a_named_dataset_and_a_missing_folder_in_a_real_process(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    for flags, message in ((["--dataset", "mnist", "--image-size", "32"], "image_size applies to a folder"),
                           (["--dataset", "./no_such_pictures"], "--dataset './no_such_pictures': no such folder"),
                           (["--dataset", "mnsit"], "or a folder of images, or tfds:NAME")):
        done = subprocess.run([sys.executable, "-m", "keras_vae.cli", "train", *flags, "--run-dir",
                               str(tmp_path / "run")], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert not (tmp_path / "run").exists()
