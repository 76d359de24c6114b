"""Ex-post samplers in exports: a ``sample_<name>`` signature in the SavedModel and in every TFLite file."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import keras_vae
from keras_vae.export import TFLiteModel, export_model
from tests.conftest import rectangles


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_a_fitted_sampler_is_exported_as_its_own_sample_signature(tmp_path, covariance_type):
    images = rectangles(128)
    vae = keras_vae.build_vae((28, 28, 1), 3, architecture="mlp", hidden_units=(16,), seed=0)
    vae.compile(optimizer="adam")
    vae.fit(images, epochs=1, batch_size=32, verbose=0)
    gmm = vae.fit_sampler(images, kind="gmm", num_components=2, covariance_type=covariance_type)
    gmm.locs.assign(gmm.locs.numpy() + 50.0)  # far from the prior: its codes are told apart from prior codes
    result = export_model(vae, base_dir=tmp_path, name="m", tflite=True)
    metadata = json.load(open(os.path.join(result.saved_model_dir, "metadata.json")))
    assert metadata["samplers"] == ["prior", "gmm"]

    restored = tf.saved_model.load(result.saved_model_dir)
    assert {"sample", "sample_gmm"} <= set(restored.signatures)
    inputs = dict(num_samples=tf.constant(6), temperature=tf.constant(1.0), seed=tf.constant(3, tf.int64))
    first, again = restored.signatures["sample_gmm"](**inputs), restored.signatures["sample_gmm"](**inputs)
    np.testing.assert_array_equal(first["z"].numpy(), again["z"].numpy())  # seeded
    assert np.abs(first["z"].numpy()).min() > 40  # the sampler's codes, not the prior's
    assert np.abs(restored.signatures["sample"](**inputs)["z"].numpy()).max() < 10
    many = np.concatenate([restored.signatures["sample_gmm"](
        num_samples=tf.constant(1000), temperature=tf.constant(1.0), seed=tf.constant(seed, tf.int64))["z"].numpy()
        for seed in range(4)])  # the same distribution as the model's sampler (full covariances included)
    in_keras = np.asarray(vae.sample_prior(4000, seed=0, sampler="gmm"))
    np.testing.assert_allclose(np.cov(many.T), np.cov(in_keras.T), rtol=0.1, atol=0.005)

    on_device = TFLiteModel(result.tflite_paths["float32"])
    runner = on_device.interpreter.get_signature_runner("sample_gmm")
    out = runner(num_samples=np.array(6, np.int32), temperature=np.array(1.0, np.float32), seed=np.array(3, np.int64))
    assert out["z"].shape == (6, 3) and np.abs(out["z"]).min() > 40
    assert np.all(np.isfinite(out["images"]))
    # The same seed, the same components and codes as the SavedModel's sample_gmm.
    np.testing.assert_allclose(out["z"], first["z"].numpy(), atol=1e-4)
    np.testing.assert_allclose(on_device.sample(6, seed=3, sampler="gmm")["z"], first["z"].numpy(), atol=1e-4)


def test_sample_command_draws_with_a_named_sampler(tmp_path):
    from keras_vae.cli import main
    from keras_vae.export.sampling import sample_images

    images = rectangles(64)
    vae = keras_vae.build_vae((28, 28, 1), 3, architecture="mlp", hidden_units=(16,), seed=0)
    vae.fit_sampler(images, kind="gmm", num_components=2)
    vae.save(tmp_path / "m.keras")
    result = export_model(vae, base_dir=tmp_path / "saved", name="m", tflite=True)
    grids = {}
    for source in (tmp_path / "m.keras", result.saved_model_dir, result.tflite_paths["float32"]):
        grids[source] = np.asarray(sample_images(source, 4, seed=1, sampler="gmm"))
        assert grids[source].shape == (4, 28, 28, 1)
    # A SavedModel and its .tflite files draw the same grid for a seed.
    np.testing.assert_allclose(grids[result.saved_model_dir], grids[result.tflite_paths["float32"]], atol=1e-5)
    assert main(["sample", result.saved_model_dir, "-n", "4", "--sampler", "gmm", "--seed", "0",
                 "--out", str(tmp_path / "g.png")]) == 0
    assert os.path.getsize(tmp_path / "g.png") > 0
    assert main(["sample", result.saved_model_dir, "-n", "4", "--sampler", "two_stage",
                 "--out", str(tmp_path / "x.png")]) == 2
