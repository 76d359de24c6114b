import math

import numpy as np
import pytest

import keras_vae
from keras_vae.variants import BetaTCVAE, total_correlation_terms


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


def test_unit_weights_give_back_the_vae_objective_and_beta_weights_the_tc(small_images):
    model = keras_vae.build_vae((14, 14, 1), 3, architecture="mlp", hidden_units=(32,), variant="beta_tcvae",
                                dataset_size=5000, beta=1.0, seed=0)
    model.sample_posterior = lambda posterior: posterior.mean() + 0.3 * posterior.stddev()
    x = small_images[:16]
    terms = {k: v.numpy() for k, v in model.compute_terms(x).items()}
    q = model.encode(x)
    z = (q.mean() + 0.3 * q.stddev()).numpy()
    mc_kl = q.log_prob(z).numpy() - model.prior.distribution().log_prob(z).numpy()
    # MI + TC + dimension-wise KL telescopes to log q(z|x) - log p(z).
    np.testing.assert_allclose(terms["mi"] + terms["tc"] + terms["dim_kl"], mc_kl, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(terms["loss"], terms["reconstruction"] + mc_kl, rtol=1e-4, atol=1e-3)
    model.beta = 6.0
    heavy = model.compute_terms(x)["loss"].numpy()
    np.testing.assert_allclose(heavy - terms["loss"], 5.0 * terms["tc"], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("prior", ["standard_normal", "mixture"])
def test_training_improves_and_reports_the_tc(small_images, train_briefly, tmp_path, prior):
    model = keras_vae.build_vae((14, 14, 1), 3, architecture="mlp", hidden_units=(32,), variant="beta_tcvae",
                                dataset_size=len(small_images), prior=prior, seed=0)
    before, after, history = train_briefly(model, small_images, epochs=10)
    assert set(history) == {"loss", "reconstruction", "kl", "elbo", "mi", "tc", "dim_kl"}
    assert after["loss"] < 0.7 * before["loss"], (before, after)
    assert -after["elbo"] < 0.7 * -before["elbo"], (before, after)
    assert np.isfinite(after["tc"])
    model.save(tmp_path / "tc.keras")
    loaded = keras_vae.load_vae(tmp_path / "tc.keras")
    assert isinstance(loaded, BetaTCVAE)
    assert (loaded.dataset_size, loaded.beta, loaded.alpha, loaded.gamma) == (64, 6.0, 1.0, 1.0)


def test_dataset_size_is_required():
    with pytest.raises(ValueError, match="dataset_size"):
        keras_vae.build_vae((14, 14, 1), 3, architecture="mlp", variant="beta_tcvae")
