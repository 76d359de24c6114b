"""The ladder VAE: a hierarchy of stochastic layers with precision-weighted top-down inference."""

import numpy as np
import pytest
import tensorflow as tf

import keras_vae
from keras_vae import LadderVAE
from keras_vae.ladder import precision_weighted


def _model(**options):
    options = {"lower_latent_dims": (6, 4), "ladder_units": 32, **options}
    return keras_vae.build_vae((14, 14, 1), 2, architecture="mlp", hidden_units=(32,), variant="ladder", seed=0,
                               **options)


def _terms(model, x):
    return {k: v.numpy() for k, v in model.objective.terms(model, x, None, training=False).items()}


def test_precision_weighted_merge_is_the_normalized_product_of_the_two_gaussians():
    grid = np.linspace(-8, 8, 20001)
    density = np.exp(-0.5 * ((grid - 1.0) / 0.5) ** 2) * np.exp(-0.5 * ((grid + 2.0) / 2.0) ** 2)
    density /= np.trapezoid(density, grid)
    loc, scale = (t.numpy() for t in precision_weighted(tf.constant(1.0), tf.constant(0.5), tf.constant(-2.0),
                                                         tf.constant(2.0)))
    assert loc == pytest.approx(np.trapezoid(grid * density, grid), abs=1e-4)
    assert scale == pytest.approx(np.sqrt(np.trapezoid((grid - loc) ** 2 * density, grid)), abs=1e-4)


def test_elbo_with_analytic_lower_kls_equals_the_mean_log_importance_weight(small_images):
    # E_q[log p(x, z_1..3) - log q(z_1..3 | x)] is the ELBO: two estimators of it, one through the
    # analytic per-layer KLs (the objective's terms), one through the densities (log_importance_weights).
    model = _model()
    assert isinstance(model, LadderVAE) and model.latent_dims == (6, 4, 2)
    x = small_images[:2]
    draws = 3000
    elbo = _terms(model, np.repeat(x, draws, axis=0))["elbo"].reshape(2, draws).mean(axis=1)
    log_w = model.log_importance_weights(x, draws, seed=tf.constant([1, 2])).numpy().mean(axis=0)
    np.testing.assert_allclose(log_w, elbo, atol=0.25)
    # And the importance-weighted bound is tighter than the ELBO.
    iwae = keras_vae.iwae_bound(model, x, num_samples=500, chunk_size=250).numpy()
    assert np.all(iwae > elbo)


def test_kl_is_the_sum_of_the_layer_kls_and_decode_is_deterministic(small_images):
    model = _model()
    terms = _terms(model, small_images[:8])
    np.testing.assert_allclose(terms["kl"], terms["kl_1"] + terms["kl_2"] + terms["kl_3"], rtol=1e-5)
    assert np.all(terms["kl_1"] >= 0) and np.all(terms["kl_3"] >= 0)
    z = np.random.RandomState(0).randn(3, 2).astype(np.float32)
    np.testing.assert_array_equal(model.decode(z), model.decode(z))
    assert model.encode(small_images[:3]).event_shape == (2,)
    assert [loc.shape[-1] for loc, _ in model.posterior_parameters(small_images[:3])] == [6, 4, 2]
    # Ancestral samples are seeded, and differ from the deterministic top-only decoding.
    np.testing.assert_array_equal(model.sample(3, seed=4), model.sample(3, seed=4))
    assert not np.allclose(model.sample(3, seed=4), model.sample(3, seed=5))
    codes = model.sample_prior(3, seed=4)
    assert not np.allclose(model.sample(3, seed=4), model.decode(codes))


@pytest.mark.parametrize("prior", ["standard_normal", "mixture", "vamp"])
def test_training_improves_and_round_trips(small_images, train_briefly, tmp_path, prior):
    model = _model(lower_latent_dims=(6,), prior=prior)
    before, after, history = train_briefly(model, small_images, epochs=10)
    assert set(history) == {"loss", "reconstruction", "kl", "elbo", "kl_1", "kl_2", "skipped_steps"}
    assert -after["elbo"] < 0.6 * -before["elbo"], (before, after)
    model.save(tmp_path / "ladder.keras")
    loaded = keras_vae.load_vae(tmp_path / "ladder.keras")
    assert isinstance(loaded, LadderVAE) and loaded.lower_latent_dims == (6,) and loaded.ladder_units == 32
    seed = tf.constant([3, 4])
    np.testing.assert_allclose(loaded.log_importance_weights(small_images[:4], 5, seed=seed),
                               model.log_importance_weights(small_images[:4], 5, seed=seed), rtol=1e-5)


def test_importance_weighted_objective_reports_the_layer_kls(small_images):
    model = _model(iw_train_samples=3)
    assert isinstance(model.objective, keras_vae.ImportanceWeightedBound)
    terms = _terms(model, small_images[:4])
    assert {"kl_1", "kl_2", "kl_3"} <= set(terms)
    np.testing.assert_allclose(terms["kl"], terms["kl_1"] + terms["kl_2"] + terms["kl_3"], rtol=1e-5)


def test_needs_two_stochastic_layers():
    with pytest.raises(ValueError, match=">= 2 stochastic layers"):
        _model(lower_latent_dims=())
    with pytest.raises(ValueError, match="ladder_units must be >= 1"):
        _model(ladder_units=0)
