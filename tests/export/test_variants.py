"""Every model variant build_vae makes exports through the same code: the SavedModel, loaded back in a fresh
process, matches the Keras model on every signature, and the float32 TFLite file runs in ai_edge_litert."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_vae
from keras_vae.export.saved_model import export_model
from keras_vae.export.tflite import TFLiteModel, convert_tflite

NUM_CLASSES = 2
VARIANTS = {
    "vae": {},
    "beta_vae": {},
    "beta_tcvae": {"dataset_size": 512},
    "cvae": {"num_classes": NUM_CLASSES},
    "ladder": {"lower_latent_dims": (6,)},
    "iaf": {},
    "mixture_prior": {"variant": "vae", "prior": "mixture"},
    "vamp_prior": {"variant": "vae", "prior": "vamp"},
}

# Runs every signature of every export given on the command line and saves the outputs: one fresh process
# (no Keras model, no keras_vae objects in memory) for all variants.
FRESH_PROCESS = """
import sys
import numpy as np
import tensorflow as tf
inputs = dict(np.load(sys.argv[1]))
out = {}
for name, path in zip(sys.argv[3::2], sys.argv[4::2]):
    signatures = tf.saved_model.load(path).signatures
    label = {"label": tf.constant(inputs["labels"])} if "label" in signatures["sample"].structured_input_signature[1] else {}
    run = lambda signature, **kw: signatures[signature](**{k: tf.constant(v) for k, v in kw.items()}, **label)
    out[name + "/decode"] = run("serving_default", z=inputs["z"])["images"].numpy()
    encoded = run("encode", images=inputs["images"])
    out[name + "/loc"] = encoded["loc"].numpy()
    out[name + "/reconstruct"] = run("reconstruct", images=inputs["images"])["images"].numpy()
    out[name + "/score"] = run("score", images=inputs["images"])["score"].numpy()
    sampled = run("sample", num_samples=np.int32(4), temperature=np.float32(1.0), seed=np.int64(5))
    out[name + "/sample_images"], out[name + "/sample_z"] = sampled["images"].numpy(), sampled["z"].numpy()
np.savez(sys.argv[2], **out)
"""


@pytest.fixture(scope="module")
def variant_exports(bar_data, tmp_path_factory):
    """``{name: (model, saved_model_dir, tflite_path)}`` plus the inputs, and one fresh process's outputs."""
    base = tmp_path_factory.mktemp("variants")
    exports = {}
    for name, options in VARIANTS.items():
        options = {"variant": name, **options}
        keras.utils.set_random_seed(0)
        model = keras_vae.build_vae((16, 16, 1), 4, architecture="mlp", hidden_units=(16,), seed=0, **options)
        result = export_model(model, base_dir=base, name=name, with_encoder=True)
        tflite = convert_tflite(model, base / name / "tflite-float32", variants=("float32",))["float32"]
        exports[name] = (model, result.saved_model_dir, tflite)
    inputs = {
        "images": bar_data[0][:4],
        "labels": bar_data[1][:4],
        "z": np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32),
    }
    np.savez(base / "inputs.npz", **inputs)
    script = base / "load.py"
    script.write_text(FRESH_PROCESS)
    paths = [arg for name, (_, path, _) in exports.items() for arg in (name, path)]
    result = subprocess.run(
        [sys.executable, str(script), str(base / "inputs.npz"), str(base / "out.npz"), *paths],
        capture_output=True, text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return exports, inputs, dict(np.load(base / "out.npz"))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_saved_model_in_a_fresh_process_matches_the_keras_model(name, variant_exports):
    exports, inputs, out = variant_exports
    model = exports[name][0]
    labels = inputs["labels"] if model.condition else None
    images, z = inputs["images"], inputs["z"]  # untrained weights: parity is what is checked here
    np.testing.assert_allclose(out[f"{name}/decode"], model.decode(z, labels=labels).numpy(), atol=1e-5)
    np.testing.assert_allclose(out[f"{name}/loc"], model.encode(images, labels=labels).mean().numpy(), atol=1e-4)
    np.testing.assert_allclose(out[f"{name}/reconstruct"], model.reconstruct(images, labels=labels).numpy(), atol=1e-4)
    score = out[f"{name}/score"]
    assert score.shape == (4,) and np.all(np.isfinite(score)) and np.all(score > 0)
    decoded = model.decode(out[f"{name}/sample_z"], labels=labels).numpy()
    np.testing.assert_allclose(out[f"{name}/sample_images"], decoded, atol=1e-5)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_tflite_runs_in_ai_edge_litert(name, variant_exports):
    exports, inputs, out = variant_exports
    model, _, path = exports[name]
    tflite = TFLiteModel(path)
    labels = inputs["labels"] if model.condition else None
    assert tflite.conditional == bool(model.condition)
    np.testing.assert_allclose(tflite.decode(inputs["z"], labels), out[f"{name}/decode"], atol=1e-5)
    on_device = tflite.sample(8, labels=None if labels is None else labels[:1])
    assert on_device["images"].shape == (8, 16, 16, 1) and np.all(np.isfinite(on_device["images"]))
