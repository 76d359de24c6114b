"""Every model variant exports through the same code: SavedModel signatures and the float32 TFLite file."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae
from keras_vae.export.saved_model import export_model
from keras_vae.export.tflite import TFLiteModel, convert_tflite

# beta_vae differs from beta_tcvae only in its loss (nothing the export touches): one of them is enough.
VARIANTS = {
    "beta_tcvae": {"dataset_size": 512},
    "ladder": {"lower_latent_dims": (6,)},
    "iaf": {},
    "mixture_prior": {"variant": "vae", "prior": "mixture"},
    "vamp_prior": {"variant": "vae", "prior": "vamp"},
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_exports_and_matches_the_keras_model(name, bar_data, tmp_path):
    options = {"variant": name, **VARIANTS[name]}
    keras.utils.set_random_seed(0)
    model = keras_vae.build_vae((16, 16, 1), 4, architecture="mlp", hidden_units=(16,), seed=0, **options)
    images = bar_data[0][:4]  # untrained weights: parity is what is checked here

    result = export_model(model, base_dir=tmp_path, name=name, with_encoder=True)
    signatures = tf.saved_model.load(result.saved_model_dir).signatures
    z = np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32)
    decoded = signatures["serving_default"](z=tf.constant(z))["images"].numpy()
    np.testing.assert_allclose(decoded, model.decode(z).numpy(), atol=1e-5)
    posterior = model.encode(images)
    encoded = signatures["encode"](images=tf.constant(images))
    np.testing.assert_allclose(encoded["loc"].numpy(), posterior.mean().numpy(), atol=1e-4)
    reconstructed = signatures["reconstruct"](images=tf.constant(images))["images"].numpy()
    np.testing.assert_allclose(reconstructed, model.reconstruct(images).numpy(), atol=1e-4)
    score = signatures["score"](images=tf.constant(images))["score"].numpy()
    assert score.shape == (4,) and np.all(np.isfinite(score)) and np.all(score > 0)
    sampled = signatures["sample"](num_samples=tf.constant(3), temperature=tf.constant(1.0), seed=tf.constant(5, tf.int64))
    np.testing.assert_allclose(sampled["images"].numpy(), model.decode(sampled["z"].numpy()).numpy(), atol=1e-5)

    tflite = TFLiteModel(convert_tflite(model, tmp_path / "tflite", variants=("float32",))["float32"])
    np.testing.assert_allclose(tflite.decode(z), decoded, atol=1e-5)
    on_device = tflite.sample(8)
    assert on_device["images"].shape == (8, 16, 16, 1) and np.all(np.isfinite(on_device["images"]))
