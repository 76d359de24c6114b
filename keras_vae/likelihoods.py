"""Observation models p(x | z): turn decoder outputs into tfp distributions over images.

Each likelihood is a `Likelihood` layer so that learned parameters (a Gaussian's scale) are tracked,
saved and restored with the model. `log_prob` sums over all pixels, giving one number per example.
``data_range`` declares the data a likelihood models: ``(0.0, 1.0)`` for Bernoulli pixels, None for any
finite real; training and export check inputs against it.

Example:

>>> lik = BernoulliLikelihood()
>>> logits = tf.zeros([2, 28, 28, 1])
>>> lik.log_prob(tf.ones([2, 28, 28, 1]), logits).shape
TensorShape([2])
"""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae import names
from keras_vae._lookup import resolve

tfd = tfp.distributions

_EVENT_RANK = 3  # (H, W, C)


class Likelihood(keras.layers.Layer):
    """Base class of observation models: decoder output -> `distribution`, `log_prob`, `mean`, `sample`."""

    name_key = None
    data_range = None  # (low, high) of the data the likelihood is defined on; None: any finite real

    def distribution(self, decoder_output):
        raise NotImplementedError

    def log_prob(self, x, decoder_output):
        return self.distribution(decoder_output).log_prob(tf.cast(x, tf.float32))

    def mean(self, decoder_output):
        raise NotImplementedError

    def sample(self, decoder_output, seed):
        return self.distribution(decoder_output).sample(seed=seed)

    def call(self, decoder_output):
        return self.mean(decoder_output)


@keras.saving.register_keras_serializable(package="keras_vae")
class BernoulliLikelihood(Likelihood):
    """Independent Bernoulli pixels parameterized by logits (binary or [0, 1] data).

    Using logits, not probabilities, keeps the log-likelihood exact for saturated pixels.
    """

    name_key = "bernoulli"
    data_range = (0.0, 1.0)

    def distribution(self, decoder_output):
        logits = tf.cast(decoder_output, tf.float32)
        return tfd.Independent(
            tfd.Bernoulli(logits=logits, dtype=tf.float32),
            reinterpreted_batch_ndims=_EVENT_RANK,
        )

    def log_prob(self, x, decoder_output):
        # x * logits - softplus(logits) is log Bernoulli(x; logits) for binary x and, unlike Bernoulli.log_prob,
        # also takes grey-scale targets in [0, 1]. The same value as -sigmoid_cross_entropy_with_logits, in three
        # ops instead of about eight (Softplus is one stable kernel): half the time of that term with its gradient.
        logits = tf.cast(decoder_output, tf.float32)
        per_pixel = tf.cast(x, tf.float32) * logits - tf.nn.softplus(logits)
        return tf.reduce_sum(per_pixel, axis=list(range(-_EVENT_RANK, 0)))

    def mean(self, decoder_output):
        return tf.sigmoid(tf.cast(decoder_output, tf.float32))


@keras.saving.register_keras_serializable(package="keras_vae")
class GaussianLikelihood(Likelihood):
    """Independent Gaussian pixels with mean from the decoder and a fixed or learned scale.

    Args:
        scale: a positive float for a fixed scale, or ``"learned"`` for one learned scale
            per channel (a softplus-parameterized weight).
        min_scale: floor for a learned scale, which otherwise collapses on clean data.
        initial_scale: where a learned scale starts. 0.1 suits data in [0, 1]: a start at 1 weighs the
            reconstruction so little against the KL that the posterior collapses for the first epochs.
    """

    name_key = "gaussian"

    def __init__(self, scale="learned", min_scale=1e-3, initial_scale=0.1, **kwargs):
        super().__init__(**kwargs)
        if scale != "learned":
            try:
                scale = float(scale)
            except (TypeError, ValueError):
                raise ValueError(f"GaussianLikelihood scale must be a positive float or 'learned', got {scale!r}")
            if not (scale > 0 and math.isfinite(scale)):
                raise ValueError(f"GaussianLikelihood scale must be a positive finite float, got {scale!r}")
        self.scale = scale
        self.min_scale = float(min_scale)
        self.initial_scale = float(initial_scale)
        if not self.initial_scale > self.min_scale:
            raise ValueError(f"initial_scale must be > min_scale ({self.min_scale}), got {initial_scale}")

    def build(self, input_shape):
        if self.scale == "learned":
            channels = input_shape[-1]
            raw = math.log(math.expm1(self.initial_scale - self.min_scale))  # softplus(raw) + min_scale == initial
            self.raw_scale = self.add_weight(
                name="raw_scale", shape=(channels,), initializer=keras.initializers.Constant(raw)
            )

    def _scale(self):
        if self.scale == "learned":
            return tf.nn.softplus(tf.cast(self.raw_scale, tf.float32)) + self.min_scale
        return tf.constant(self.scale, tf.float32)

    def distribution(self, decoder_output):
        if not self.built:
            self.build(decoder_output.shape)
        loc = tf.cast(decoder_output, tf.float32)
        return tfd.Independent(tfd.Normal(loc=loc, scale=self._scale()), reinterpreted_batch_ndims=_EVENT_RANK)

    def mean(self, decoder_output):
        return tf.cast(decoder_output, tf.float32)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "min_scale": self.min_scale,
                "initial_scale": self.initial_scale}


LIKELIHOODS = names.registry("likelihood", names.LIKELIHOODS, (BernoulliLikelihood, GaussianLikelihood))


def get_likelihood(identifier):
    """Returns a likelihood layer from a name ("bernoulli", "gaussian"), a config dict or a layer."""
    return resolve(identifier, LIKELIHOODS, "likelihood", Likelihood)
