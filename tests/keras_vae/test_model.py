"""The VAE model: training, metrics, shapes, sampling, saving, input checks and the networks it is given."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae
from keras_vae import VAE

METRICS = {"loss", "reconstruction", "kl", "elbo", "skipped_steps"}


def _compiled(vae, lr=1e-3):
    vae.compile(optimizer=keras.optimizers.Adam(lr))
    return vae


def test_training_lowers_the_negative_elbo_by_a_wide_margin(binary_images):
    vae = _compiled(keras_vae.build_vae((28, 28, 1), 8, architecture="mlp", hidden_units=(128,), seed=0), lr=3e-3)
    before = -vae.evaluate(binary_images, batch_size=64, verbose=0, return_dict=True)["elbo"]
    vae.fit(binary_images, batch_size=16, epochs=75, verbose=0, shuffle=True)  # 300 steps
    after = -vae.evaluate(binary_images, batch_size=64, verbose=0, return_dict=True)["elbo"]
    assert before > 500  # untrained: about 784 * log 2
    assert after < 0.4 * before, (before, after)


def test_conv_model_trains_and_evaluate_reports_all_metrics(binary_images):
    vae = _compiled(keras_vae.build_vae((28, 28, 1), 4, architecture="conv", filters=(8, 16), dense_units=32, seed=0))
    history = vae.fit(binary_images, batch_size=32, epochs=3, verbose=0)
    assert set(history.history) == METRICS
    assert history.history["skipped_steps"] == [0.0, 0.0, 0.0]
    result = vae.evaluate(binary_images, batch_size=32, verbose=0, return_dict=True)
    assert set(result) == METRICS
    assert result["elbo"] == pytest.approx(-(result["reconstruction"] + result["kl"]), rel=1e-4)
    assert result["kl"] >= 0
    assert np.all(np.isfinite(list(result.values())))


@pytest.mark.parametrize("shape", [(28, 28, 1), (64, 64, 1), (32, 32, 3), (30, 22, 2)])
@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_networks_fit_any_image_shape(shape, architecture):
    vae = keras_vae.build_vae(shape, 5, architecture=architecture)
    x = np.zeros((2, *shape), np.float32)
    out = vae(x)  # reconstructions in data space
    assert out.shape == (2, *shape)
    assert vae.decoder_output(np.zeros((2, 5), np.float32)).shape == (2, *shape)
    (loc, scale), = vae.posterior_parameters(x)
    assert loc.shape == (2, 5) and scale.shape == (2, 5)
    assert np.all(scale.numpy() > 0)
    assert vae.sample(3, seed=1).shape == (3, *shape)


def test_call_and_predict_return_the_reconstructions_in_data_space(small_images):
    vae = keras_vae.build_vae((14, 14, 1), 3, architecture="mlp", hidden_units=(16,), seed=0)
    x = small_images[:5]
    expected = vae.reconstruct(x).numpy()
    np.testing.assert_allclose(vae(x).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(vae.predict(x, batch_size=2, verbose=0), expected, rtol=1e-5, atol=1e-6)
    # Data space: the sigmoid of the decoder's logits at the posterior mean.
    logits = vae.decoder_output(vae.encode(x).mean()).numpy()
    np.testing.assert_allclose(expected, 1 / (1 + np.exp(-logits)), rtol=1e-5, atol=1e-6)
    assert expected.min() >= 0 and expected.max() <= 1


def test_sample_is_seeded_and_temperature_shrinks_the_spread():
    vae = keras_vae.build_vae((8, 8, 1), 4, architecture="mlp", hidden_units=(16,))
    np.testing.assert_array_equal(vae.sample(4, seed=7), vae.sample(4, seed=7))
    assert not np.allclose(vae.sample(4, seed=7), vae.sample(4, seed=8))
    z_hot = vae.sample_prior(2000, temperature=1.0, seed=0).numpy()
    z_cold = vae.sample_prior(2000, temperature=0.1, seed=0).numpy()
    assert z_hot.std() == pytest.approx(1.0, rel=0.05)
    assert z_cold.std() == pytest.approx(0.1, rel=0.05)
    probs = vae.sample(5, seed=0).numpy()
    assert probs.min() >= 0 and probs.max() <= 1
    with pytest.raises(ValueError, match="temperature"):
        vae.sample(2, temperature=0.0)


def test_keras_round_trip_keeps_outputs_and_non_default_config(tmp_path, binary_images):
    vae = _compiled(
        keras_vae.build_vae(
            (28, 28, 1),
            6,
            architecture="mlp",
            hidden_units=(32,),
            likelihood=keras_vae.GaussianLikelihood(scale=0.25),
            prior=keras_vae.MixtureOfGaussiansPrior(num_components=4),
            beta=3.5,
            kl_warmup_steps=7,
            free_bits=0.25,
        )
    )
    vae.fit(binary_images, epochs=1, batch_size=32, verbose=0)
    path = tmp_path / "vae.keras"
    vae.save(path)
    loaded = keras.saving.load_model(path)

    assert isinstance(loaded, VAE) and loaded.latent_dim == 6
    assert isinstance(loaded.objective, keras_vae.ELBO)
    objective = loaded.objective
    assert (objective.beta, objective.kl_warmup_steps, objective.free_bits) == (3.5, 7, 0.25)
    assert isinstance(loaded.likelihood, keras_vae.GaussianLikelihood) and loaded.likelihood.scale == 0.25
    assert isinstance(loaded.prior, keras_vae.MixtureOfGaussiansPrior) and loaded.prior.num_components == 4
    assert isinstance(loaded.posterior, keras_vae.GaussianPosterior) and not loaded.condition
    z = np.random.RandomState(0).randn(5, 6).astype(np.float32)
    np.testing.assert_array_equal(vae.decode(z).numpy(), loaded.decode(z).numpy())
    np.testing.assert_array_equal(vae.prior.locs.numpy(), loaded.prior.locs.numpy())
    # The optimizer state comes back too, so training resumes where it stopped.
    assert isinstance(loaded.optimizer, keras_vae.NonFiniteSkipping)
    assert int(loaded.optimizer.iterations) == int(vae.optimizer.iterations) == 2
    loaded.fit(binary_images, epochs=1, batch_size=32, verbose=0)
    assert int(loaded.optimizer.iterations) == 4


def test_learned_gaussian_scale_is_saved(tmp_path):
    vae = keras_vae.build_vae((8, 8, 1), 2, architecture="mlp", hidden_units=(8,), likelihood="gaussian")
    vae.likelihood.raw_scale.assign([-1.0])
    vae.save(tmp_path / "g.keras")
    loaded = keras.saving.load_model(tmp_path / "g.keras")
    assert loaded.likelihood.raw_scale.numpy().tolist() == [-1.0]


def test_compile_wraps_the_optimizer_and_a_non_finite_batch_is_skipped(small_images):
    vae = keras_vae.build_vae((14, 14, 1), 2, architecture="mlp", hidden_units=(8,), likelihood="gaussian", seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    assert isinstance(vae.optimizer, keras_vae.NonFiniteSkipping)
    assert isinstance(vae.optimizer.inner_optimizer, keras.optimizers.Adam)
    x = small_images[:32].copy()
    x[5, 0, 0, 0] = np.nan  # in the first of two batches
    with pytest.warns(RuntimeWarning, match="non-finite"):
        history = vae.fit(x, batch_size=16, epochs=1, shuffle=False, verbose=0).history
    assert history["skipped_steps"] == [1.0]
    assert np.isfinite(history["loss"][0])  # the skipped step stays out of the metrics
    assert int(vae.optimizer.iterations) == 1  # a skipped step does not count
    assert all(np.all(np.isfinite(w.numpy())) for w in vae.weights)
    with pytest.raises(ValueError, match="takes no loss="):
        vae.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="nonfinite must be one of"):
        vae.compile(optimizer="adam", nonfinite="ignore")
    vae.compile(optimizer="adam", nonfinite="stop")
    with pytest.raises(keras_vae.NonFiniteLossError, match="batch 1"):
        vae.fit(x, batch_size=16, epochs=1, shuffle=False, verbose=0)


def test_bad_shapes_raise_a_clear_value_error(binary_images):
    vae = _compiled(keras_vae.build_vae((28, 28, 1), 4, architecture="mlp", hidden_units=(16,)))
    with pytest.raises(ValueError, match=r"Expected images of shape \(batch, 28, 28, 1\), got shape \(batch, 28, 28\)"):
        vae.fit(np.zeros((8, 28, 28), np.float32), verbose=0)
    with pytest.raises(ValueError, match=r"got shape \(batch, 32, 32, 1\)"):
        vae.fit(tf.data.Dataset.from_tensor_slices(np.zeros((8, 32, 32, 1), np.float32)).batch(4), verbose=0)
    with pytest.raises(ValueError, match=r"Expected images of shape \(batch, 28, 28, 1\), got shape \(2, 28, 28, 3\)"):
        vae.encode(np.zeros((2, 28, 28, 3), np.float32))
    with pytest.raises(ValueError, match=r"Expected latent codes of shape \(batch, 4\), got shape \(2, 5\)"):
        vae.decode(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="got shape"):
        vae.evaluate(np.zeros((4, 28, 28, 1, 1), np.float32), verbose=0)
    # After a successful fit Keras retraces with relaxed shapes: the check still fires.
    vae.fit(binary_images, epochs=1, batch_size=32, verbose=0)
    with pytest.raises(ValueError, match=r"got shape \(batch, 28, 28\)"):
        vae.fit(np.zeros((8, 28, 28), np.float32), verbose=0)


def test_mismatched_networks_are_rejected():
    enc = keras_vae.mlp_encoder((8, 8, 1), 3)
    with pytest.raises(ValueError, match="encoder must output"):
        VAE(enc, keras_vae.mlp_decoder((8, 8, 1), 4), latent_dim=4)
    with pytest.raises(ValueError, match="decoder output"):
        VAE(enc, keras_vae.mlp_decoder((9, 8, 1), 3), latent_dim=3)
    for bad in (0, 2.5):  # refused, not truncated
        with pytest.raises(ValueError, match="latent_dim must be an integer >= 1"):
            VAE(enc, keras_vae.mlp_decoder((8, 8, 1), 3), latent_dim=bad)


@pytest.mark.parametrize("variant", ["vae", "ladder"])
def test_dropout_acts_in_training_only_also_on_the_iw_bound(tmp_path, variant):
    vae = keras_vae.build_vae((8, 8, 1), 2, architecture="mlp", hidden_units=(32,), dropout=0.5, variant=variant,
                              seed=0)
    assert sum(isinstance(layer, keras.layers.Dropout) for layer in vae.encoder.layers + vae.decoder.layers) == 2
    x = (np.random.RandomState(0).rand(16, 8, 8, 1) > 0.5).astype(np.float32)
    seed = tf.constant([3, 4])
    held = [vae.log_importance_weights(x, 4, seed=seed).numpy() for _ in range(2)]
    np.testing.assert_array_equal(held[0], held[1])  # inference: dropout off, same seed, same weights
    dropped = vae.log_importance_weights(x, 4, seed=seed, training=True).numpy()
    assert np.abs(dropped - held[0]).max() > 1e-3  # training: units dropped
    vae.save(tmp_path / "m.keras")
    loaded = keras_vae.load_vae(str(tmp_path / "m.keras"))
    np.testing.assert_allclose(loaded.log_importance_weights(x, 4, seed=seed).numpy(), held[0], rtol=1e-5)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        keras_vae.build_vae((8, 8, 1), 2, architecture="mlp", dropout=1.0)


def test_gated_dense_is_a_sigmoid_gated_linear_map_and_a_gated_mlp_saves(tmp_path):
    layer = keras_vae.GatedDense(3)
    x = np.random.RandomState(0).randn(5, 4).astype(np.float32)
    out = layer(x).numpy()
    w, b = (v.numpy() for v in layer.linear.weights)
    v, c = (t.numpy() for t in layer.gate.weights)
    np.testing.assert_allclose(out, (x @ w + b) / (1 + np.exp(-(x @ v + c))), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="units must be >= 1"):
        keras_vae.GatedDense(0)

    vae = keras_vae.build_vae((8, 8, 1), 2, architecture="mlp", hidden_units=(16, 8), gated=True, variant="ladder",
                              lower_latent_dims=(3,), seed=0)
    gated = [layer for layer in vae.encoder.layers + vae.decoder.layers if isinstance(layer, keras_vae.GatedDense)]
    assert [layer.units for layer in gated] == [16, 8, 8, 16]  # the decoder mirrors the encoder
    images = (np.random.RandomState(1).rand(4, 8, 8, 1) > 0.5).astype(np.float32)
    vae.save(tmp_path / "gated.keras")
    loaded = keras_vae.load_vae(str(tmp_path / "gated.keras"))
    seed = tf.constant([1, 2])
    np.testing.assert_allclose(loaded.log_importance_weights(images, 3, seed=seed).numpy(),
                               vae.log_importance_weights(images, 3, seed=seed).numpy(), rtol=1e-5)
