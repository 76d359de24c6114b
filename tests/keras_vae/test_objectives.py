import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import keras_vae
from keras_vae import VAE

tfd = tfp.distributions


class FixedNoiseVAE(VAE):
    """Draws z = mean + 0.5 * stddev instead of a random sample, so terms can be computed by hand."""

    def sample_posterior(self, posterior):
        return posterior.mean() + 0.5 * posterior.stddev()


def _dense_net(input_shape, units, kernel, bias, reshape=None):
    layers = [keras.Input(shape=input_shape), keras.layers.Flatten()]
    layers.append(
        keras.layers.Dense(
            units,
            kernel_initializer=keras.initializers.Constant(kernel),
            bias_initializer=keras.initializers.Constant(bias),
        )
    )
    if reshape:
        layers.append(keras.layers.Reshape(reshape))
    return keras.Sequential(layers)


def test_elbo_of_a_hand_computed_case():
    # One 1x2 binary image, a 1-d latent. Encoder: loc = 0.3*(x1+x2) + 0.1, raw_scale = 0.3*(x1+x2) + 0.1.
    encoder = _dense_net((1, 2, 1), 2, kernel=0.3, bias=0.1)
    # Decoder: logits = 2*z - 0.5 for both pixels.
    decoder = _dense_net((1,), 2, kernel=2.0, bias=-0.5, reshape=(1, 2, 1))
    vae = FixedNoiseVAE(encoder, decoder, latent_dim=1, beta=1.0)
    x = np.array([[[[1.0], [0.0]]]], np.float32)

    terms = {k: v.numpy()[0] for k, v in vae.compute_terms(x).items()}

    loc = 0.3 * 1 + 0.1
    scale = math.log1p(math.exp(0.3 * 1 + 0.1)) + 1e-4
    z = loc + 0.5 * scale
    p = 1 / (1 + math.exp(-(2 * z - 0.5)))
    log_px_z = math.log(p) + math.log(1 - p)
    kl = 0.5 * (scale**2 + loc**2 - 1) - math.log(scale)
    assert terms["reconstruction"] == pytest.approx(-log_px_z, rel=1e-5)
    assert terms["kl"] == pytest.approx(kl, rel=1e-5)
    assert terms["elbo"] == pytest.approx(log_px_z - kl, rel=1e-5)
    assert terms["loss"] == pytest.approx(-log_px_z + kl, rel=1e-5)


def test_analytic_kl_matches_monte_carlo():
    vae = keras_vae.build_vae((8, 8, 1), latent_dim=4, architecture="mlp", hidden_units=(16,))
    x = np.random.RandomState(0).rand(3, 8, 8, 1).astype(np.float32)
    posterior = vae.encode(x)
    analytic = vae.kl_divergence(posterior, z=None).numpy()
    z = posterior.sample(200_000, seed=(1, 2))
    prior = vae.prior.distribution()
    monte_carlo = tf.reduce_mean(posterior.log_prob(z) - prior.log_prob(z), axis=0).numpy()
    np.testing.assert_allclose(analytic, monte_carlo, rtol=0.02, atol=5e-3)
    # Per-dimension KL sums to the total.
    np.testing.assert_allclose(vae.kl_per_dimension(posterior).numpy().sum(-1), analytic, rtol=1e-5)


def test_mixture_prior_uses_monte_carlo_kl_that_averages_to_the_true_kl():
    vae = keras_vae.build_vae(
        (8, 8, 1), latent_dim=2, architecture="mlp", hidden_units=(16,), prior=keras_vae.MixtureOfGaussiansPrior(3)
    )
    x = np.random.RandomState(0).rand(2, 8, 8, 1).astype(np.float32)
    posterior = vae.encode(x)
    with pytest.raises(NotImplementedError):
        tfd.kl_divergence(posterior, vae.prior.distribution())
    z = posterior.sample(100_000, seed=(3, 4))
    single_sample_kls = vae.kl_divergence(posterior, z)  # MC estimate at each z: [n, batch]
    expected = tf.reduce_mean(posterior.log_prob(z) - vae.prior.distribution().log_prob(z), axis=0)
    np.testing.assert_allclose(tf.reduce_mean(single_sample_kls, 0), expected, rtol=1e-5)
    assert np.all(np.isfinite(single_sample_kls.numpy()))


