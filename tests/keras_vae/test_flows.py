"""Flow parts: the masked autoregressive network (MADE) and the flow distribution's moments."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.flows import AutoregressiveNetwork, FlowDistribution

tfd, tfb = tfp.distributions, tfp.bijectors


def test_made_outputs_depend_only_on_earlier_inputs():
    net = AutoregressiveNetwork(hidden_units=(8, 8))
    net.build((None, 5))
    for w in net.weights:
        w.assign(np.random.RandomState(1).randn(*w.shape))
    z = tf.constant(np.random.RandomState(2).randn(1, 5), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(z)
        shift, log_scale = net(z)
    for out in (shift, log_scale):
        jacobian = tape.batch_jacobian(out, z)[0].numpy()  # [output i, input j]
        np.testing.assert_array_equal(np.triu(jacobian), 0.0)  # no dependence on inputs j >= i
        assert np.abs(np.tril(jacobian, -1)).sum() > 0
    assert np.abs(log_scale.numpy()).max() < net.max_log_scale  # soft-clipped


def test_untrained_made_is_zero_and_its_config_round_trips():
    net = AutoregressiveNetwork(hidden_units=(4,), max_log_scale=2.0)
    shift, log_scale = net(tf.ones([3, 6]))
    np.testing.assert_array_equal(shift, 0.0)
    np.testing.assert_array_equal(log_scale, 0.0)
    again = AutoregressiveNetwork.from_config(net.get_config())
    assert again.hidden_units == (4,) and again.max_log_scale == 2.0


def test_flow_distribution_moments_are_deterministic_moments_of_the_pushed_gaussian():
    base = tfd.MultivariateNormalDiag(loc=[[1.0, -2.0]], scale_diag=[[0.5, 2.0]])
    flow = FlowDistribution(distribution=base, bijector=tfb.Shift([3.0, 1.0])(tfb.Scale([2.0, 0.5])))
    np.testing.assert_array_equal(flow.mean(), flow.mean())  # fixed draws: no randomness
    # The moment draws are antithetic: an affine map gets the mean exactly, the spread approximately.
    np.testing.assert_allclose(flow.mean(), [[5.0, 0.0]], atol=1e-5)
    np.testing.assert_allclose(flow.stddev(), [[1.0, 1.0]], rtol=0.1)
    np.testing.assert_allclose(flow.variance(), flow.stddev() ** 2, rtol=1e-5)
