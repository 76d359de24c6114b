import numpy as np
import pytest

import keras_vae
from keras_vae.variants import BetaVAE


def _model(**options):
    return keras_vae.build_vae((14, 14, 1), 3, architecture="mlp", hidden_units=(32,), variant="beta_vae", seed=0,
                               **options)


def test_beta_weights_the_kl(small_images):
    model = _model(beta=4.0)
    model.sample_posterior = lambda posterior: posterior.mean()
    terms = model.compute_terms(small_images[:8])
    np.testing.assert_allclose(terms["loss"], terms["reconstruction"] + 4.0 * terms["kl"], rtol=1e-6)
    assert model.beta == 4.0 and "capacity" not in terms


def test_capacity_ramps_linearly_and_the_loss_is_gamma_times_the_kl_gap(small_images):
    model = _model(capacity_max=10.0, capacity_steps=100, gamma=50.0)
    model.compile(optimizer="adam")
    model.sample_posterior = lambda posterior: posterior.mean()
    for step, capacity in ((0, 0.0), (30, 3.0), (100, 10.0), (250, 10.0)):
        model.optimizer.iterations.assign(step)
        terms = {k: v.numpy() for k, v in model.compute_terms(small_images[:8]).items()}
        np.testing.assert_allclose(terms["capacity"], capacity, rtol=1e-6)
        np.testing.assert_allclose(
            terms["loss"], terms["reconstruction"] + 50.0 * np.abs(terms["kl"] - capacity), rtol=1e-5
        )


def test_capacity_training_pulls_the_kl_towards_the_target(small_images, train_briefly, tmp_path):
    model = _model(capacity_max=6.0, capacity_steps=20, gamma=20.0)
    before, after, history = train_briefly(model, small_images, epochs=15)
    assert set(history) == {"loss", "reconstruction", "kl", "elbo", "capacity"}
    assert after["capacity"] == pytest.approx(6.0)
    assert abs(after["kl"] - 6.0) < 2.0, after  # untrained KL is < 1 nat
    assert -after["elbo"] < 0.7 * -before["elbo"], (before, after)
    model.save(tmp_path / "b.keras")
    loaded = keras_vae.load_vae(tmp_path / "b.keras")
    assert isinstance(loaded, BetaVAE)
    assert (loaded.beta, loaded.capacity_max, loaded.capacity_steps, loaded.gamma) == (4.0, 6.0, 20, 20.0)
    assert int(loaded.optimizer.iterations) == 60


def test_bad_capacity_settings_raise():
    with pytest.raises(ValueError, match="capacity_steps"):
        _model(capacity_max=5.0, capacity_steps=0)
    with pytest.raises(ValueError, match="capacity_max"):
        _model(capacity_max=-1.0)