def test_iwae_bound_tightens_with_more_samples_and_sits_above_the_elbo():
    vae = keras_vae.build_vae((8, 8, 1), latent_dim=2, architecture="mlp", hidden_units=(32,), seed=0)
    x = (np.random.RandomState(1).rand(64, 8, 8, 1) > 0.5).astype(np.float32)
    # K=1 is the ELBO: their averages over 20 draws per example agree within sampling error.
    elbo = np.mean([vae.compute_terms(x)["elbo"].numpy() for _ in range(20)])
    k1 = np.mean([keras_vae.iwae_bound(vae, x, num_samples=1, seed=s).numpy() for s in range(20)])
    assert k1 == pytest.approx(elbo, abs=0.6)
    bounds = {k: keras_vae.iwae_bound(vae, x, num_samples=k, chunk_size=64, seed=0).numpy() for k in (1, 10, 500)}
    assert bounds[1].mean() < bounds[10].mean() < bounds[500].mean()
    # Chunking does not change the estimate.
    np.testing.assert_allclose(
        keras_vae.iwae_bound(vae, x, num_samples=500, chunk_size=7, seed=0).numpy().mean(),
        bounds[500].mean(),
        atol=0.2,
    )


def test_free_bits_and_warmup_change_the_charged_kl():
    kwargs = dict(architecture="mlp", hidden_units=(16,), seed=0)
    x = np.random.RandomState(0).rand(4, 8, 8, 1).astype(np.float32)
    plain = keras_vae.build_vae((8, 8, 1), 3, **kwargs)
    free = keras_vae.build_vae((8, 8, 1), 3, free_bits=2.0, **kwargs)
    free.set_weights(plain.get_weights())
    t_plain, t_free = plain.compute_terms(x), free.compute_terms(x)
    # Untrained KL per dim is far below 2 nats, so free bits charge exactly 3 * 2 nats.
    np.testing.assert_allclose(t_free["loss"] - t_free["reconstruction"], 6.0, rtol=1e-5)
    assert np.all(t_plain["loss"].numpy() - t_plain["reconstruction"].numpy() < 6.0)

    warm = keras_vae.build_vae((8, 8, 1), 3, beta=2.0, kl_warmup_steps=10, **kwargs)
    warm.compile(optimizer=keras.optimizers.SGD(0.0))
    warm.optimizer.build(warm.trainable_weights)
    assert float(warm.current_beta()) == pytest.approx(0.2)
    warm.optimizer.iterations.assign(100)
    assert float(warm.current_beta()) == pytest.approx(2.0)


