"""Mixture priors: the VampPrior (the model's own posteriors at learned pseudo-inputs) and their densities."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import keras_vae
from keras_vae import VampPrior
from keras_vae.priors import gaussian_mixture_log_prob

tfd = tfp.distributions


def _vamp_vae(num_pseudo_inputs=3, **options):
    keras.utils.set_random_seed(0)
    return keras_vae.build_vae((4, 4, 1), 2, architecture="mlp", hidden_units=(8,), seed=0,
                               prior=VampPrior(num_pseudo_inputs), **options)


def test_density_is_the_average_of_posteriors_at_the_clipped_pseudo_inputs():
    vae = _vamp_vae()
    pseudo = np.random.RandomState(0).uniform(-0.5, 1.5, size=(3, 4, 4, 1)).astype(np.float32)
    vae.prior.pseudo_inputs.assign(pseudo)  # some pixels outside [0, 1]: they are clipped
    z = np.random.RandomState(1).randn(5, 2).astype(np.float32)

    posterior = vae.encode(np.clip(pseudo, 0.0, 1.0))
    per_component = posterior.log_prob(z[:, np.newaxis, :]).numpy()  # [5, 3]
    expected = np.log(np.mean(np.exp(per_component), axis=1))
    np.testing.assert_allclose(vae.prior.distribution().log_prob(z).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(vae.prior.log_prob(z).numpy(), expected, rtol=1e-5)  # what the VAE's terms use
    # Unclipped pseudo-inputs would give another density: the clipping is what is checked above.
    unclipped = vae.encode(pseudo).log_prob(z[:, np.newaxis, :]).numpy()
    assert not np.allclose(np.log(np.mean(np.exp(unclipped), axis=1)), expected, rtol=1e-3)


def test_mixture_log_prob_matches_tfp_in_float64():
    prior = keras_vae.MixtureOfGaussiansPrior(num_components=7)
    prior.build((None, 5))
    rng = np.random.RandomState(0)
    prior.logits.assign(rng.randn(7).astype(np.float32))  # unequal weights, narrow and wide components
    prior.raw_scales.assign(rng.uniform(-3.0, 2.0, (7, 5)).astype(np.float32))
    dist = prior.distribution()
    exact = tfd.MixtureSameFamily(
        tfd.Categorical(logits=tf.cast(dist.mixture_distribution.logits, tf.float64)),
        tfd.MultivariateNormalDiag(tf.cast(dist.components_distribution.mean(), tf.float64),
                                   tf.cast(dist.components_distribution.stddev(), tf.float64)),
    )
    z = rng.randn(3, 4, 5).astype(np.float32) * 2.0  # any leading shape
    got = prior.log_prob(z).numpy()
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got, exact.log_prob(z.astype(np.float64)).numpy(), atol=1e-3, rtol=1e-5)


def test_the_kl_trains_the_pseudo_inputs_and_the_encoder_once():
    vae = _vamp_vae()
    x = (np.random.RandomState(0).rand(4, 4, 4, 1) > 0.5).astype(np.float32)
    with pytest.raises(NotImplementedError):
        tfd.kl_divergence(vae.encode(x), vae.prior.distribution())  # so the VAE uses the Monte Carlo KL
    with tf.GradientTape() as tape:
        (layer,) = vae.draw(x, seed=tf.constant([1, 2])).layers
        assert layer.kl_per_dim is None
        kl = tf.reduce_mean(layer.kl)
    grads = tape.gradient(kl, {"pseudo": vae.prior.pseudo_inputs, "encoder": vae.encoder.trainable_weights[0]})
    assert np.abs(grads["pseudo"].numpy()).max() > 0 and np.abs(grads["encoder"].numpy()).max() > 0
    # The prior owns only its pseudo-inputs; the encoder's weights are the model's, listed once.
    assert [w.path.split("/")[-1] for w in vae.prior.weights] == ["pseudo_inputs"]
    assert len({id(w) for w in vae.weights}) == len(vae.weights)


def test_trains_saves_and_loads_back(tmp_path):
    vae = _vamp_vae(num_pseudo_inputs=5)
    x = (np.random.RandomState(0).rand(64, 4, 4, 1) > 0.5).astype(np.float32)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    start = vae.prior.pseudo_inputs.numpy().copy()
    history = vae.fit(x, batch_size=16, epochs=3, verbose=0).history
    assert np.all(np.isfinite(history["loss"])) and not np.allclose(vae.prior.pseudo_inputs.numpy(), start)

    vae.save(tmp_path / "vamp.keras")
    loaded = keras_vae.load_vae(tmp_path / "vamp.keras")
    assert isinstance(loaded.prior, VampPrior) and loaded.prior.num_pseudo_inputs == 5
    np.testing.assert_array_equal(loaded.prior.pseudo_inputs.numpy(), vae.prior.pseudo_inputs.numpy())
    z = np.random.RandomState(2).randn(6, 2).astype(np.float32)
    np.testing.assert_allclose(loaded.prior.distribution().log_prob(z), vae.prior.distribution().log_prob(z),
                               rtol=1e-6)
    np.testing.assert_array_equal(loaded.sample(4, seed=3), vae.sample(4, seed=3))
    assert np.isfinite(keras_vae.iwae_bound(loaded, x[:4], num_samples=10).numpy()).all()


def test_by_name_and_clear_errors():
    vae = keras_vae.build_vae((4, 4, 1), 2, architecture="mlp", hidden_units=(8,), prior="vamp")
    assert isinstance(vae.prior, VampPrior) and vae.prior.pseudo_inputs.shape == (500, 4, 4, 1)
    with pytest.raises(ValueError, match="num_pseudo_inputs must be >= 1"):
        VampPrior(0)
    with pytest.raises(ValueError, match="needs the model's encoder"):
        VampPrior(3).build((None, 2))
    with pytest.raises(ValueError, match="needs an unconditional model"):
        keras_vae.build_vae((4, 4, 1), 2, architecture="mlp", hidden_units=(8,), variant="cvae", num_classes=3,
                            prior="vamp")
    with pytest.raises(ValueError, match="needs a diagonal Gaussian posterior.*IAFPosterior"):
        keras_vae.build_vae((4, 4, 1), 2, architecture="mlp", hidden_units=(8,), variant="iaf", prior="vamp")
    with pytest.raises(ValueError, match="Unknown prior"):
        keras_vae.get_prior("gaussian")


def test_mixture_samples_follow_its_components_and_temperature_scales_their_spread():
    prior = keras_vae.MixtureOfGaussiansPrior(num_components=2)
    prior.build((None, 1))
    prior.logits.assign([0.0, -50.0])  # all weight on component 0
    prior.locs.assign([[5.0], [-5.0]])
    prior.raw_scales.assign([[0.5413], [0.5413]])  # scale 1
    z = prior.sample(4000, seed=tf.constant([1, 2])).numpy()
    assert z.mean() == pytest.approx(5.0, abs=0.1) and z.std() == pytest.approx(1.0, rel=0.05)
    cold = prior.sample(4000, temperature=0.1, seed=tf.constant([1, 2])).numpy()
    assert cold.mean() == pytest.approx(5.0, abs=0.01) and cold.std() == pytest.approx(0.1, rel=0.05)
    np.testing.assert_array_equal(z, prior.sample(4000, seed=tf.constant([1, 2])))
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="num_components must be an integer >= 1"):
            keras_vae.MixtureOfGaussiansPrior(bad)


def test_gaussian_mixture_log_prob_takes_the_mixture_parameters():
    rng = np.random.RandomState(3)
    logits, loc = rng.randn(4).astype(np.float32), rng.randn(4, 3).astype(np.float32)
    scale = rng.uniform(0.3, 2.0, (4, 3)).astype(np.float32)
    z = rng.randn(6, 3).astype(np.float32)
    exact = tfd.MixtureSameFamily(tfd.Categorical(logits=logits.astype(np.float64)),
                                  tfd.MultivariateNormalDiag(loc.astype(np.float64), scale.astype(np.float64)))
    np.testing.assert_allclose(gaussian_mixture_log_prob(tf.constant(logits), tf.constant(loc), tf.constant(scale),
                                                         z).numpy(), exact.log_prob(z.astype(np.float64)), atol=1e-4)


def test_standard_normal_prior_is_factorized():
    prior = keras_vae.StandardNormalPrior()
    prior.build((None, 3))
    assert prior.marginal().batch_shape == (3,)
    z = np.random.RandomState(0).randn(5, 3).astype(np.float32)
    np.testing.assert_allclose(prior.log_prob(z), -0.5 * (z**2).sum(1) - 1.5 * np.log(2 * np.pi), rtol=1e-5)
    assert keras_vae.MixtureOfGaussiansPrior(2).marginal() is None
