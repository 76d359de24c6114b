"""Exporting conditional VAEs (``model.condition``): a `label` input on every signature, class or vector."""

import os
import threading

import numpy as np
import pytest
import tensorflow as tf

import keras_vae
from keras_vae.cli import main
from keras_vae.export.client import RestClient
from keras_vae.export.metadata import read_metadata
from keras_vae.export.saved_model import export_model
from keras_vae.export.server import make_server
from keras_vae.export.signatures import SCORE_SAMPLES, SCORE_SEED
from keras_vae.export.tflite import TFLiteModel

IMAGE_SHAPE, LATENT_DIM = (16, 16, 1), 4


@pytest.fixture(scope="module")
def cvae(bar_data, fit_briefly):
    model = keras_vae.build_vae(
        IMAGE_SHAPE, LATENT_DIM, architecture="mlp", hidden_units=(32,), variant="cvae", num_classes=2, seed=0
    )
    # 8 epochs leave the label's effect too weak to assert on robustly (CI once saw 0.18 < 0.2 below); over six
    # seeds, 30 epochs gave a label-flip difference of at least 0.71.
    return fit_briefly(model, *bar_data, epochs=30)


@pytest.fixture(scope="module")
def cexport(cvae, tmp_path_factory):
    return export_model(cvae, base_dir=str(tmp_path_factory.mktemp("cmodels")), name="cvae", with_encoder=True, tflite=True)


@pytest.fixture(scope="module")
def signatures(cexport):
    return tf.saved_model.load(cexport.saved_model_dir).signatures


def codes(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, LATENT_DIM)).astype(np.float32)


def negative_elbo_draws(model, x, labels, num_draws=200):
    """``[num_draws, batch]`` single-draw negative ELBOs: -log w with one posterior draw is -ELBO's estimator."""
    return -model.log_importance_weights(x, num_draws, seed=(3, 4), labels=labels).numpy()


def test_signatures_take_labels_and_match_the_keras_model(signatures, cvae, bar_data):
    for name in ("serving_default", "sample", "encode", "reconstruct", "score"):
        assert signatures[name].structured_input_signature[1]["label"].dtype == tf.int32, name
    z, labels = codes(6), np.array([0, 1, 0, 1, 1, 0], np.int32)
    images = signatures["serving_default"](z=tf.constant(z), label=tf.constant(labels))["images"].numpy()
    np.testing.assert_allclose(images, cvae.decode(z, labels=labels).numpy(), atol=1e-5)
    # The label matters: the same codes decode to horizontal (0) or vertical (1) bars.
    flipped = signatures["serving_default"](z=tf.constant(z), label=tf.constant(1 - labels))["images"].numpy()
    assert np.abs(images - flipped).max() > 0.2
    x, y = bar_data[0][:4], bar_data[1][:4]
    encoded = signatures["encode"](images=tf.constant(x), label=tf.constant(y))
    np.testing.assert_allclose(encoded["loc"].numpy(), cvae.encode(x, labels=y).mean().numpy(), atol=1e-5)
    reconstructed = signatures["reconstruct"](images=tf.constant(x), label=tf.constant(y))["images"].numpy()
    np.testing.assert_allclose(reconstructed, cvae.reconstruct(x, labels=y).numpy(), atol=1e-5)
    score = signatures["score"](images=tf.constant(x), label=tf.constant(y))["score"].numpy()
    # Exactly the Keras model's negative ELBO over the same SCORE_SAMPLES seeded draws...
    same_draws = [-cvae.log_importance_weights(x[i:i + 1], SCORE_SAMPLES, seed=tf.constant(SCORE_SEED), labels=y[i:i + 1])
                  .numpy().mean() for i in range(4)]
    np.testing.assert_allclose(score, same_draws, rtol=1e-5)
    # ...and, as a Monte Carlo estimate, within 4 standard errors of a 200-draw one.
    draws = negative_elbo_draws(cvae, x, y)
    assert np.all(np.abs(score - draws.mean(axis=0)) < 4 * draws.std(axis=0) / np.sqrt(SCORE_SAMPLES) + 1e-3)


