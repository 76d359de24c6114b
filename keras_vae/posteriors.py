"""Approximate posteriors q(z | x) built from encoder outputs.

Example:

>>> q = GaussianPosterior()
>>> dist = q.distribution(tf.zeros([4, 2 * 8]))   # encoder output: [loc, raw scale]
>>> dist.event_shape
TensorShape([8])
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="keras_vae")
class GaussianPosterior(keras.layers.Layer):
    """Diagonal Gaussian q(z|x) = N(loc, diag(scale^2)), reparameterized.

    The encoder emits ``2 * latent_dim`` numbers per example: the mean, then a raw scale
    mapped through softplus plus ``scale_floor`` so the scale never reaches zero (a zero
    scale makes the KL and its gradient infinite).
    """

    def __init__(self, scale_floor=1e-4, **kwargs):
        super().__init__(**kwargs)
        self.scale_floor = float(scale_floor)

    def parameters_from(self, encoder_output):
        """Splits encoder output into (loc, scale), each ``[batch, latent_dim]``, float32."""
        encoder_output = tf.cast(encoder_output, tf.float32)
        loc, raw_scale = tf.split(encoder_output, 2, axis=-1)
        return loc, tf.nn.softplus(raw_scale) + self.scale_floor

    def distribution(self, encoder_output):
        loc, scale = self.parameters_from(encoder_output)
        return tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)

    def call(self, encoder_output):
        return self.parameters_from(encoder_output)

    def get_config(self):
        return {**super().get_config(), "scale_floor": self.scale_floor}
