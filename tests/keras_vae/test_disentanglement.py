import numpy as np
import pytest

from keras_vae.disentanglement import (
    discrete_entropy,
    discrete_mutual_information,
    discretize,
    factor_vae_score,
    mutual_information_gap,
)

SIZES = (3, 6, 10, 8)


def _factors(n, seed=0):
    rng = np.random.RandomState(seed)
    return (rng.rand(n, len(SIZES)) * np.array(SIZES)).astype(np.int64)


def test_mutual_information_and_entropy_by_hand():
    a = np.array([0, 0, 1, 1])
    assert discrete_entropy(a) == pytest.approx(np.log(2))
    assert discrete_mutual_information(a, a) == pytest.approx(np.log(2))
    assert discrete_mutual_information(a, np.array([0, 1, 0, 1])) == pytest.approx(0.0, abs=1e-12)
    assert discretize(np.array([[0.0], [0.49], [0.51], [1.0]]), num_bins=2)[:, 0].tolist() == [0, 0, 1, 1]


def test_mig_is_one_for_a_code_copying_the_factors_and_near_zero_for_noise():
    factors = _factors(5000)
    rng = np.random.RandomState(1)
    copy = factors + 0.01 * rng.randn(*factors.shape)
    perfect = mutual_information_gap(copy, factors)
    assert perfect["score"] == pytest.approx(1.0, abs=0.01)
    np.testing.assert_allclose(np.diag(perfect["mutual_information"]), perfect["factor_entropy"], rtol=0.01)
    noise = mutual_information_gap(rng.randn(5000, 6), factors)
    assert noise["score"] < 0.02
    # Two dimensions sharing one factor leave no gap for it.
    shared = np.concatenate([copy, copy[:, :1]], axis=1)
    assert mutual_information_gap(shared, factors)["per_factor"][0] == pytest.approx(0.0, abs=0.01)
    # A rotated (entangled) code scores in between.
    angle = np.pi / 4
    mixed = copy.copy().astype(float)
    mixed[:, 2], mixed[:, 3] = (np.cos(angle) * copy[:, 2] - np.sin(angle) * copy[:, 3],
                                np.sin(angle) * copy[:, 2] + np.cos(angle) * copy[:, 3])
    assert 0.1 < mutual_information_gap(mixed, factors)["score"] < 0.9


def test_factor_vae_score_is_one_for_a_copying_code_and_chance_for_noise():
    rng = np.random.RandomState(2)
    scale = np.array([1.0, 5.0, 0.1, 3.0, 2.0])

    def copying(factors):  # factors permuted into dims, scaled, plus one constant (collapsed) dim
        codes = factors[:, [2, 0, 3, 1]] * scale[:4] + 0.01 * rng.randn(len(factors), 4)
        return np.concatenate([codes, np.zeros((len(factors), 1))], axis=1)

    result = factor_vae_score(copying, SIZES, num_train_votes=200, num_eval_votes=200)
    assert result["score"] == 1.0
    assert result["active_dims"] == 4
    assert result["votes"][:, 2].argmax() == 0 and result["votes"][4].sum() == 0

    noise = factor_vae_score(lambda f: rng.randn(len(f), 5), SIZES, num_train_votes=400, num_eval_votes=400)
    assert abs(noise["score"] - 1 / len(SIZES)) < 0.1  # chance level


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="integer"):
        mutual_information_gap(np.zeros((4, 2)), np.zeros((4, 1)))
    with pytest.raises(ValueError, match="non-finite"):
        mutual_information_gap(np.full((4, 2), np.nan), np.zeros((4, 1), int))
    with pytest.raises(ValueError, match="represent returned"):
        factor_vae_score(lambda f: np.zeros((1, 2)), SIZES, num_train_votes=1, num_eval_votes=1)
