"""The sample-quality metric on cases whose answer is known: Gaussian features with a closed-form Fréchet
distance, and images (held-out real ones score near 0 and high precision/recall; noise and a collapsed
generator score far worse)."""

import keras
import numpy as np
import pytest

from keras_vae.sample_quality import (extract_features, feature_extractor, feature_network, frechet_distance,
                                      precision_recall, sample_quality)
from tests.conftest import rectangles


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20_000, 4)), rng.normal(size=(20_000, 4))
    assert frechet_distance(a, b) < 0.01
    assert frechet_distance(a, b + 1.0) == pytest.approx(4.0, abs=0.05)  # |mu_a - mu_b|^2
    # Covariances I and 4I: tr(I + 4I - 2 * 2I) = d
    assert frechet_distance(a, 2.0 * b) == pytest.approx(4.0, rel=0.03)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), abs=1e-9)


def test_precision_and_recall_of_same_shifted_and_collapsed_distributions():
    rng = np.random.default_rng(1)
    real, same = rng.normal(size=(1000, 8)), rng.normal(size=(1000, 8))
    precision, recall = precision_recall(real, same)
    assert precision > 0.8 and recall > 0.8
    assert precision_recall(real, same + 10.0) == (0.0, 0.0)
    precision, recall = precision_recall(real, np.repeat(real[:1], 1000, axis=0))  # a generator that collapsed
    assert precision == 1.0 and recall < 0.01


@pytest.mark.parametrize("bad", [np.zeros((1, 3)), np.zeros(5), np.full((4, 2), np.nan)])
def test_bad_feature_sets_are_refused(bad):
    with pytest.raises(ValueError):
        frechet_distance(bad, np.zeros((4, 2)) + np.arange(4)[:, None])


def test_feature_sets_of_different_widths_are_refused():
    with pytest.raises(ValueError, match="different widths"):
        frechet_distance(np.random.randn(10, 3), np.random.randn(10, 4))


@pytest.fixture(scope="module")
def extractor():
    """A feature network trained briefly to tell rectangles' positions apart: features that see the images."""
    keras.utils.set_random_seed(0)
    images = rectangles(512, seed=3)
    top = np.argmax(images.max(axis=2)[..., 0], axis=1) // 4  # the rectangle's top row, in 4 bins of 4 rows
    network = feature_network((28, 28, 1), {"top": 4}, filters=(8, 16), feature_units=32)
    network.compile(optimizer="adam", loss={"top": keras.losses.SparseCategoricalCrossentropy(from_logits=True)})
    network.fit(images, {"top": top}, epochs=3, batch_size=64, verbose=0)
    return feature_extractor(network)


def test_held_out_real_images_score_near_zero_and_noise_or_collapse_far_worse(extractor):
    real, held_out = rectangles(600, seed=10), rectangles(600, seed=11)
    noise = np.random.default_rng(0).random(real.shape).astype("float32")
    collapsed = np.repeat(held_out[:1], len(held_out), axis=0)
    scores = {name: sample_quality(extractor, real, generated)
              for name, generated in (("real", held_out), ("noise", noise), ("collapsed", collapsed))}
    assert scores["real"]["precision"] > 0.7 and scores["real"]["recall"] > 0.7
    for worse in ("noise", "collapsed"):
        assert scores[worse]["frechet_distance"] > 10 * scores["real"]["frechet_distance"], scores
    assert scores["noise"]["precision"] < 0.1
    assert scores["collapsed"]["recall"] < 0.05


def test_extract_features_batches_to_the_same_result(extractor):
    images = rectangles(10, seed=5)
    np.testing.assert_allclose(extract_features(extractor, images, batch_size=3),
                               extract_features(extractor, images, batch_size=10), rtol=1e-5, atol=1e-6)
