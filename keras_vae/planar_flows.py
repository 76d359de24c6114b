"""Planar and radial flows (Rezende and Mohamed 2015) as Keras 3 layers, and a forward-only bijector for them.

Each layer holds ``num_flows`` steps whose parameters are learned weights shared by every input (not amortized
by the encoder, as in Pythae's VAE_NF). ``layer(z)`` returns ``(f(z), sum of log|det df/dz|)``. Both layers
start at the identity: the untrained flow leaves codes unchanged.

Example:

>>> flow = PlanarFlow(num_flows=2)
>>> y, log_det = flow(tf.zeros([4, 3]))   # y == z, log_det == 0 before training
"""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.limits import integer_at_least

tfb = tfp.bijectors

# m(x) = -1 + softplus(x) is 0 at this x: a planar step with w.u equal to it has u_hat = 0 (the identity).
_PLANAR_IDENTITY_DOT = math.log(math.e - 1.0)


def planar_step(z, u, w, b):
    """One planar step ``f(z) = z + u_hat * tanh(w.z + b)`` and ``log|det df/dz|``.

    ``u_hat = u + (m(w.u) - w.u) w / |w|^2`` with ``m(x) = -1 + softplus(x)`` keeps ``w.u_hat > -1``, so the
    step is invertible and ``det = 1 + u_hat.(1 - tanh^2(w.z + b)) w`` stays positive.

    >>> y, log_det = planar_step(tf.ones([2, 3]), tf.zeros([3]), tf.ones([3]), 0.0)
    """
    dot = tf.reduce_sum(w * u)
    u_hat = u + (tf.nn.softplus(dot) - 1.0 - dot) * w / tf.reduce_sum(w * w)
    activation = tf.tanh(tf.linalg.matvec(z, w) + b)  # [n]
    det = 1.0 + (1.0 - tf.square(activation)) * tf.reduce_sum(w * u_hat)
    return z + activation[:, tf.newaxis] * u_hat, tf.math.log(tf.abs(det))


def radial_step(z, z0, alpha_raw, beta_raw):
    """One radial step ``f(z) = z + beta h(alpha, r) (z - z0)``, ``r = |z - z0|``, ``h = 1 / (alpha + r)``.

    ``alpha = softplus(alpha_raw) > 0`` and ``beta = -alpha + softplus(beta_raw) >= -alpha`` keep the step
    invertible; ``det = (1 + beta h)^(d-1) (1 + beta h + beta h'(r) r)``.

    >>> y, log_det = radial_step(tf.ones([2, 3]), tf.zeros([3]), 0.0, 0.0)
    """
    alpha = tf.nn.softplus(alpha_raw)
    beta = tf.nn.softplus(beta_raw) - alpha
    diff = z - z0
    # The floor keeps the gradient of |z - z0| finite at z = z0; it moves r by at most 1e-6.
    r = tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(diff), axis=-1), 1e-12))
    h = 1.0 / (alpha + r)
    dim = tf.cast(tf.shape(z)[-1], z.dtype)
    log_det = (dim - 1.0) * tf.math.log1p(beta * h) + tf.math.log1p(beta * h - beta * r * tf.square(h))
    return z + (beta * h)[:, tf.newaxis] * diff, log_det


class _StepFlow(keras.layers.Layer):
    """``num_flows`` steps of one kind, applied in order; subclasses give ``make_weights`` and ``step``."""

    def __init__(self, num_flows=2, **kwargs):
        super().__init__(**kwargs)
        self.num_flows = integer_at_least("num_flows", num_flows, 1)

    def build(self, input_shape):
        self.latent_dim = int(input_shape[-1])
        self.make_weights(self.latent_dim)

    def call(self, z):
        z = tf.cast(z, tf.float32)
        log_det = tf.zeros(tf.shape(z)[:1])
        for k in range(self.num_flows):
            z, step_log_det = self.step(z, k)
            log_det += step_log_det
        return z, log_det

    def compute_output_spec(self, z):
        return keras.KerasTensor(z.shape, "float32"), keras.KerasTensor(z.shape[:1], "float32")

    def get_config(self):
        return {**super().get_config(), "num_flows": self.num_flows}


@keras.saving.register_keras_serializable(package="keras_vae")
class PlanarFlow(_StepFlow):
    """Planar steps (`planar_step`). ``w`` starts random and ``u = x* w / |w|^2`` with ``m(x*) = 0``, so
    ``u_hat = 0`` and the untrained flow is the identity while ``u`` still receives gradients.

    >>> y, log_det = PlanarFlow(num_flows=3)(tf.ones([2, 5]))
    """

    def make_weights(self, dim):
        self.w = self.add_weight(name="w", shape=(self.num_flows, dim),
                                 initializer=keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(dim)))

        def identity_u(shape, dtype=None):
            w = keras.ops.convert_to_tensor(self.w)
            return _PLANAR_IDENTITY_DOT * w / tf.reduce_sum(w * w, axis=-1, keepdims=True)

        self.u = self.add_weight(name="u", shape=(self.num_flows, dim), initializer=identity_u)
        self.b = self.add_weight(name="b", shape=(self.num_flows,), initializer="zeros")

    def step(self, z, k):
        return planar_step(z, self.u[k], self.w[k], self.b[k])


@keras.saving.register_keras_serializable(package="keras_vae")
class RadialFlow(_StepFlow):
    """Radial steps (`radial_step`). ``alpha_raw = beta_raw = 0`` gives ``beta = 0``: the untrained flow is
    the identity; the reference points ``z0`` start at small random values.

    >>> y, log_det = RadialFlow(num_flows=3)(tf.ones([2, 5]))
    """

    def make_weights(self, dim):
        self.z0 = self.add_weight(name="z0", shape=(self.num_flows, dim),
                                  initializer=keras.initializers.RandomNormal(stddev=0.1))
        self.alpha_raw = self.add_weight(name="alpha_raw", shape=(self.num_flows,), initializer="zeros")
        self.beta_raw = self.add_weight(name="beta_raw", shape=(self.num_flows,), initializer="zeros")

    def step(self, z, k):
        return radial_step(z, self.z0[k], self.alpha_raw[k], self.beta_raw[k])


class ForwardFlow(tfb.Bijector):
    """A flow layer (`PlanarFlow`, `RadialFlow`) as a tfp bijector: forward map and its log-determinant.

    Neither flow has a closed-form inverse, so ``inverse`` (and with it ``log_prob`` of arbitrary codes)
    raises NotImplementedError; the density of the flow's own draws comes from ``sample_and_log_prob``.

    >>> bijector = ForwardFlow(PlanarFlow(num_flows=1))
    """

    def __init__(self, flow, name="forward_flow"):
        parameters = dict(locals())
        self._flow = flow
        super().__init__(forward_min_event_ndims=1, validate_args=False, parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return {}

    def _forward(self, z):
        return self._apply(z)[0]

    def _forward_log_det_jacobian(self, z):
        return self._apply(z)[1]

    def _apply(self, z):
        # The layer works on [n, d]; moments pass [draws, batch, d].
        shape = tf.shape(z)
        y, log_det = self._flow(tf.reshape(z, [-1, shape[-1]]))
        return tf.reshape(y, shape), tf.reshape(log_det, shape[:-1])

    def _inverse(self, y):
        raise NotImplementedError(
            f"{type(self._flow).__name__} has no closed-form inverse: the density of arbitrary codes is not "
            "available; use the posterior's sample_and_log_prob for the density of its own draws.")

    def _inverse_log_det_jacobian(self, y):
        return self._inverse(y)
