"""Tiny trained VAEs and their exports, built once per test session (per xdist worker) and shared."""

import os
import shutil
import threading

import keras
import numpy as np
import pytest

import keras_vae
from keras_vae.export.saved_model import export_model

IMAGE_SHAPE = (16, 16, 1)
LATENT_DIM = 4


def bars(n, seed=0):
    """``n`` 16x16 binary images holding one horizontal (label 0) or vertical (label 1) bar, and the labels."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, *IMAGE_SHAPE), np.float32)
    labels = rng.integers(0, 2, n).astype(np.int32)
    for image, label, start, width in zip(images, labels, rng.integers(0, 12, n), rng.integers(2, 5, n)):
        if label == 0:
            image[start : start + width, :, 0] = 1.0
        else:
            image[:, start : start + width, 0] = 1.0
    return images, labels


def _fit(model, *data, epochs=8):
    keras.utils.set_random_seed(0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(*data, batch_size=32, epochs=epochs, verbose=0)
    return model


def _run_dir(root, model, dataset):
    os.makedirs(root, exist_ok=True)
    model.save(os.path.join(root, "model.keras"))
    with open(os.path.join(root, "config.yaml"), "w") as f:
        f.write(f"dataset: {dataset}\nimage_shape: {list(model.image_shape)}\nlatent_dim: {model.latent_dim}\n")
    return root


@pytest.fixture(scope="session")
def fit_briefly():
    """``fit_briefly(model, *fit_data, epochs=8)``: compiles and fits a tiny model, seeded."""
    return _fit


@pytest.fixture(scope="session")
def bar_data():
    return bars(512)


@pytest.fixture(scope="session")
def vae(bar_data):
    model = keras_vae.build_vae(IMAGE_SHAPE, LATENT_DIM, architecture="mlp", hidden_units=(32,), seed=0)
    return _fit(model, bar_data[0])


@pytest.fixture(scope="session")
def make_run_dir():
    """``make_run_dir(root, model, dataset)``: a run directory (model.keras + config.yaml) as training writes."""
    return _run_dir


@pytest.fixture(scope="session")
def run_dir(vae, tmp_path_factory):
    return _run_dir(str(tmp_path_factory.mktemp("runs") / "bars"), vae, "bars")


@pytest.fixture(scope="session")
def exported(run_dir, tmp_path_factory):
    """Version 1 of model "vae" with the encoder signatures and the four TFLite variants."""
    base = tmp_path_factory.mktemp("saved_models")
    return export_model(run_dir, base_dir=str(base), name="vae", with_encoder=True, tflite=True)


@pytest.fixture
def model_copy(exported, tmp_path):
    """A private copy of the exported model folder (BASE/NAME), for tests that add or remove versions."""
    return shutil.copytree(exported.model_dir, tmp_path / "vae")


@pytest.fixture(scope="session")
def rest_server(exported, tmp_path_factory):
    """`keras-vae serve`'s server on a free 127.0.0.1 port, serving a copy of the export (small limits)."""
    from keras_vae.export.server import make_server

    base = shutil.copytree(exported.model_dir, tmp_path_factory.mktemp("served") / "vae")
    server = make_server(base, port=0, max_batch_size=64, max_request_bytes=1 << 20)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.close()
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def server_url(rest_server):
    return f"http://127.0.0.1:{rest_server.server_port}"