def test_importance_weighted_training_objective():
    keras.utils.set_random_seed(0)
    prototypes = (np.random.RandomState(1).rand(4, 8, 8, 1) > 0.5).astype(np.float32)
    x = prototypes[np.arange(64) % 4]  # four patterns: learnable, unlike independent random pixels
    options = dict(latent_dim=2, architecture="mlp", hidden_units=(32,), seed=0)
    with pytest.raises(ValueError, match="iw_train_samples must be >= 1"):
        keras_vae.build_vae((8, 8, 1), iw_train_samples=0, **options)
    vae = keras_vae.build_vae((8, 8, 1), iw_train_samples=50, **options)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    # loss is -IWAE(K=50); elbo stays the ELBO, which is looser: -loss sits above it and near iwae_bound.
    result = vae.evaluate(x, batch_size=64, verbose=0, return_dict=True)
    assert -result["loss"] > result["elbo"] + 0.5, result
    assert -result["loss"] == pytest.approx(keras_vae.iwae_bound(vae, x, num_samples=50).numpy().mean(), abs=0.5)
    history = vae.fit(x, batch_size=16, epochs=15, verbose=0).history
    assert history["loss"][-1] < 0.6 * history["loss"][0], history["loss"]
    loaded = keras_vae.VAE.from_config(vae.get_config())
    assert loaded.iw_train_samples == 50
    # K = 1 is the plain ELBO objective.
    single = keras_vae.build_vae((8, 8, 1), iw_train_samples=1, **options)
    single.compile(optimizer="adam")
    result = single.evaluate(x, batch_size=64, verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(-result["elbo"], rel=1e-6)


def _held_out_vae(binary_images):
    """A VAE trained on 48 images, and 16 it has not seen (where its encoder proposes worse)."""
    keras.utils.set_random_seed(0)
    vae = keras_vae.build_vae((28, 28, 1), 4, architecture="mlp", hidden_units=(32,), seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(3e-3))
    vae.fit(binary_images[:48], epochs=20, batch_size=16, verbose=0)
    return vae, binary_images[48:]


def test_refine_posterior_tightens_the_bound_and_leaves_the_model_alone(binary_images):
    vae, x = _held_out_vae(binary_images)
    weights = [w.copy() for w in vae.get_weights()]
    refined = keras_vae.refine_posterior(vae, x, steps=100, learning_rate=0.05, seed=3)
    for before, after in zip(weights, vae.get_weights()):
        np.testing.assert_array_equal(before, after)
    (loc, scale), = refined
    assert loc.shape == (16, 4) and scale.shape == (16, 4) and np.all(scale.numpy() > 0)
    amortized = keras_vae.iwae_bound(vae, x, num_samples=200, chunk_size=100, seed=1).numpy()
    tighter = keras_vae.iwae_bound(vae, x, num_samples=200, chunk_size=100, seed=1, parameters=refined).numpy()
    assert tighter.mean() > amortized.mean() + 1.0, (tighter.mean(), amortized.mean())  # 2.6 to 6.4 seen
    # The one-sample bound (the ELBO of the refined q) gains more: the refinement maximized a 10-sample bound.
    elbo = {name: np.mean([keras_vae.iwae_bound(vae, x, num_samples=1, seed=s, parameters=p).numpy()
                           for s in range(30)]) for name, p in (("amortized", None), ("refined", refined))}
    assert elbo["refined"] > elbo["amortized"] + 3.0, elbo  # 6.5 to 17 seen


def test_refine_posterior_with_no_steps_is_the_encoder_and_bad_arguments_are_named(binary_images):
    vae = keras_vae.build_vae((28, 28, 1), 4, architecture="mlp", hidden_units=(32,), seed=0)
    x = binary_images[:4]
    (loc, scale), = keras_vae.refine_posterior(vae, x, steps=0)
    posterior = vae.encode(x)
    np.testing.assert_allclose(loc, posterior.mean(), rtol=1e-6)
    np.testing.assert_allclose(scale, posterior.stddev(), rtol=1e-6)
    for kwargs, message in ((dict(steps=-1), "steps must be >= 0"), (dict(learning_rate=0.0), "learning_rate"),
                            (dict(num_samples=0), "num_samples must be >= 1")):
        with pytest.raises(ValueError, match=message):
            keras_vae.refine_posterior(vae, x, **kwargs)
    with pytest.raises(ValueError, match="images"):
        keras_vae.refine_posterior(vae, x[:, :20], steps=1)


def test_refine_posterior_never_returns_non_finite_parameters(binary_images):
    # A huge step size throws the scales to overflow: those updates are refused, so the proposal stays
    # finite and the bound stays a finite (if loose) bound.
    vae = keras_vae.build_vae((28, 28, 1), 4, architecture="mlp", hidden_units=(32,), seed=0)
    x = binary_images[:8]
    refined = keras_vae.refine_posterior(vae, x, steps=30, learning_rate=1e4)
    assert all(np.all(np.isfinite(t.numpy())) for pair in refined for t in pair)
    assert np.all(np.isfinite(keras_vae.iwae_bound(vae, x, num_samples=10, parameters=refined).numpy()))
