"""Objectives: the ELBO (beta, warm-up, free bits), the capacity ELBO, beta-TCVAE's total correlation and the
importance-weighted bound, each as a part any model takes."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import keras_vae
from keras_vae import VAE
from keras_vae.objectives import total_correlation_terms

tfd = tfp.distributions


def _terms(model, x, labels=None):
    return {k: v.numpy() for k, v in model.objective.terms(model, x, labels, training=False).items()}


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


# ----------------------------------------------------------------- ELBO
def test_elbo_of_a_hand_computed_case(fixed_noise):
    # One 1x2 binary image, a 1-d latent. Encoder: loc = 0.3*(x1+x2) + 0.1, raw_scale = 0.3*(x1+x2) + 0.1.
    encoder = _dense_net((1, 2, 1), 2, kernel=0.3, bias=0.1)
    # Decoder: logits = 2*z - 0.5 for both pixels.
    decoder = _dense_net((1,), 2, kernel=2.0, bias=-0.5, reshape=(1, 2, 1))
    vae = fixed_noise(VAE(encoder, decoder, latent_dim=1, objective=keras_vae.ELBO(beta=1.0)), 0.5)
    x = np.array([[[[1.0], [0.0]]]], np.float32)

    terms = {k: v[0] for k, v in _terms(vae, x).items()}

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
    (layer,) = vae.draw(x, seed=tf.constant([5, 6])).layers
    analytic = layer.kl.numpy()
    z = posterior.sample(200_000, seed=(1, 2))
    prior = vae.prior.distribution()
    monte_carlo = tf.reduce_mean(posterior.log_prob(z) - prior.log_prob(z), axis=0).numpy()
    np.testing.assert_allclose(analytic, monte_carlo, rtol=0.02, atol=5e-3)
    # The analytic KL does not depend on the draw, and the per-dimension KL sums to the total.
    (other,) = vae.draw(x, seed=tf.constant([7, 8])).layers
    np.testing.assert_allclose(other.kl.numpy(), analytic, rtol=1e-6)
    assert layer.kl_per_dim.shape == (3, 4)
    np.testing.assert_allclose(layer.kl_per_dim.numpy().sum(-1), analytic, rtol=1e-5)


def test_mixture_prior_uses_monte_carlo_kl_that_averages_to_the_true_kl():
    vae = keras_vae.build_vae(
        (8, 8, 1), latent_dim=2, architecture="mlp", hidden_units=(16,), prior=keras_vae.MixtureOfGaussiansPrior(3)
    )
    x = np.random.RandomState(0).rand(2, 8, 8, 1).astype(np.float32)
    posterior = vae.encode(x)
    with pytest.raises(NotImplementedError):
        tfd.kl_divergence(posterior, vae.prior.distribution())
    n = 20_000
    (layer,) = vae.draw(x, num_samples=n, seed=tf.constant([3, 4])).layers  # sample-major: [n * batch]
    assert layer.kl_per_dim is None  # no per-dimension KL to a mixture
    z = tf.reshape(layer.z, [n, 2, 2])
    single_sample_kls = tf.reshape(layer.kl, [n, 2])  # MC estimate at each z
    expected = posterior.log_prob(z) - vae.prior.distribution().log_prob(z)
    np.testing.assert_allclose(single_sample_kls, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(tf.reduce_mean(single_sample_kls, 0), tf.reduce_mean(expected, 0), rtol=1e-5)
    assert np.all(np.isfinite(single_sample_kls.numpy()))


def test_free_bits_and_warmup_change_the_charged_kl():
    keras.utils.set_random_seed(0)  # the untrained weights: the KL per dimension depends on them
    kwargs = dict(architecture="mlp", hidden_units=(16,), seed=0)
    x = np.random.RandomState(0).rand(4, 8, 8, 1).astype(np.float32)
    plain = keras_vae.build_vae((8, 8, 1), 3, **kwargs)
    free = keras_vae.build_vae((8, 8, 1), 3, free_bits=5.0, **kwargs)
    free.set_weights(plain.get_weights())
    t_plain, t_free = _terms(plain, x), _terms(free, x)
    # Untrained KL per dim is far below 5 nats, so free bits charge exactly 3 * 5 nats.
    np.testing.assert_allclose(t_free["loss"] - t_free["reconstruction"], 15.0, rtol=1e-5)
    assert np.all(t_plain["loss"] - t_plain["reconstruction"] < 15.0)
    # Each dimension is charged at least the free bits, and its own KL above them.
    some = keras_vae.build_vae((8, 8, 1), 3, free_bits=0.3, **kwargs)
    some.set_weights(plain.get_weights())
    (layer,) = some.draw(x).layers
    per_dim = layer.kl_per_dim.numpy()
    assert (per_dim < 0.3).any() and (per_dim > 0.3).any()
    t_some = _terms(some, x)
    np.testing.assert_allclose(t_some["loss"] - t_some["reconstruction"], np.maximum(per_dim, 0.3).sum(-1),
                               rtol=1e-5)
    np.testing.assert_allclose(t_plain["loss"] - t_plain["reconstruction"], t_plain["kl"], rtol=1e-5)

    warm = keras_vae.build_vae((8, 8, 1), 3, beta=2.0, kl_warmup_steps=10, **kwargs)
    warm.compile(optimizer=keras.optimizers.SGD(0.0))
    warm.optimizer.build(warm.trainable_weights)
    terms = _terms(warm, x)
    np.testing.assert_allclose(terms["loss"] - terms["reconstruction"], 0.2 * terms["kl"], rtol=1e-4)
    warm.optimizer.iterations.assign(100)
    terms = _terms(warm, x)
    np.testing.assert_allclose(terms["loss"] - terms["reconstruction"], 2.0 * terms["kl"], rtol=1e-4)


def test_free_bits_without_a_per_dimension_kl_apply_to_the_layer_total():
    vae = keras_vae.build_vae((8, 8, 1), 3, architecture="mlp", hidden_units=(16,), free_bits=2.0, prior="mixture",
                              seed=0)
    terms = _terms(vae, np.random.RandomState(0).rand(4, 8, 8, 1).astype(np.float32))
    np.testing.assert_allclose(terms["loss"] - terms["reconstruction"], np.maximum(terms["kl"], 6.0), rtol=1e-5)


def test_objective_configs_round_trip_and_bad_settings_are_named():
    for objective in (keras_vae.ELBO(beta=2.0, kl_warmup_steps=3, free_bits=0.5),
                      keras_vae.CapacityELBO(capacity_max=5.0, capacity_steps=10, gamma=3.0),
                      keras_vae.TotalCorrelationELBO(beta=3.0, alpha=0.5, gamma=2.0, dataset_size=100),
                      keras_vae.ImportanceWeightedBound(num_samples=7)):
        again = keras_vae.get_objective(keras.saving.serialize_keras_object(objective))
        assert type(again) is type(objective) and again.get_config() == objective.get_config()
    assert isinstance(keras_vae.get_objective("importance_weighted"), keras_vae.ImportanceWeightedBound)
    with pytest.raises(ValueError, match="Unknown objective 'kl'"):
        keras_vae.get_objective("kl")
    for make, message in ((lambda: keras_vae.ELBO(beta=-1.0), "beta"),
                          (lambda: keras_vae.ELBO(kl_warmup_steps=1.5), "kl_warmup_steps"),
                          (lambda: keras_vae.ELBO(free_bits=float("nan")), "free_bits"),
                          (lambda: keras_vae.ImportanceWeightedBound(1), "num_samples"),
                          (lambda: keras_vae.TotalCorrelationELBO(dataset_size=0), "dataset_size")):
        with pytest.raises(ValueError, match=message):
            make()


# ----------------------------------------------------------------- importance-weighted bound
def test_importance_weighted_training_objective():
    keras.utils.set_random_seed(0)
    prototypes = (np.random.RandomState(1).rand(4, 8, 8, 1) > 0.5).astype(np.float32)
    x = prototypes[np.arange(64) % 4]  # four patterns: learnable, unlike independent random pixels
    options = dict(latent_dim=2, architecture="mlp", hidden_units=(32,), seed=0)
    with pytest.raises(ValueError, match="iw_train_samples must be an integer >= 1"):
        keras_vae.build_vae((8, 8, 1), iw_train_samples=0, **options)
    vae = keras_vae.build_vae((8, 8, 1), iw_train_samples=50, **options)
    assert isinstance(vae.objective, keras_vae.ImportanceWeightedBound) and vae.objective.num_samples == 50
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    # loss is -IWAE(K=50); elbo stays the ELBO, which is looser: -loss sits above it and near iwae_bound.
    result = vae.evaluate(x, batch_size=64, verbose=0, return_dict=True)
    assert -result["loss"] > result["elbo"] + 0.5, result
    assert -result["loss"] == pytest.approx(keras_vae.iwae_bound(vae, x, num_samples=50).numpy().mean(), abs=0.5)
    history = vae.fit(x, batch_size=16, epochs=15, verbose=0).history
    assert history["loss"][-1] < 0.6 * history["loss"][0], history["loss"]
    loaded = keras_vae.VAE.from_config(vae.get_config())
    assert isinstance(loaded.objective, keras_vae.ImportanceWeightedBound) and loaded.objective.num_samples == 50
    # K = 1 is the plain ELBO objective.
    single = keras_vae.build_vae((8, 8, 1), iw_train_samples=1, **options)
    assert isinstance(single.objective, keras_vae.ELBO)
    single.compile(optimizer="adam")
    result = single.evaluate(x, batch_size=64, verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(-result["elbo"], rel=1e-6)


# ----------------------------------------------------------------- beta-VAE and the capacity ELBO
def _beta_vae(**options):
    return keras_vae.build_vae((14, 14, 1), 3, architecture="mlp", hidden_units=(32,), variant="beta_vae", seed=0,
                               **options)


def test_beta_weights_the_kl(small_images, fixed_noise):
    model = fixed_noise(_beta_vae(beta=4.0), 0.0)
    terms = _terms(model, small_images[:8])
    np.testing.assert_allclose(terms["loss"], terms["reconstruction"] + 4.0 * terms["kl"], rtol=1e-6)
    assert isinstance(model.objective, keras_vae.ELBO)
    assert model.objective.beta == 4.0 and "capacity" not in terms


def test_capacity_ramps_linearly_and_the_loss_is_gamma_times_the_kl_gap(small_images, fixed_noise):
    model = fixed_noise(_beta_vae(capacity_max=10.0, capacity_steps=100, gamma=50.0), 0.0)
    assert isinstance(model.objective, keras_vae.CapacityELBO)
    model.compile(optimizer="adam")
    for step, capacity in ((0, 0.0), (30, 3.0), (100, 10.0), (250, 10.0)):
        model.optimizer.iterations.assign(step)
        terms = _terms(model, small_images[:8])
        np.testing.assert_allclose(terms["capacity"], capacity, rtol=1e-6)
        np.testing.assert_allclose(
            terms["loss"], terms["reconstruction"] + 50.0 * np.abs(terms["kl"] - capacity), rtol=1e-5
        )


def test_capacity_training_pulls_the_kl_towards_the_target(small_images, train_briefly, tmp_path):
    model = _beta_vae(capacity_max=6.0, capacity_steps=20, gamma=20.0)
    before, after, history = train_briefly(model, small_images, epochs=15)
    assert set(history) == {"loss", "reconstruction", "kl", "elbo", "capacity", "skipped_steps"}
    assert after["capacity"] == pytest.approx(6.0)
    assert abs(after["kl"] - 6.0) < 2.0, after  # untrained KL is < 1 nat
    assert -after["elbo"] < 0.7 * -before["elbo"], (before, after)
    model.save(tmp_path / "b.keras")
    loaded = keras_vae.load_vae(tmp_path / "b.keras")
    assert isinstance(loaded, VAE) and isinstance(loaded.objective, keras_vae.CapacityELBO)
    objective = loaded.objective
    assert (objective.capacity_max, objective.capacity_steps, objective.gamma) == (6.0, 20, 20.0)
    assert int(loaded.optimizer.iterations) == 60


def test_bad_capacity_settings_raise():
    with pytest.raises(ValueError, match="capacity_steps"):
        _beta_vae(capacity_max=5.0, capacity_steps=0)
    with pytest.raises(ValueError, match="capacity_max"):
        _beta_vae(capacity_max=-1.0)


# ----------------------------------------------------------------- beta-TCVAE
def _log_normal(z, loc, scale):
    return -0.5 * ((z - loc) / scale) ** 2 - np.log(scale) - 0.5 * math.log(2 * math.pi)


def _logsumexp(a, axis):
    top = a.max(axis=axis, keepdims=True)
    return np.squeeze(top, axis) + np.log(np.exp(a - top).sum(axis=axis))


def test_minibatch_weighted_sampling_matches_numpy():
    rng = np.random.RandomState(0)
    m, d, n = 6, 3, 1000
    loc, scale = rng.randn(m, d).astype(np.float32), rng.uniform(0.3, 1.5, (m, d)).astype(np.float32)
    z = (loc + scale * rng.randn(m, d)).astype(np.float32)
    log_prior = _log_normal(z, 0.0, 1.0).sum(1)
    terms = {k: v.numpy() for k, v in total_correlation_terms(z, loc, scale, log_prior, n).items()}

    pairs = _log_normal(z[:, None, :], loc[None], scale[None])  # [i, j, d]
    log_qz = _logsumexp(pairs.sum(2), axis=1) - math.log(n * m)
    log_prod = (_logsumexp(pairs, axis=1) - math.log(n * m)).sum(1)
    log_qzx = _log_normal(z, loc, scale).sum(1)
    np.testing.assert_allclose(terms["mi"], log_qzx - log_qz, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(terms["tc"], log_qz - log_prod, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(terms["dim_kl"], log_prod - log_prior, rtol=1e-4, atol=1e-4)


def test_unit_weights_give_back_the_vae_objective_and_beta_weights_the_tc(small_images, fixed_noise):
    model = keras_vae.build_vae((14, 14, 1), 3, architecture="mlp", hidden_units=(32,), variant="beta_tcvae",
                                dataset_size=5000, beta=1.0, seed=0)
    assert isinstance(model.objective, keras_vae.TotalCorrelationELBO)
    fixed_noise(model, 0.3)
    x = small_images[:16]
    terms = _terms(model, x)
    q = model.encode(x)
    z = (q.mean() + 0.3 * q.stddev()).numpy()
    mc_kl = q.log_prob(z).numpy() - model.prior.distribution().log_prob(z).numpy()
    # MI + TC + dimension-wise KL telescopes to log q(z|x) - log p(z).
    np.testing.assert_allclose(terms["mi"] + terms["tc"] + terms["dim_kl"], mc_kl, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(terms["loss"], terms["reconstruction"] + mc_kl, rtol=1e-4, atol=1e-3)
    model.objective.beta = 6.0
    heavy = _terms(model, x)["loss"]
    np.testing.assert_allclose(heavy - terms["loss"], 5.0 * terms["tc"], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("prior", ["standard_normal", "mixture"])
def test_training_improves_and_reports_the_tc(small_images, train_briefly, tmp_path, prior):
    model = keras_vae.build_vae((14, 14, 1), 3, architecture="mlp", hidden_units=(32,), variant="beta_tcvae",
                                dataset_size=len(small_images), prior=prior, seed=0)
    before, after, history = train_briefly(model, small_images, epochs=10)
    assert set(history) == {"loss", "reconstruction", "kl", "elbo", "mi", "tc", "dim_kl", "skipped_steps"}
    assert after["loss"] < 0.7 * before["loss"], (before, after)
    assert -after["elbo"] < 0.7 * -before["elbo"], (before, after)
    assert np.isfinite(after["tc"])
    model.save(tmp_path / "tc.keras")
    loaded = keras_vae.load_vae(tmp_path / "tc.keras")
    assert isinstance(loaded.objective, keras_vae.TotalCorrelationELBO)
    objective = loaded.objective
    assert (objective.dataset_size, objective.beta, objective.alpha, objective.gamma) == (64, 6.0, 1.0, 1.0)


def test_dataset_size_comes_from_the_arrays_given_to_fit_or_is_required(small_images):
    def model(**options):
        return keras_vae.build_vae((14, 14, 1), 2, architecture="mlp", hidden_units=(8,), variant="beta_tcvae",
                                   seed=0, **options)

    unsized = model()
    unsized.compile(optimizer="adam")
    with pytest.raises(ValueError, match="dataset_size"):
        unsized.fit(tf.data.Dataset.from_tensor_slices(small_images).batch(16), verbose=0)
    with pytest.raises(ValueError, match="dataset_size"):
        unsized.objective.terms(unsized, small_images[:4], None, training=False)
    unsized.fit(small_images[:48], batch_size=16, epochs=1, verbose=0, validation_split=0.25)
    assert unsized.objective.dataset_size == 36  # the training part only
    given = model(dataset_size=1000)
    given.compile(optimizer="adam")
    given.fit(small_images, batch_size=16, epochs=1, verbose=0)
    assert given.objective.dataset_size == 1000  # a given size is kept


def test_total_correlation_needs_one_diagonal_gaussian_layer():
    with pytest.raises(ValueError, match="diagonal Gaussian posterior"):
        keras_vae.build_vae((14, 14, 1), 2, architecture="mlp", hidden_units=(8,), variant="beta_tcvae",
                            posterior="iaf", dataset_size=10)
    encoder, decoder = keras_vae.mlp_encoder((8, 8, 1), 2), keras_vae.mlp_decoder((8, 8, 1), 2)
    with pytest.raises(ValueError, match="one stochastic layer"):
        keras_vae.LadderVAE(encoder, decoder, 2, lower_latent_dims=(2,),
                            objective=keras_vae.TotalCorrelationELBO(dataset_size=10))
