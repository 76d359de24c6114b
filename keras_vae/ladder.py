"""Ladder VAE (Sønderby et al. 2016): a hierarchy of stochastic layers with top-down inference.

Generative model, top to bottom: ``z_L ~ p(z_L)`` (the model's prior), ``z_i ~ N(mu_i(z_{i+1}), s_i(z_{i+1}))``
for i = L-1 .. 1, ``x ~ p(x | z_1)``. Inference shares the top-down path: a deterministic bottom-up
pass gives per-layer estimates (mu^_i, s^_i); ``q(z_L | x) = N(mu^_L, s^_L)`` (through the model's
posterior layer) and each lower ``q(z_i | z_{i+1}, x)`` is the precision-weighted merge of the bottom-up
estimate with the top-down prior ``p(z_i | z_{i+1})``, with analytic Gaussian KLs.

``latent_dim`` is the top layer's size: `encode` returns q(z_L | x), and ``decode(z_L)`` is
deterministic (each lower layer at its prior mean), so decoding and export work as for `VAE`.
`sample` draws every layer (ancestral sampling). Everything else (objectives, steps, bounds, config) is
`VAE`'s: this class only overrides the structure hooks.

Example:

>>> vae = keras_vae.build_vae((28, 28, 1), 16, architecture="mlp", variant="ladder", lower_latent_dims=(64, 32))
>>> vae.compile(optimizer="adam"); vae.fit(images, batch_size=128)   # metrics add kl_1 .. kl_3
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.model import VAE, diagonal_gaussian_layer, tile_samples

DEFAULT_LOWER_LATENT_DIMS = (32,)


def precision_weighted(loc_a, scale_a, loc_b, scale_b):
    """The Gaussian proportional to N(loc_a, scale_a) * N(loc_b, scale_b): ``(loc, scale)``."""
    precision_a, precision_b = scale_a**-2, scale_b**-2
    variance = 1.0 / (precision_a + precision_b)
    return (loc_a * precision_a + loc_b * precision_b) * variance, tf.sqrt(variance)


@keras.saving.register_keras_serializable(package="keras_vae")
class LadderVAE(VAE):
    """A hierarchical VAE with ``len(lower_latent_dims) + 1`` stochastic layers.

    Args:
        encoder: a built model, images -> features ``(batch, F)`` (any F): the bottom of the bottom-up pass.
        decoder: a built model, bottom codes ``(batch, lower_latent_dims[0])`` -> likelihood parameters.
        latent_dim: size of the top stochastic layer z_L (the code `encode` / `decode` use).
        lower_latent_dims: sizes of the layers below the top, bottom first (at least one).
        ladder_units: hidden units of each deterministic block (bottom-up and top-down).
        activation: activation of those blocks.
        **kwargs: as for `VAE`; ``prior`` is the top layer's prior.

    Metrics add ``kl_1`` (bottom) .. ``kl_L`` (top); ``kl`` is their sum.
    """

    def __init__(self, encoder, decoder, latent_dim, lower_latent_dims=DEFAULT_LOWER_LATENT_DIMS, ladder_units=128,
                 activation="relu", **kwargs):
        lower = tuple(int(d) for d in lower_latent_dims)
        if not lower or min(lower) < 1:
            raise ValueError(
                f"lower_latent_dims needs at least one positive size (>= 2 stochastic layers), got {lower_latent_dims!r}")
        if int(ladder_units) < 1:
            raise ValueError(f"ladder_units must be >= 1, got {ladder_units}")
        self.lower_latent_dims = lower
        self.ladder_units = int(ladder_units)
        self.activation = activation
        super().__init__(encoder, decoder, latent_dim, **kwargs)

    @staticmethod
    def network_code_size(latent_dim, lower_latent_dims=DEFAULT_LOWER_LATENT_DIMS, **options):
        """The bottom layer's size: the encoder is the bottom of the bottom-up pass, the decoder reads z_1."""
        return int(lower_latent_dims[0]) if len(lower_latent_dims) else int(latent_dim)  # __init__ refuses ()

    # ----------------------------------------------------------------- structure hooks
    @property
    def latent_dims(self):
        return (*self.lower_latent_dims, self.latent_dim)

    def network_shapes(self):
        return None, (self.lower_latent_dims[0],)

    def layer_metric_names(self):
        return tuple(f"kl_{i + 1}" for i in range(len(self.latent_dims)))

    def build_parts(self):
        dense = keras.layers.Dense
        self.up_blocks, self.up_params = [], []
        width = int(self.encoder.outputs[0].shape[-1])
        for i, dim in enumerate(self.latent_dims):
            self.up_blocks.append(self._built(dense(self.ladder_units, self.activation, name=f"up_block_{i + 1}"), width))
            self.up_params.append(self._built(dense(2 * dim, name=f"up_params_{i + 1}"), self.ladder_units))
            width = self.ladder_units
        self.down_blocks, self.down_params = [], []
        for i, dim in enumerate(self.lower_latent_dims):  # p(z_i | z_{i+1}) for every layer below the top
            self.down_blocks.append(self._built(dense(self.ladder_units, self.activation, name=f"down_block_{i + 1}"),
                                                self.latent_dims[i + 1]))
            self.down_params.append(self._built(dense(2 * dim, name=f"down_params_{i + 1}"), self.ladder_units))

    @staticmethod
    def _built(layer, width):
        layer.build((None, width))
        return layer

    def posterior_parameters_of(self, encoder_output, training=False):
        """The bottom-up estimates ``[(loc, scale)]``, bottom first: each lower layer's q merges its estimate
        with the top-down prior, so these are the free parameters of q(z_1..z_L | x)."""
        h, estimates = encoder_output, []
        for block, params in zip(self.up_blocks, self.up_params):
            h = block(h)
            estimates.append(self.posterior.parameters_from(params(h)))
        return estimates

    def _conditional_prior(self, i, z_above):
        """``(loc, scale)`` of p(z_i | z_{i+1}) for layer i (0 = bottom)."""
        return self.posterior.parameters_from(self.down_params[i](self.down_blocks[i](z_above)))

    def latent_layers(self, parameters, seed, num_samples=1):
        estimates = [tuple(tile_samples(t, num_samples) for t in pair) for pair in parameters]
        seeds = tfp.random.split_seed(seed, len(estimates))
        layers = [self.top_layer(*estimates[-1], seeds[-1])]
        for i in reversed(range(len(self.lower_latent_dims))):
            prior_loc, prior_scale = self._conditional_prior(i, layers[0].z)
            loc, scale = precision_weighted(*estimates[i], prior_loc, prior_scale)
            layers.insert(0, diagonal_gaussian_layer(loc, scale, prior_loc, prior_scale, seeds[i]))
        return layers  # bottom first

    def mean_codes(self, parameters):
        """The bottom code of the top-down pass with every layer at its posterior mean."""
        z = super().mean_codes(parameters)
        for i in reversed(range(len(self.lower_latent_dims))):
            z, _ = precision_weighted(*parameters[i], *self._conditional_prior(i, z))
        return z

    def codes_from_top(self, z):
        """The bottom code reached from ``z`` with each lower layer at its conditional prior mean."""
        for i in reversed(range(len(self.lower_latent_dims))):
            z, _ = self._conditional_prior(i, z)
        return z

    def sample_codes(self, z, temperature, seed):
        """Every lower layer drawn from its conditional prior, spread scaled by ``temperature``."""
        seeds = tfp.random.split_seed(seed, len(self.lower_latent_dims))
        for i, layer_seed in zip(reversed(range(len(self.lower_latent_dims))), seeds):
            loc, scale = self._conditional_prior(i, z)
            z = loc + temperature * scale * tf.random.stateless_normal(tf.shape(loc), seed=layer_seed)
        return z

    def get_config(self):
        return {
            **super().get_config(),
            "lower_latent_dims": list(self.lower_latent_dims),
            "ladder_units": self.ladder_units,
            "activation": self.activation,
        }