def _sample(signatures, labels, num_samples=4, seed=1, dtype=tf.int32):
    return signatures["sample"](
        num_samples=tf.constant(num_samples),
        temperature=tf.constant(1.0),
        seed=tf.constant(seed, tf.int64),
        label=tf.constant(labels, dtype),
    )


def test_sample_takes_one_label_for_all_or_one_per_sample(signatures, cvae):
    one = _sample(signatures, [1])
    each = _sample(signatures, [1, 1, 1, 1])
    np.testing.assert_array_equal(one["images"].numpy(), each["images"].numpy())
    expected = cvae.decode(one["z"].numpy(), labels=np.ones(4, np.int32)).numpy()
    np.testing.assert_allclose(one["images"].numpy(), expected, atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="label must hold 1 label or num_samples labels"):
        _sample(signatures, [0, 1])
    with pytest.raises(tf.errors.InvalidArgumentError, match="label must be < 2"):
        _sample(signatures, [2])
    with pytest.raises(tf.errors.InvalidArgumentError, match="label must be >= 0"):
        signatures["serving_default"](z=tf.constant(codes(1)), label=tf.constant([-1]))


@pytest.mark.parametrize("variant, statistic, bound", [("float32", "max", 1e-5), ("int8", "mean", 0.05)])
def test_tflite_decode_and_sample_take_labels(cexport, signatures, variant, statistic, bound):
    model = TFLiteModel(cexport.tflite_paths[variant])
    assert model.conditional and model.condition.kind == "class"
    z, labels = codes(32, seed=2), np.arange(32, dtype=np.int32) % 2
    reference = signatures["serving_default"](z=tf.constant(z), label=tf.constant(labels))["images"].numpy()
    assert getattr(np.abs(model.decode(z, labels) - reference), statistic)() <= bound
    sampled = model.sample(8, labels=[0])
    assert sampled["images"].shape == (8, 16, 16, 1) and np.all(np.isfinite(sampled["images"]))
    with pytest.raises(ValueError, match="conditional: pass a label"):
        model.sample(2)


