"""The seeded device noise (export.device_noise): exact against its NumPy twin, and standard normal / uniform."""

import math

import numpy as np
import pytest
import tensorflow as tf

from keras_vae.export.device_noise import CounterNoise, reference_normal, reference_uniform

SEEDS = (0, 1, 7, -1, 2**31, 2**62 + 5, -(2**63), 2**63 - 1)


def normal_cdf(x):
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def ks_statistic(draws):
    """Kolmogorov-Smirnov distance between the empirical CDF of ``draws`` and the standard normal's."""
    x = np.sort(draws)
    cdf = normal_cdf(x)
    n = len(x)
    return max((np.arange(1, n + 1) / n - cdf).max(), (cdf - np.arange(n) / n).max())


@pytest.mark.parametrize("seed", SEEDS)
def test_tensorflow_draws_are_the_numpy_reference(seed):
    noise = CounterNoise(tf.constant(seed, tf.int64))
    z = noise.normal(tf.stack([tf.constant(50), 3])).numpy()
    u = noise.uniform([40, 1]).numpy()
    assert z.shape == (50, 3) and z.dtype == np.float32 and u.shape == (40, 1)
    np.testing.assert_allclose(z, reference_normal(seed, 1, [50, 3]), atol=2e-5)
    np.testing.assert_allclose(u, reference_uniform(seed, 2, [40, 1]), atol=1e-7)
    assert 0 < u.min() and u.max() < 1


def test_same_seed_same_draws_other_seeds_and_calls_other_draws_and_prefixes_are_stable():
    def first_normal(seed, rows):
        return CounterNoise(tf.constant(seed, tf.int64)).normal([rows, 4]).numpy()

    np.testing.assert_array_equal(first_normal(3, 16), first_normal(3, 16))
    # Prefix-stable (the same bits; the float math may round a last bit differently for another length).
    np.testing.assert_allclose(first_normal(3, 16)[:5], first_normal(3, 5), atol=1e-6)
    assert np.abs(first_normal(3, 16) - first_normal(4, 16)).min() > 0
    assert np.abs(first_normal(3, 16) - first_normal(3 + 2**32, 16)).min() > 0  # the high word counts
    noise = CounterNoise(tf.constant(3, tf.int64))
    assert np.abs(noise.normal([16, 4]).numpy() - noise.normal([16, 4]).numpy()).min() > 0  # each call its own


def test_normals_are_standard_normal_and_uncorrelated():
    n = 200_000
    draws = reference_normal(11, 1, [n])
    assert abs(draws.mean()) < 0.01 and abs(draws.std() - 1) < 0.01
    assert abs(np.mean(draws**3)) < 0.03 and abs(np.mean(draws**4) - 3) < 0.06  # skew 0, kurtosis 3
    assert ks_statistic(draws) < 1.63 / math.sqrt(n)  # the KS test's 1% critical value
    assert abs(np.corrcoef(draws[:-1], draws[1:])[0, 1]) < 0.01  # neighbours
    pairs = reference_normal(11, 1, [n // 2, 2])
    assert abs(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1]) < 0.01  # the two coordinates of a code
    neighbour_seed = reference_normal(12, 1, [n])
    assert abs(np.corrcoef(draws, neighbour_seed)[0, 1]) < 0.01  # seeds s and s + 1
    # The same in TensorFlow (float32), on a smaller draw.
    in_tf = CounterNoise(tf.constant(11, tf.int64)).normal([20_000]).numpy()
    assert ks_statistic(in_tf.astype(np.float64)) < 1.63 / math.sqrt(20_000)


def test_uniforms_fill_the_unit_interval_evenly():
    n, bins = 100_000, 100
    counts = np.bincount((reference_uniform(5, 1, [n]) * bins).astype(int), minlength=bins)
    chi_square = ((counts - n / bins) ** 2 / (n / bins)).sum()
    assert chi_square < 135  # 99th percentile of chi-square with 99 degrees of freedom: 134.6
