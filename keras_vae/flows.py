"""Inverse autoregressive flows (Kingma et al. 2016) as Keras 3 parts: the MADE network and the flow distribution.

``tfb.AutoregressiveNetwork`` is a tf_keras layer and cannot live in a Keras 3 model, so MADE is written
here as a Keras 3 layer; its last layer starts at zero, so an untrained flow is the identity.

Example:

>>> net = AutoregressiveNetwork(hidden_units=(32,))
>>> shift, log_scale = net(tf.zeros([4, 8]))
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

_MOMENT_DRAWS = 256  # antithetic pairs for the posterior's moments


@keras.saving.register_keras_serializable(package="keras_vae")
class AutoregressiveNetwork(keras.layers.Layer):
    """MADE (Germain et al. 2015): ``z -> (shift, log_scale)``, output i depending only on inputs < i.

    Args:
        hidden_units: widths of the masked hidden layers.
        activation: their activation.
        max_log_scale: log scales are soft-clipped to ``(-max_log_scale, max_log_scale)`` for stability.

    Example:

    >>> net = AutoregressiveNetwork(hidden_units=(32,))
    >>> shift, log_scale = net(tf.zeros([4, 8]))
    """

    def __init__(self, hidden_units=(64,), activation="relu", max_log_scale=3.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.activation = activation
        self.max_log_scale = float(max_log_scale)

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.event_size = dim
        degrees = [np.arange(1, dim + 1)]
        for units in self.hidden_units:
            degrees.append(np.arange(units) % max(dim - 1, 1) + 1)
        self._masks, self.kernels, self.biases = [], [], []
        for i, units in enumerate(self.hidden_units):
            # A hidden unit of degree k sees inputs of degree <= k.
            self._masks.append((degrees[i + 1][np.newaxis] >= degrees[i][:, np.newaxis]).astype("float32"))
            self.kernels.append(self.add_weight(name=f"kernel_{i}", shape=(len(degrees[i]), units),
                                                initializer="glorot_uniform"))
            self.biases.append(self.add_weight(name=f"bias_{i}", shape=(units,), initializer="zeros"))
        # Output i (for shift and for log-scale) sees hidden units of degree < i.
        out_mask = (np.arange(1, dim + 1)[np.newaxis] > degrees[-1][:, np.newaxis]).astype("float32")
        self._masks.append(np.concatenate([out_mask, out_mask], axis=1))
        self.kernels.append(self.add_weight(name="kernel_out", shape=(len(degrees[-1]), 2 * dim), initializer="zeros"))
        self.biases.append(self.add_weight(name="bias_out", shape=(2 * dim,), initializer="zeros"))
        self._activation = keras.activations.get(self.activation)

    def call(self, z):
        h = z
        last = len(self.kernels) - 1
        for i, (kernel, bias, mask) in enumerate(zip(self.kernels, self.biases, self._masks)):
            h = tf.matmul(h, kernel * mask) + bias
            if i < last:
                h = self._activation(h)
        shift, raw = tf.split(h, 2, axis=-1)
        return shift, self.max_log_scale * tf.tanh(raw / self.max_log_scale)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_units": list(self.hidden_units),
            "activation": self.activation,
            "max_log_scale": self.max_log_scale,
        }


class FlowDistribution(tfd.TransformedDistribution):
    """A Gaussian pushed through a flow. `mean` / `stddev` / `variance` are Monte Carlo moments over a
    fixed set of antithetic standard-normal draws (deterministic, and free of random ops so they export)."""

    def _moment_draws(self):
        base = self.distribution
        eps = np.random.RandomState(0).randn(_MOMENT_DRAWS, base.event_shape[-1]).astype("float32")
        eps = tf.constant(np.concatenate([eps, -eps]))[:, tf.newaxis]  # [2n, 1, d]
        return self.bijector.forward(base.mean()[tf.newaxis] + base.stddev()[tf.newaxis] * eps)

    def _mean(self, **kwargs):
        return tf.reduce_mean(self._moment_draws(), axis=0)

    def _variance(self, **kwargs):
        return tf.math.reduce_variance(self._moment_draws(), axis=0)

    def _stddev(self, **kwargs):
        return tf.sqrt(self._variance())
