"""Priors p(z) over the latent code.

A prior is a Keras layer (so a learnable prior's weights are saved with the model) whose
`distribution()` returns a tfp distribution with event shape ``[latent_dim]``.

Example:

>>> prior = MixtureOfGaussiansPrior(num_components=10)
>>> prior.build((None, 8))
>>> prior.distribution().sample(4, seed=(1, 2)).shape
TensorShape([4, 8])
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae._lookup import layer_from

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="keras_vae")
class StandardNormalPrior(keras.layers.Layer):
    """N(0, I): the default prior, with an analytic KL to a diagonal Gaussian posterior."""

    name_key = "standard_normal"
    factorized = True  # independent across latent dims, so a per-dimension KL exists

    def build(self, input_shape):
        self.latent_dim = int(input_shape[-1])

    def distribution(self):
        return tfd.MultivariateNormalDiag(loc=tf.zeros([self.latent_dim]), scale_diag=tf.ones([self.latent_dim]))

    def sample(self, num_samples, temperature=1.0, seed=None):
        """``[num_samples, latent_dim]`` codes from N(0, temperature^2 I); ``seed`` is a stateless seed."""
        return temperature * tf.random.stateless_normal([num_samples, self.latent_dim], seed=seed)

    def marginal(self):
        """Per-dimension prior (for per-dimension KL and free bits)."""
        return tfd.Normal(loc=tf.zeros([self.latent_dim]), scale=tf.ones([self.latent_dim]))

    def call(self, z):
        return self.distribution().log_prob(z)


@keras.saving.register_keras_serializable(package="keras_vae")
class MixtureOfGaussiansPrior(keras.layers.Layer):
    """A learnable mixture of diagonal Gaussians (component weights, means and scales all trained).

    KL(q || p) has no closed form against a mixture, so the VAE uses a Monte Carlo estimate.

    Args:
        num_components: number of mixture components.
        init_spread: standard deviation of the random initial component means; spread
            components help them specialize instead of collapsing together.
    """

    name_key = "mixture"
    factorized = False

    def __init__(self, num_components=10, init_spread=1.0, **kwargs):
        super().__init__(**kwargs)
        if int(num_components) < 1:
            raise ValueError(f"num_components must be >= 1, got {num_components}")
        self.num_components = int(num_components)
        self.init_spread = float(init_spread)

    def build(self, input_shape):
        self.latent_dim = int(input_shape[-1])
        k, d = self.num_components, self.latent_dim
        self.logits = self.add_weight(name="logits", shape=(k,), initializer="zeros")
        self.locs = self.add_weight(
            name="locs", shape=(k, d), initializer=keras.initializers.RandomNormal(stddev=self.init_spread, seed=0)
        )
        # softplus(0.5413) == 1.0
        self.raw_scales = self.add_weight(
            name="raw_scales", shape=(k, d), initializer=keras.initializers.Constant(0.5413)
        )

    def distribution(self):
        scales = tf.nn.softplus(tf.cast(self.raw_scales, tf.float32)) + 1e-4
        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=tf.cast(self.logits, tf.float32)),
            components_distribution=tfd.MultivariateNormalDiag(loc=tf.cast(self.locs, tf.float32), scale_diag=scales),
        )

    def sample(self, num_samples, temperature=1.0, seed=None):
        """Codes from the mixture; ``temperature`` scales each component's spread, not the component choice."""
        component_seed, noise_seed = tfp.random.split_seed(seed, 2)
        dist = self.distribution()
        components = dist.mixture_distribution.sample(num_samples, seed=component_seed)
        locs = tf.gather(dist.components_distribution.loc, components)
        scales = tf.gather(dist.components_distribution.stddev(), components)
        noise = tf.random.stateless_normal([num_samples, self.latent_dim], seed=noise_seed)
        return locs + temperature * scales * noise

    def call(self, z):
        return self.distribution().log_prob(z)

    def get_config(self):
        return {**super().get_config(), "num_components": self.num_components, "init_spread": self.init_spread}


PRIORS = {cls.name_key: cls for cls in (StandardNormalPrior, MixtureOfGaussiansPrior)}


def get_prior(identifier):
    """Returns a prior layer from a name ("standard_normal", "mixture"), a config dict or a layer."""
    return layer_from(identifier, PRIORS, "prior")
