import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae
from keras_vae.anomaly import anomaly_scores, score_threshold


def _bars(n, seed):
    """14x14 binary images, each one horizontal bar of random position and thickness."""
    rng = np.random.RandomState(seed)
    top, height = rng.randint(0, 11, size=(n, 1)), rng.randint(2, 5, size=(n, 1))
    rows = np.arange(14)[np.newaxis]
    on = (rows >= top) & (rows < top + height)  # [n, 14]
    return np.broadcast_to(on[:, :, np.newaxis, np.newaxis], (n, 14, 14, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def trained():
    images = _bars(96, seed=5)
    vae = keras_vae.build_vae((14, 14, 1), 3, architecture="mlp", hidden_units=(48,), seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(5e-3))
    vae.fit(images, batch_size=32, epochs=20, verbose=0)
    return vae, images


def test_noise_scores_higher_than_normal_data_under_both_methods(trained):
    vae, images = trained
    noise = (np.random.RandomState(0).rand(20, 14, 14, 1) > 0.5).astype(np.float32)
    for method in ("elbo", "iwae"):
        normal = anomaly_scores(vae, images, method=method, num_samples=20, batch_size=40)
        odd = anomaly_scores(vae, noise, method=method, num_samples=20)
        assert normal.shape == (96,) and odd.shape == (20,)
        assert odd.min() > score_threshold(normal, 0.99), method


def test_scores_are_the_negative_elbo_and_iwae_nll_and_are_seeded(trained):
    vae, images = trained
    x = images[:8]
    elbo = anomaly_scores(vae, x, method="elbo", num_samples=400)
    np.testing.assert_array_equal(elbo, anomaly_scores(vae, x, method="elbo", num_samples=400))
    # 400 draws average the per-example negative ELBO of the objective's terms.
    terms = vae.objective.terms(vae, np.repeat(x, 400, axis=0), None, training=False)
    draws = terms["elbo"].numpy().reshape(8, 400)
    # Two independent 400-draw Monte Carlo estimates, within 6 standard errors of their difference (at least
    # 1 nat): the scores average log importance weights (a sampled KL), noisier than the terms' analytic KL, and
    # their draws depend on what ran before in the process, so a fixed 1 nat failed now and then.
    log_w = np.asarray(vae.log_importance_weights(x, 400, seed=tf.constant([7, 0], tf.int32)))  # [400, 8]
    tolerance = np.maximum(6 * np.sqrt(log_w.var(0) + draws.var(1)) / np.sqrt(400), 1.0)  # heavy tails
    assert np.all(np.abs(elbo + draws.mean(1)) <= tolerance), (elbo, -draws.mean(1), tolerance)
    iwae = anomaly_scores(vae, x, method="iwae", num_samples=200, seed=1)
    np.testing.assert_allclose(iwae, -keras_vae.iwae_bound(vae, x, num_samples=200, chunk_size=100,
                                                            seed=_first_batch_seed(1)), rtol=1e-6)
    assert np.all(iwae <= elbo + 0.05)  # the importance-weighted bound is tighter


def _first_batch_seed(seed):
    return int(np.random.SeedSequence([seed, 0]).generate_state(1)[0] % 2**31)


def test_threshold_is_the_quantile_and_bad_input_raises(trained):
    scores = np.arange(101, dtype=float)
    assert score_threshold(scores, 0.9) == pytest.approx(90.0)
    with pytest.raises(ValueError, match="quantile"):
        score_threshold(scores, 1.0)
    vae, images = trained
    with pytest.raises(ValueError, match="non-finite"):
        anomaly_scores(vae, np.full((2, 14, 14, 1), np.nan, np.float32))
    with pytest.raises(ValueError, match="Unknown score method"):
        anomaly_scores(vae, images[:2], method="mse")
    with pytest.raises(ValueError, match=r"shape \((n|batch), 14, 14, 1\)"):
        anomaly_scores(vae, images[:2, :10])


def test_conditional_models_are_scored_with_their_labels():
    images = _bars(8, seed=1)
    labels = np.arange(8) % 2
    cvae = keras_vae.build_vae((14, 14, 1), 2, architecture="mlp", hidden_units=(8,), variant="cvae", num_classes=2,
                               seed=0)
    for method in ("elbo", "iwae"):
        scores = anomaly_scores(cvae, images, method=method, num_samples=4, labels=labels)
        assert scores.shape == (8,) and np.all(np.isfinite(scores))
        np.testing.assert_array_equal(scores, anomaly_scores(cvae, images, method=method, num_samples=4,
                                                             labels=labels))
        assert np.abs(anomaly_scores(cvae, images, method=method, num_samples=4, labels=1 - labels)
                      - scores).max() > 1e-4  # the labels reach the model
    with pytest.raises(ValueError, match="needs labels"):
        anomaly_scores(cvae, images)