def test_rest_server_and_cli_with_labels(cexport, cvae, tmp_path, capsys):
    server = make_server(cexport.model_dir, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = RestClient(f"http://127.0.0.1:{server.server_port}", "cvae")
        z, labels = codes(3), np.array([1, 0, 1], np.int32)
        images = client.predict({"z": z, "label": labels})
        np.testing.assert_allclose(images, cvae.decode(z, labels=labels).numpy(), atol=1e-5)
        out = client.predict({"num_samples": 2, "temperature": 1.0, "seed": 0, "label": [1]}, "sample", columnar=True)
        assert out["images"].shape == (2, 16, 16, 1)
    finally:
        server.close()
        thread.join(timeout=10)
    for source in (cexport.saved_model_dir, cexport.tflite_paths["float32"]):
        out = str(tmp_path / f"{os.path.basename(source)}.png")
        assert main(["sample", source, "-n", "4", "--out", out, "--label", "1"]) == 0, capsys.readouterr().err
        assert os.path.getsize(out) > 0
    assert main(["sample", cexport.saved_model_dir, "--out", str(tmp_path / "x.png")]) == 2
    assert "pass a label (--label" in capsys.readouterr().err


def test_metadata_records_the_condition(cexport):
    for folder in (cexport.saved_model_dir, os.path.dirname(cexport.tflite_paths["float32"])):
        assert read_metadata(folder)["condition"] == {"kind": "class", "size": 2}


# ----------------------------------------------------------------- label vectors (label_dim)

VECTOR_SHAPE, VECTOR_DIM = (28, 28, 1), 3


@pytest.fixture(scope="module")
def vector_vae():
    # Untrained: export parity is what is checked. A label vector large enough to move the decoder's output.
    return keras_vae.build_vae(VECTOR_SHAPE, 4, architecture="mlp", variant="cvae", label_dim=VECTOR_DIM, seed=0)


@pytest.fixture(scope="module")
def vector_export(vector_vae, tmp_path_factory):
    return export_model(vector_vae, base_dir=tmp_path_factory.mktemp("vmodels"), name="vec", with_encoder=True, tflite=True)


VECTORS = np.array([[0.0, 0.0, 0.0], [3.0, -2.0, 1.0]], np.float32)


def test_label_vector_model_exports_and_its_signatures_take_vectors(vector_vae, vector_export):
    signatures = tf.saved_model.load(vector_export.saved_model_dir).signatures
    for name in ("serving_default", "sample", "encode", "reconstruct", "score"):
        spec = signatures[name].structured_input_signature[1]["label"]
        assert (spec.dtype, spec.shape.as_list()) == (tf.float32, [None, VECTOR_DIM]), name
    z = codes(2)
    decoded = {i: signatures["serving_default"](z=tf.constant(z), label=tf.constant(VECTORS[[i, i]]))["images"].numpy()
               for i in (0, 1)}
    np.testing.assert_allclose(decoded[1], vector_vae.decode(z, labels=VECTORS[[1, 1]]).numpy(), atol=1e-5)
    assert np.abs(decoded[0] - decoded[1]).max() > 1e-3  # the label changes the output
    sampled = {i: _sample(signatures, VECTORS[i:i + 1], dtype=tf.float32) for i in (0, 1)}
    np.testing.assert_array_equal(sampled[0]["z"].numpy(), sampled[1]["z"].numpy())  # same seed, same codes...
    assert np.abs(sampled[0]["images"].numpy() - sampled[1]["images"].numpy()).max() > 1e-3  # ...other label
    expected = vector_vae.decode(sampled[1]["z"].numpy(), labels=np.tile(VECTORS[1:], [4, 1])).numpy()
    np.testing.assert_allclose(sampled[1]["images"].numpy(), expected, atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="label vectors must be finite"):
        _sample(signatures, [[np.nan, 0.0, 0.0]], dtype=tf.float32)
    images = np.full([2, *VECTOR_SHAPE], 0.5, np.float32)
    score = signatures["score"](images=tf.constant(images), label=tf.constant(VECTORS))["score"].numpy()
    assert score.shape == (2,) and np.all(np.isfinite(score))
    assert read_metadata(vector_export.saved_model_dir)["condition"] == {"kind": "vector", "size": VECTOR_DIM}


def test_label_vector_tflite_sample_and_decode_take_vectors(vector_vae, vector_export):
    model = TFLiteModel(vector_export.tflite_paths["float32"])
    assert tuple(model.condition) == ("vector", VECTOR_DIM)
    z = codes(2)
    np.testing.assert_allclose(model.decode(z, VECTORS), vector_vae.decode(z, labels=VECTORS).numpy(), atol=1e-5)
    first = model.sample(3, labels=VECTORS[1])
    assert first["images"].shape == (3, *VECTOR_SHAPE) and np.all(np.isfinite(first["images"]))
    # The label changes the output: the on-device codes decoded with the other label differ.
    np.testing.assert_allclose(first["images"], model.decode(first["z"], VECTORS[1]), atol=1e-5)
    assert np.abs(model.decode(first["z"], VECTORS[0]) - first["images"]).max() > 1e-3
    with pytest.raises(ValueError, match="label vectors of size 3"):
        model.sample(2, labels=[1.0, 2.0])


def test_label_vector_through_the_cli(vector_export, tmp_path, capsys):
    for source in (vector_export.saved_model_dir, vector_export.tflite_paths["float32"]):
        out = str(tmp_path / f"{os.path.basename(source)}.png")
        assert main(["sample", source, "-n", "4", "--out", out, "--label", "3,-2,1", "--seed", "1"]) == 0, \
            capsys.readouterr().err
        assert os.path.getsize(out) > 0
    assert main(["sample", vector_export.saved_model_dir, "--out", str(tmp_path / "x.png"), "--label", "1,2"]) == 2
    assert "label vectors of size 3" in capsys.readouterr().err
