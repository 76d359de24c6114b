"""Ladder VAE (Sønderby et al. 2016): a hierarchy of stochastic layers with top-down inference.

Generative model, top to bottom: ``z_L ~ p(z_L)`` (the VAE's prior), ``z_i ~ N(mu_i(z_{i+1}), s_i(z_{i+1}))``
for i = L-1 .. 1, ``x ~ p(x | z_1)``. Inference shares the top-down path: a deterministic bottom-up
pass gives per-layer estimates (mu^_i, s^_i); ``q(z_L | x) = N(mu^_L, s^_L)`` and each lower
``q(z_i | z_{i+1}, x)`` is the precision-weighted merge of the bottom-up estimate with the top-down
prior ``p(z_i | z_{i+1})``. The ELBO is ``E_q[log p(x | z_1)] - KL_L - sum_i E_q[KL_i]``, with
analytic Gaussian KLs for the lower layers (conditioned on the sampled layer above).

``latent_dim`` is the top layer's size: `encode` returns q(z_L | x), and ``decode(z_L)`` is
deterministic (each lower layer at its prior mean), so decoding and export work as for `VAE`.
`sample` draws every layer (ancestral sampling).

Example:

>>> vae = keras_vae.build_vae((28, 28, 1), 16, architecture="mlp", variant="ladder", lower_latent_dims=(64, 32))
>>> vae.compile(optimizer="adam"); vae.fit(images, batch_size=128)   # metrics add kl_1 .. kl_3
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.model import VAE, _shape_str, check_built_networks

tfd = tfp.distributions

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
        **kwargs: as for `VAE`; ``prior`` is the top layer's prior, ``free_bits`` applies per dimension of
            every layer (of the top one as in `VAE`).

    Metrics add ``kl_1`` (bottom) .. ``kl_L`` (top); ``kl`` is their sum.
    """

    def __init__(self, encoder, decoder, latent_dim, lower_latent_dims=DEFAULT_LOWER_LATENT_DIMS, ladder_units=128, activation="relu",
                 **kwargs):
        lower = tuple(int(d) for d in lower_latent_dims)
        if not lower or min(lower) < 1:
            raise ValueError(f"lower_latent_dims needs at least one positive size (>= 2 stochastic layers), got {lower_latent_dims!r}")
        if int(ladder_units) < 1:
            raise ValueError(f"ladder_units must be >= 1, got {ladder_units}")
        self.lower_latent_dims = lower
        self.ladder_units = int(ladder_units)
        self.activation = activation
        super().__init__(encoder, decoder, latent_dim, **kwargs)
        self.latent_dims = (*lower, self.latent_dim)  # bottom -> top
        features = int(self.encoder.output_shape[-1])
        dense = keras.layers.Dense
        self.up_blocks, self.up_params = [], []
        width = features
        for i, dim in enumerate(self.latent_dims):
            block = dense(self.ladder_units, activation=activation, name=f"up_block_{i + 1}")
            block.build((None, width))
            params = dense(2 * dim, name=f"up_params_{i + 1}")
            params.build((None, self.ladder_units))
            self.up_blocks.append(block)
            self.up_params.append(params)
            width = self.ladder_units
        self.down_blocks, self.down_params = [], []
        for i, dim in enumerate(lower):  # p(z_i | z_{i+1}) for every layer below the top
            block = dense(self.ladder_units, activation=activation, name=f"down_block_{i + 1}")
            block.build((None, self.latent_dims[i + 1]))
            params = dense(2 * dim, name=f"down_params_{i + 1}")
            params.build((None, self.ladder_units))
            self.down_blocks.append(block)
            self.down_params.append(params)
        for i in range(len(self.latent_dims)):
            self.trackers[f"kl_{i + 1}"] = keras.metrics.Mean(name=f"kl_{i + 1}")

    def _check_networks(self):
        check_built_networks(self.encoder, self.decoder)
        enc_in, enc_out = tuple(self.encoder.input_shape), tuple(self.encoder.output_shape)
        dec_in, dec_out = tuple(self.decoder.input_shape), tuple(self.decoder.output_shape)
        if len(enc_in) != 4 or len(enc_out) != 2:
            raise ValueError(
                f"The ladder encoder must map images (batch, H, W, C) to features (batch, F); it maps "
                f"{_shape_str(enc_in)} to {_shape_str(enc_out)}."
            )
        if dec_in[1:] != (self.lower_latent_dims[0],):
            raise ValueError(
                f"The ladder decoder must take the bottom layer's codes (batch, {self.lower_latent_dims[0]}); "
                f"it takes {_shape_str(dec_in)}."
            )
        if dec_out[1:] != enc_in[1:]:
            raise ValueError(f"The decoder output {_shape_str(dec_out)} must match the encoder input {_shape_str(enc_in)}.")

    # ----------------------------------------------------------------- the two passes
    def _bottom_up(self, x, training=False):
        """Per-layer bottom-up estimates ``[(loc, scale)]``, bottom first."""
        h = self.encoder(self._check_images(x), training=training)
        estimates = []
        for block, params in zip(self.up_blocks, self.up_params):
            h = block(h)
            estimates.append(self.posterior.parameters_from(params(h)))
        return estimates

    def _conditional_prior(self, i, z_above):
        """``(loc, scale)`` of p(z_i | z_{i+1}) for layer i (0 = bottom)."""
        return self.posterior.parameters_from(self.down_params[i](self.down_blocks[i](z_above)))

    def _top_down(self, estimates, draw):
        """Runs inference top-down; ``draw(layer, loc, scale)`` picks each z. Returns per-layer records."""
        loc, scale = estimates[-1]
        z = draw(len(estimates) - 1, loc, scale)
        layers = [{"z": z, "q": (loc, scale), "p": None}]
        for i in reversed(range(len(self.lower_latent_dims))):
            prior_loc, prior_scale = self._conditional_prior(i, z)
            loc, scale = precision_weighted(*estimates[i], prior_loc, prior_scale)
            z = draw(i, loc, scale)
            layers.insert(0, {"z": z, "q": (loc, scale), "p": (prior_loc, prior_scale)})
        return layers  # bottom first

    def _mean_path(self, z_top):
        """The bottom code reached from z_top with each lower layer at its conditional prior mean."""
        z = z_top
        for i in reversed(range(len(self.lower_latent_dims))):
            z, _ = self._conditional_prior(i, z)
        return z

    # ----------------------------------------------------------------- distributions
    def decoder_output(self, z, training=False):
        """Decoder output for top codes ``z``, lower layers at their conditional prior means."""
        return self.decoder(self._mean_path(self._check_codes(z)), training=training)

    def reconstruct(self, x):
        """Decodes the top-down posterior means of every layer."""
        layers = self._top_down(self._bottom_up(x), lambda i, loc, scale: loc)
        return self.likelihood.mean(self.decoder(layers[0]["z"]))

    def sample(self, num_samples, temperature=1.0, seed=None):
        """Ancestral samples: z_L from the prior, then every lower layer drawn (spread scaled by ``temperature``)."""
        z = self.sample_prior(num_samples, temperature=temperature, seed=seed)
        base = keras.random.SeedGenerator(seed).next() if seed is not None else self.seed_generator.next()
        # Folded so the lower layers' noise differs from the top layer's, drawn from the same seed.
        lower_seeds = tfp.random.split_seed(tf.random.experimental.stateless_fold_in(tf.cast(base, tf.int32), 1),
                                            len(self.lower_latent_dims))
        for i, layer_seed in zip(reversed(range(len(self.lower_latent_dims))), lower_seeds):
            loc, scale = self._conditional_prior(i, z)
            z = loc + float(temperature) * scale * tf.random.stateless_normal(tf.shape(loc), seed=layer_seed)
        return self.likelihood.mean(self.decoder(z))

    def _sampled_layers(self, x, seed, training=False):
        seeds = tfp.random.split_seed(seed, len(self.latent_dims))
        return self._top_down(
            self._bottom_up(x, training=training),
            lambda i, loc, scale: loc + scale * tf.random.stateless_normal(tf.shape(loc), seed=seeds[i]),
        )

    def compute_terms(self, x, training=False):
        layers = self._sampled_layers(x, self.noise_seed(), training=training)
        x = tf.cast(x, tf.float32)
        reconstruction = -self.likelihood.log_prob(x, self.decoder(layers[0]["z"], training=training))
        top = tfd.MultivariateNormalDiag(*layers[-1]["q"])
        kls = [None] * len(layers)
        kls[-1] = self.kl_divergence(top, layers[-1]["z"])
        charged = self._kl_charged(top, kls[-1])
        for i, layer in enumerate(layers[:-1]):
            per_dim = tfd.kl_divergence(tfd.Normal(*layer["q"]), tfd.Normal(*layer["p"]))
            kls[i] = tf.reduce_sum(per_dim, axis=-1)
            charged += tf.reduce_sum(tf.maximum(per_dim, self.free_bits), axis=-1)
        kl = tf.add_n(kls)
        loss = reconstruction + self.current_beta() * charged
        terms = {"loss": loss, "reconstruction": reconstruction, "kl": kl, "elbo": -(reconstruction + kl)}
        terms.update({f"kl_{i + 1}": value for i, value in enumerate(kls)})
        return terms

    def posterior_parameters(self, x, training=False):
        """The bottom-up estimates ``[(loc, scale)]``, bottom first: each lower layer's q merges its estimate
        with the top-down prior, so these are the free parameters of q(z_1..z_L | x)."""
        return self._bottom_up(x, training=training)

    def log_importance_weights(self, x, num_samples, seed=None, training=False, parameters=None):
        """``log p(x, z_1..z_L) - log q(z_1..z_L | x)`` for k hierarchical samples: ``[num_samples, batch]``.

        ``parameters`` (as from `posterior_parameters`) replaces the bottom-up estimates.
        """
        seed = self.noise_seed() if seed is None else seed
        estimates = self._bottom_up(x, training=training) if parameters is None else parameters
        x = self._check_images(x)
        batch = tf.shape(estimates[0][0])[0]
        # k copies of each example's bottom-up estimates, sample-major: [k * batch, d].
        tiled = [tuple(tf.reshape(tf.tile(t[tf.newaxis], [num_samples, 1, 1]), [-1, t.shape[-1]]) for t in pair)
                 for pair in estimates]
        seeds = tfp.random.split_seed(seed, len(self.latent_dims))
        layers = self._top_down(
            tiled, lambda i, loc, scale: loc + scale * tf.random.stateless_normal(tf.shape(loc), seed=seeds[i])
        )
        logits = self.decoder(layers[0]["z"], training=training)
        logits = tf.reshape(logits, tf.concat([[num_samples, batch], tf.shape(logits)[1:]], 0))
        log_w = self.likelihood.log_prob(tf.cast(x, tf.float32)[tf.newaxis], logits)
        top_z = layers[-1]["z"]
        log_w_flat = self.prior.log_prob(top_z)
        log_w_flat -= tfd.MultivariateNormalDiag(*layers[-1]["q"]).log_prob(top_z)
        for layer in layers[:-1]:
            log_w_flat += tfd.MultivariateNormalDiag(*layer["p"]).log_prob(layer["z"])
            log_w_flat -= tfd.MultivariateNormalDiag(*layer["q"]).log_prob(layer["z"])
        return log_w + tf.reshape(log_w_flat, [num_samples, batch])

    def call(self, x, training=False):
        """Top posterior parameters and the decoder output of the top-down posterior means."""
        estimates = self._bottom_up(x, training=training)
        layers = self._top_down(estimates, lambda i, loc, scale: loc)
        loc, scale = estimates[-1]
        return {"loc": loc, "scale": scale, "decoder_output": self.decoder(layers[0]["z"], training=training)}

    def get_config(self):
        return {
            **super().get_config(),
            "lower_latent_dims": list(self.lower_latent_dims),
            "ladder_units": self.ladder_units,
            "activation": self.activation,
        }
