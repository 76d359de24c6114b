"""The variational autoencoder: a subclassed `keras.Model` with its own `train_step` / `test_step`.

A model is a declaration of parts: encoder and decoder networks, a posterior, a prior, a likelihood,
an objective and a condition. `VAE` owns everything they share (the Keras steps, metrics, shape checks,
importance weights, config); a subclass only where the generative model differs in structure
(`keras_vae.LadderVAE`), overriding the hooks listed under "Hooks" below.

Example:

>>> vae = keras_vae.build_vae((28, 28, 1), latent_dim=16, architecture="mlp")
>>> vae.compile(optimizer=keras.optimizers.Adam(1e-3))
>>> vae.fit(images, epochs=1, batch_size=64)          # images: float32 in [0, 1], (N, 28, 28, 1)
>>> vae.sample(16, seed=0).shape
TensorShape([16, 28, 28, 1])
"""

import collections
import math
import warnings

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.adversaries import get_adversary
from keras_vae.conditioning import Condition
from keras_vae.likelihoods import get_likelihood
from keras_vae.objectives import get_objective
from keras_vae.optimizers import NonFiniteSkipping, all_finite
from keras_vae.posteriors import get_posterior
from keras_vae.priors import get_prior
from keras_vae.samplers import get_sampler

tfd = tfp.distributions

BASE_METRICS = ("loss", "reconstruction", "kl", "elbo")
NONFINITE_POLICIES = ("skip", "stop")

# One stochastic layer of a draw, all per example (``[n]``, n = samples * batch, sample-major): its codes
# ``z`` [n, d], its posterior ``q``, ``log_q`` = log q(z), ``log_p`` = log p(z | layer above), the KL
# (analytic where both are diagonal Gaussians or the prior is factorized, else log_q - log_p) and the
# per-dimension KL [n, d] when it exists (else None).
LatentLayer = collections.namedtuple("LatentLayer", ["z", "q", "log_q", "log_p", "kl", "kl_per_dim"])
# A joint draw: the layers, log p(x | z) [n], the decoder output [n, H, W, C] and the condition it saw (or None).
Draw = collections.namedtuple("Draw", ["layers", "log_px_z", "decoder_output", "condition"])


class NonFiniteLossError(RuntimeError):
    """Training met a non-finite loss or gradient and stopped (the update was not applied)."""


def _deserialize(obj):
    return keras.saving.deserialize_keras_object(obj) if isinstance(obj, dict) else obj


def _shape_str(shape):
    return "(" + ", ".join("batch" if d is None else str(d) for d in shape) + ")"


def checked_shape(x, item_shape, what):
    """Checks ``x`` is ``(batch, *item_shape)``: statically when the shape is known, else when run."""
    expected = (None, *item_shape)
    if x.shape.rank is not None:
        given = tuple(x.shape)
        if len(given) != len(expected) or any(g is not None and g != e for g, e in zip(given[1:], item_shape)):
            raise ValueError(f"Expected {what} of shape {_shape_str(expected)}, got shape {_shape_str(given)}.")
        if None not in given[1:]:
            return x
    # Keras relaxes shapes when it retraces; the check then runs with the data.
    return tf.ensure_shape(x, expected)


def _as_tensor(x):
    return x if isinstance(x, (tf.Tensor, tf.Variable)) else tf.convert_to_tensor(x)


def diagonal_gaussian_layer(q_loc, q_scale, p_loc, p_scale, seed):
    """A `LatentLayer` drawn from N(q_loc, q_scale) against the prior N(p_loc, p_scale), analytic KL per dimension."""
    z = q_loc + q_scale * tf.random.stateless_normal(tf.shape(q_loc), seed=seed)
    q, p = tfd.Normal(q_loc, q_scale), tfd.Normal(p_loc, p_scale)
    kl_per_dim = tfd.kl_divergence(q, p)
    log_q, log_p = (tf.reduce_sum(d.log_prob(z), axis=-1) for d in (q, p))
    return LatentLayer(z, tfd.MultivariateNormalDiag(q_loc, q_scale), log_q, log_p,
                       tf.reduce_sum(kl_per_dim, axis=-1), kl_per_dim)


def tile_samples(t, num_samples):
    """``[batch, ...]`` -> ``[num_samples * batch, ...]``, sample-major (copy k of the batch is rows k*batch...)."""
    return tf.tile(t, tf.concat([[num_samples], tf.ones([tf.rank(t) - 1], tf.int32)], 0))


@keras.saving.register_keras_serializable(package="keras_vae")
class VAE(keras.Model):
    """A VAE: ``q(z|x[, y])`` by the encoder and posterior, ``p(z)`` by the prior, ``p(x|z[, y])`` by the decoder
    and likelihood, trained on an objective (the ELBO by default).

    Args:
        encoder: a built Keras model, images ``(batch, H, W, C)`` -> ``(batch, 2 * latent_dim)``; for a
            conditional model it takes ``[images, condition (batch, K)]`` (see `keras_vae.networks.conditional`).
        decoder: a built Keras model, codes ``(batch, latent_dim)`` -> likelihood parameters ``(batch, H, W, C)``;
            ``[codes, condition]`` for a conditional model.
        latent_dim: size of the latent code.
        likelihood: ``"bernoulli"`` (logits; binary or [0, 1] data), ``"gaussian"`` or a `Likelihood` layer.
        prior: ``"standard_normal"``, ``"mixture"``, ``"vamp"`` or a `Prior` layer.
        posterior: ``"gaussian"``, ``"iaf"`` or a `Posterior` layer.
        objective: ``"elbo"`` or an `Objective` (`ELBO`, `CapacityELBO`, `TotalCorrelationELBO`,
            `ImportanceWeightedBound`).
        condition: a `Condition` (or its config): what the networks are conditioned on; None for nothing.
        seed: seed of the posterior noise drawn in training.
        samplers: ex-post samplers by name (see `fit_sampler`), saved with the model.
        adversary: an `keras_vae.adversaries.Adversary` (a discriminator trained alongside, with its own
            optimizer: FactorVAE, VAE-GAN), or None.

    Data for `fit` / `evaluate`: images, ``(images, labels)``, ``(images, labels, sample_weight)`` or
    ``{"images": ..., "labels": ...}``; an unconditional model ignores labels. A sample weight scales each
    example's objective (0 leaves it out). The metrics are nats per example: ``reconstruction`` =
    E_q[-log p(x|z)], ``kl``, ``elbo`` = -(reconstruction + kl), ``loss`` (the objective minimized; see the
    objective) and ``skipped_steps`` (updates skipped in the epoch because the loss or a gradient was
    not finite: the weights never take NaN).

    Hooks (overridden by models whose generative structure differs, e.g. `LadderVAE`):
    ``posterior_parameters_of`` (encoder output -> one (loc, scale) per stochastic layer),
    ``latent_layers`` (a draw of every layer), ``mean_codes`` (decoder input at the posterior means),
    ``codes_from_top`` (decoder input for top-layer codes), ``sample_codes`` (ancestral draw from the top
    codes), and ``network_shapes`` (what the networks must output and take).
    """

    def __init__(self, encoder, decoder, latent_dim, likelihood="bernoulli", prior="standard_normal",
                 posterior="gaussian", objective="elbo", condition=None, seed=None, samplers=None, adversary=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.encoder = _deserialize(encoder)
        self.decoder = _deserialize(decoder)
        self.latent_dim = int(latent_dim)
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        self.condition = Condition.get(condition)
        self.likelihood = get_likelihood(likelihood)
        self.prior = get_prior(prior)
        self.posterior = get_posterior(posterior)
        self.objective = get_objective(objective)
        self.seed = seed
        self._check_networks()
        self.image_shape = tuple(int(d) for d in self.encoder.inputs[0].shape[1:])
        self.build_parts()
        self.prior.bind(self)
        if not self.prior.built:
            self.prior.build((None, self.latent_dim))
        if not self.likelihood.built:
            self.likelihood.build((None, *self.image_shape))
        if not self.posterior.built:
            # With every layer built, Keras never traces `call` to build the model under a strategy.
            self.posterior.build((None, self.latent_dim))
        self.objective.check(self)
        self.adversary = get_adversary(adversary)
        if self.adversary is not None:
            self.adversary.check(self)
        self.samplers = {}
        for name, sampler in (samplers or {}).items():
            self.add_sampler(name, get_sampler(sampler))
        self.seed_generator = keras.random.SeedGenerator(seed, name="posterior_noise")
        names = [*BASE_METRICS, *self.layer_metric_names(), *self.objective.metric_names,
                 *(self.adversary.metric_names if self.adversary is not None else ())]
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.trackers["skipped_steps"] = keras.metrics.Sum(name="skipped_steps")
        self.nonfinite_policy = "skip"
        self.built = True  # every weight exists now: saving, loading and strategies need no build call

    # ----------------------------------------------------------------- structure hooks
    def build_parts(self):
        """Creates and builds any layers of the model's own (none here); called before the prior is bound."""

    @property
    def latent_dims(self):
        """Sizes of the stochastic layers, bottom first (the top one is ``latent_dim``)."""
        return (self.latent_dim,)

    def network_shapes(self):
        """``(encoder output, decoder input)`` shapes without the batch; None where any size is allowed."""
        return (2 * self.latent_dim,), (self.latent_dim,)

    def layer_metric_names(self):
        """Metrics of the stochastic layers beyond the total KL (``kl_1`` .. ``kl_L`` for hierarchies)."""
        return ()

    def posterior_parameters_of(self, encoder_output, training=False):
        """One ``(loc, scale)`` per stochastic layer, bottom first, from the encoder's output."""
        return [self.posterior.parameters_from(encoder_output)]

    def latent_layers(self, parameters, seed, num_samples=1):
        """A draw of every stochastic layer (`LatentLayer`s, bottom first), ``num_samples`` per example."""
        loc, scale = (tile_samples(t, num_samples) for t in parameters[-1])
        return [self.top_layer(loc, scale, seed)]

    def top_layer(self, loc, scale, seed):
        """The `LatentLayer` of the top codes: the posterior layer's q against the model's prior."""
        q = self.posterior.distribution(loc, scale)
        z, log_q = self.posterior.sample_and_log_prob(loc, scale, seed)
        log_p = self.prior.log_prob(z)
        marginal = self.prior.marginal()
        if self.posterior.diagonal_gaussian and marginal is not None:
            kl_per_dim = tfd.kl_divergence(tfd.Normal(loc, scale), marginal)
            return LatentLayer(z, q, log_q, log_p, tf.reduce_sum(kl_per_dim, axis=-1), kl_per_dim)
        return LatentLayer(z, q, log_q, log_p, log_q - log_p, None)  # Monte Carlo, one sample

    def mean_codes(self, parameters):
        """The decoder's input at the posterior means."""
        loc, scale = parameters[-1]
        return loc if self.posterior.diagonal_gaussian else self.posterior.distribution(loc, scale).mean()

    def codes_from_top(self, z):
        """The decoder's input for top-layer codes ``z`` (the codes themselves here)."""
        return z

    def sample_codes(self, z, temperature, seed):
        """The decoder's input for codes ``z`` drawn from the prior (ancestral sampling of any layers below)."""
        return z

    # ----------------------------------------------------------------- input checks
    def _check_networks(self):
        k = self.condition.size
        for role, net in (("encoder", self.encoder), ("decoder", self.decoder)):
            inputs = getattr(net, "inputs", None) or []
            if not isinstance(net, keras.Model) or not net.built or len(inputs) != (2 if k else 1):
                wanted = "two inputs (data, condition)" if k else "one input"
                raise ValueError(f"The {role} must be a built keras.Model with {wanted} (give it keras.Input); "
                                 f"got {net!r}.")
        enc_in, dec_in = (tuple(net.inputs[0].shape) for net in (self.encoder, self.decoder))
        enc_out, dec_out = (tuple(net.outputs[0].shape) for net in (self.encoder, self.decoder))
        if k:
            for role, net in (("encoder", self.encoder), ("decoder", self.decoder)):
                cond_in = tuple(net.inputs[1].shape)
                if cond_in[1:] != (k,):
                    raise ValueError(f"The {role}'s condition input must be (batch, {k}) for "
                                     f"{self.condition.describe()}; it is {_shape_str(cond_in)}.")
        want_enc, want_dec = self.network_shapes()
        if len(enc_in) != 4:
            raise ValueError(f"The encoder must take images (batch, H, W, C); its input shape is {_shape_str(enc_in)}.")
        if len(enc_out) != 2 or (want_enc is not None and enc_out[1:] != want_enc):
            wanted = f"(batch, {want_enc[0]})" if want_enc else "features (batch, F)"
            raise ValueError(f"The encoder must output {wanted}; it outputs {_shape_str(enc_out)}.")
        if dec_in[1:] != want_dec:
            raise ValueError(f"The decoder must take (batch, {want_dec[0]}) codes; it takes {_shape_str(dec_in)}.")
        if dec_out[1:] != enc_in[1:]:
            raise ValueError(
                f"The decoder output {_shape_str(dec_out)} must match the encoder input {_shape_str(enc_in)}."
            )

    def _check_images(self, x):
        x = _as_tensor(x)
        if not (x.dtype.is_floating or x.dtype.is_integer or x.dtype == tf.bool):
            raise ValueError(f"Expected numeric images, got dtype {x.dtype.name}.")
        return tf.cast(checked_shape(x, self.image_shape, "images"), tf.float32)

    def _check_codes(self, z):
        z = _as_tensor(z)
        if not z.dtype.is_floating:
            raise ValueError(f"Expected floating-point latent codes, got dtype {z.dtype.name}.")
        return tf.cast(checked_shape(z, (self.latent_dim,), "latent codes"), tf.float32)

    def _condition_of(self, labels, batch_size):
        """The networks' condition input (float [batch, K]) for ``labels``, or None for an unconditional model."""
        return self.condition.encode(labels, batch_size) if self.condition else None

    @staticmethod
    def unpack(data):
        """``(images, labels, sample_weight)`` of a batch: images, a tuple, or ``{"images", "labels"}``."""
        if isinstance(data, (tuple, list)) and len(data) == 1 and isinstance(data[0], (tuple, list, dict)):
            data = data[0]  # predict((images, labels)) hands its x over as a 1-tuple
        if isinstance(data, dict):
            if "images" not in data:
                raise ValueError(f"A dict batch holds the images under 'images'; it has keys {sorted(data)}.")
            return data["images"], data.get("labels"), data.get("sample_weight")
        return keras.utils.unpack_x_y_sample_weight(data)

    # ----------------------------------------------------------------- networks
    def encoder_output(self, x, condition, training=False):
        return self.encoder(x if condition is None else [x, condition], training=training)

    def decoder_output_of(self, codes, condition, training=False):
        return self.decoder(codes if condition is None else [codes, condition], training=training)

    # ----------------------------------------------------------------- public API
    def posterior_parameters(self, x, labels=None, training=False):
        """The encoder's posterior parameters for ``x``: a list of ``(loc, scale)`` pairs, ``[batch, d]`` each.

        One pair per stochastic layer, bottom first (one for this model). They are what
        `log_importance_weights` samples from unless it is given others, e.g. refined per example by
        `keras_vae.refine_posterior`.
        """
        x = self._check_images(x)
        condition = self._condition_of(labels, tf.shape(x)[0])
        return self.posterior_parameters_of(self.encoder_output(x, condition, training=training), training=training)

    def posterior_from(self, parameters):
        """q(z|x) of the top layer from `posterior_parameters`."""
        return self.posterior.distribution(*parameters[-1])

    def encode(self, x, labels=None, training=False):
        """The top layer's posterior q(z|x[, y]), a tfp distribution with batch shape ``[batch]``."""
        return self.posterior_from(self.posterior_parameters(x, labels, training=training))

    def decoder_output(self, z, labels=None, training=False):
        """Raw decoder output (likelihood parameters: logits or means) for top-layer codes ``z``."""
        z = self._check_codes(z)
        condition = self._condition_of(labels, tf.shape(z)[0])
        return self.decoder_output_of(self.codes_from_top(z), condition, training=training)

    def decode(self, z, labels=None):
        """Likelihood mean in data space for codes ``z``: pixel probabilities for Bernoulli, means for Gaussian."""
        return self.likelihood.mean(self.decoder_output(z, labels))

    def reconstruct(self, x, labels=None):
        """Decodes the posterior means of each input."""
        x = self._check_images(x)
        condition = self._condition_of(labels, tf.shape(x)[0])
        parameters = self.posterior_parameters_of(self.encoder_output(x, condition))
        return self.likelihood.mean(self.decoder_output_of(self.mean_codes(parameters), condition))

    # ----------------------------------------------------------------- samplers
    def sampler(self, name="prior"):
        """The code sampler ``name``: ``"prior"`` (the prior) or an ex-post sampler added by `fit_sampler`."""
        if name == "prior":
            return self.prior
        if name not in self.samplers:
            raise ValueError(f"Unknown sampler {name!r}; this model has {['prior', *self.samplers]}. "
                             "Fit one with model.fit_sampler(images, kind=...).")
        return self.samplers[name]

    def add_sampler(self, name, sampler, dataset=None):
        """Keeps ``sampler`` under ``name``; a ValueError when it was fitted for another latent size, or (when
        both are known) on another ``dataset`` than the one given."""
        if name == "prior" or not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"A sampler name must be an identifier other than 'prior', got {name!r}.")
        if dataset is not None and sampler.dataset is not None and sampler.dataset != dataset:
            raise ValueError(f"Sampler {name!r} was fitted to codes of {sampler.dataset!r}, not {dataset!r}: it "
                             "belongs to another model.")
        if sampler.built and getattr(sampler, "latent_dim", None) != self.latent_dim:
            raise ValueError(f"Sampler {name!r} was fitted to {sampler.latent_dim}-dimensional codes; this model's "
                             f"codes have {self.latent_dim}: it belongs to another model.")
        if not sampler.built:
            sampler.build((None, self.latent_dim))
        sampler.freeze()  # fitted after training: the model's fit never moves it
        # Popped first: Keras' tracked dict keeps a replaced value's weights in the model's layers, and the
        # saved file would then load the old sampler's weights under this name.
        self.samplers.pop(name, None)
        self.samplers[name] = sampler
        return sampler

    def fit_sampler(self, images, labels=None, kind="gmm", name=None, batch_size=256, seed=0, verbose=False,
                    dataset=None, **options):
        """Fits an ex-post sampler (`keras_vae.samplers`) to the posterior means of ``images`` and keeps it.

        Returns the sampler; ``model.sample(n, sampler=name)`` then draws from it (``name`` defaults to ``kind``).
        ``dataset`` (a name) is recorded with the sampler, so it can be told apart from one of another dataset.
        """
        from keras_vae.latent import encode_means
        from keras_vae.precision import float32_compute

        with float32_compute(self):  # a model trained in mixed precision: codes to float32's digits
            codes = encode_means(self, images, labels, batch_size=batch_size)
        sampler = get_sampler(kind, dataset=dataset, **options)
        sampler.build((None, self.latent_dim))
        sampler.fit(codes, seed=seed, verbose=verbose)
        return self.add_sampler(name or kind, sampler)

    def sample_prior(self, num_samples, temperature=1.0, seed=None, sampler="prior"):
        """Codes ``[num_samples, latent_dim]`` from the prior (or ``sampler``); ``temperature`` scales the spread."""
        num_samples, temperature = _checked_sampling(num_samples, temperature)
        return self.sampler(sampler).sample(num_samples, temperature=temperature, seed=self._sampling_seed(seed))

    def sample(self, num_samples, temperature=1.0, seed=None, labels=None, sampler="prior"):
        """Decoded samples ``[num_samples, H, W, C]`` of codes from the prior or an ex-post ``sampler``; a
        conditional model takes one label or one per sample."""
        num_samples, temperature = _checked_sampling(num_samples, temperature)
        condition = self._condition_of(labels, num_samples)
        base = self._sampling_seed(seed)
        z = self.sampler(sampler).sample(num_samples, temperature=temperature, seed=base)
        # Folded so layers below the top draw other noise than the top layer, from the same seed.
        codes = self.sample_codes(z, temperature, tf.random.experimental.stateless_fold_in(base, 1))
        return self.likelihood.mean(self.decoder_output_of(codes, condition))

    def _sampling_seed(self, seed):
        seed = keras.random.SeedGenerator(seed).next() if seed is not None else self.seed_generator.next()
        return tf.cast(seed, tf.int32)

    def noise_seed(self):
        """A fresh stateless seed for this step, distinct on every replica of a tf.distribute strategy."""
        seed = tf.cast(self.seed_generator.next(), tf.int32)
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            seed = tf.random.experimental.stateless_fold_in(seed, ctx.replica_id_in_sync_group)
        return seed

    def optimizer_step(self):
        """The optimizer's step count as a float (0 before compile): schedules of objectives read it."""
        if getattr(self, "optimizer", None) is None:
            return tf.constant(0.0)
        return tf.cast(self.optimizer.iterations, tf.float32)

    # ----------------------------------------------------------------- bounds
    def draw(self, x, labels=None, num_samples=1, seed=None, training=False, parameters=None):
        """One joint draw of every layer per example and sample, with the decoder's log-likelihood.

        Returns a `Draw`: `LatentLayer`s (bottom first), ``log p(x | z)``, the decoder output and the
        condition, all ``[num_samples * batch, ...]``, sample-major.
        """
        x = self._check_images(x)
        batch = tf.shape(x)[0]
        condition = self._condition_of(labels, batch)
        if parameters is None:
            parameters = self.posterior_parameters_of(self.encoder_output(x, condition, training), training)
        layers = self.latent_layers(parameters, self.noise_seed() if seed is None else seed, num_samples)
        if condition is not None:
            condition = tile_samples(condition, num_samples)
        out = self.decoder_output_of(layers[0].z, condition, training=training)
        samples = tf.reshape(out, tf.concat([[num_samples, batch], tf.shape(out)[1:]], 0))
        log_px_z = tf.reshape(self.likelihood.log_prob(x[tf.newaxis], samples), [num_samples * batch])
        return Draw(layers, log_px_z, out, condition)

    def elbo_terms(self, x, labels=None, training=False):
        """Per-example ELBO terms, each ``[batch]`` in nats, and the draw they came from.

        Returns ``(terms, layers)``: ``terms`` has ``reconstruction``, ``kl``, ``elbo`` (and ``kl_1`` ..
        ``kl_L`` for hierarchies) and, for adversaries, the draw's top ``codes``, ``decoder_output`` and
        ``condition``; objectives add ``loss`` and their own terms.
        """
        draw = self.draw(x, labels, training=training)
        return self.terms_of(draw), draw.layers

    def terms_of(self, draw, count=None):
        """The ELBO terms of the first ``count`` rows of a `Draw` (all by default)."""
        rows = slice(None) if count is None else slice(None, count)
        kl = tf.add_n([layer.kl[rows] for layer in draw.layers])
        log_px_z = draw.log_px_z[rows]
        terms = {"reconstruction": -log_px_z, "kl": kl, "elbo": log_px_z - kl,
                 "codes": draw.layers[-1].z[rows], "decoder_output": draw.decoder_output[rows]}
        if draw.condition is not None:
            terms["condition"] = draw.condition[rows]
        for name, layer in zip(self.layer_metric_names(), draw.layers):
            terms[name] = layer.kl[rows]
        return terms

    def log_importance_weights(self, x, num_samples, seed=None, labels=None, training=False, parameters=None):
        """``log p(x, z_k) - log q(z_k|x)`` for ``num_samples`` joint draws: ``[num_samples, batch]``.

        ``parameters`` (as from `posterior_parameters`) replaces the encoder's proposal q(z|x).
        """
        draw = self.draw(x, labels, num_samples, seed, training, parameters)
        log_w = draw.log_px_z + tf.add_n([layer.log_p - layer.log_q for layer in draw.layers])
        return tf.reshape(log_w, [num_samples, tf.shape(log_w)[0] // num_samples])

    # ----------------------------------------------------------------- Keras plumbing
    def call(self, x, labels=None, training=False):
        """Reconstructions in data space (pixel probabilities for Bernoulli): what `predict(images)` returns."""
        x = self._check_images(x)
        condition = self._condition_of(labels, tf.shape(x)[0])
        parameters = self.posterior_parameters_of(self.encoder_output(x, condition, training), training)
        return self.likelihood.mean(self.decoder_output_of(self.mean_codes(parameters), condition, training))

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, nonfinite="skip", adversary_optimizer=None,
                **kwargs):
        """Compiles with ``optimizer`` only: the model owns its objective and metrics.

        Args:
            nonfinite: ``"skip"`` (default) skips an update whose loss or gradient is not finite and counts it
                in ``skipped_steps``; ``"stop"`` also stops `fit` with `NonFiniteLossError`.
            adversary_optimizer: the optimizer of the model's adversary (default: the adversary's own, e.g.
                Adam(1e-4, 0.5, 0.9) for FactorVAE); non-finite discriminator steps are skipped the same way.
        """
        for name, value in (("loss", loss), ("metrics", metrics), ("loss_weights", kwargs.get("loss_weights")),
                            ("weighted_metrics", kwargs.get("weighted_metrics"))):
            if value is not None:
                raise ValueError(f"{type(self).__name__}.compile takes no {name}=: the model trains on its own "
                                 f"objective ({type(self.objective).__name__}) and reports its own metrics. "
                                 "Choose the objective when building the model.")
        if nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"nonfinite must be one of {list(NONFINITE_POLICIES)}, got {nonfinite!r}")
        self.nonfinite_policy = nonfinite
        super().compile(optimizer=_guarded(optimizer), **kwargs)
        self.adversary_optimizer = None
        if self.adversary is not None:
            mixed = keras.mixed_precision.global_policy().name == "mixed_float16"
            adversary_optimizer = _guarded(adversary_optimizer or self.adversary.default_optimizer())
            if mixed and not isinstance(adversary_optimizer, keras.optimizers.LossScaleOptimizer):
                adversary_optimizer = keras.optimizers.LossScaleOptimizer(adversary_optimizer)
            self.adversary_optimizer = adversary_optimizer

    def get_compile_config(self):
        config = super().get_compile_config()
        if config is None:
            return None
        extra = {"nonfinite": self.nonfinite_policy}
        if getattr(self, "adversary_optimizer", None) is not None:
            extra["adversary_optimizer"] = keras.saving.serialize_keras_object(self.adversary_optimizer)
        return {**config, **extra}

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        keep = ("optimizer", "nonfinite", "adversary_optimizer", "run_eagerly", "steps_per_execution", "jit_compile",
                "auto_scale_loss_with_mixed_precision")
        self.compile(**{k: v for k, v in config.items() if k in keep and v is not None})
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.model_variables())  # so the saved optimizer state can be restored
        if getattr(self, "adversary_optimizer", None) is not None:
            self.adversary_optimizer.build(self.adversary.trainable_variables)

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """Keras' `Model.export`, with the model's own input signature: images ``[batch, H, W, C]`` float32
        (and ``labels`` for a conditional model) -> reconstructions, as `predict` gives them.

        For TF Serving signatures of the decoder (sampling, scores) and TFLite files, use
        `keras_vae.export.export_model`.
        """
        if input_signature is None:
            input_signature = [tf.TensorSpec([None, *self.image_shape], tf.float32, name="images")]
            if self.condition:
                input_signature.append(self.condition.label_spec("labels"))
        return super().export(filepath, format=format, verbose=verbose, input_signature=input_signature, **kwargs)

    def predict_step(self, data):
        x, labels, _ = self.unpack(data)
        return self(x, labels=labels if self.condition else None)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _update_metrics(self, terms, weight):
        for name, tracker in self.trackers.items():
            if name != "skipped_steps":
                tracker.update_state(terms[name], sample_weight=weight)
        return {m.name: m.result() for m in self.metrics}

    def _total_loss(self, terms, sample_weight):
        # Sum over the local batch divided by the *global* batch size: Keras sums gradients
        # across replicas, so this yields the mean gradient on any number of replicas.
        loss = tf.nn.compute_average_loss(terms["loss"], sample_weight=sample_weight)
        if self.losses:
            loss += tf.nn.scale_regularization_loss(tf.add_n(self.losses))
        return loss

    def _batch(self, data):
        x, labels, sample_weight = self.unpack(data)
        if sample_weight is not None:
            sample_weight = tf.cast(tf.reshape(sample_weight, [-1]), tf.float32)
        return x, (labels if self.condition else None), sample_weight

    def model_variables(self):
        """The trainable variables of the model's own objective: all but its adversary's."""
        if self.adversary is None:
            return self.trainable_variables
        held_out = {id(v) for v in self.adversary.trainable_variables}
        return [v for v in self.trainable_variables if id(v) not in held_out]

    def step_terms(self, x, labels, training):
        """The objective's per-example terms, with the adversary's generator terms when there is one."""
        terms = self.objective.terms(self, x, labels, training=training)
        if self.adversary is not None:
            terms = self.adversary.generator_terms(self, self._check_images(x), terms, self.noise_seed(), training)
        return terms

    def train_step(self, data):
        x, labels, sample_weight = self._batch(data)
        variables = self.model_variables()
        with tf.GradientTape() as tape:
            terms = self.step_terms(x, labels, training=True)
            loss = self._total_loss(terms, sample_weight)
            scaled_loss = self.optimizer.scale_loss(loss)  # loss scaling under mixed_float16
        grads = tape.gradient(scaled_loss, variables)
        checked, finite = _apply_unless_nonfinite(self.optimizer, grads, variables, self._metric_terms(terms))
        if self.adversary is not None:
            adversary_terms, adversary_finite = self._adversary_step(x, terms, sample_weight)
            checked.update(adversary_terms)
            finite = finite * adversary_finite
        # A Sum adds every replica's update: count each skipped step once.
        ctx = tf.distribute.get_replica_context()
        replicas = ctx.num_replicas_in_sync if ctx is not None else 1
        self.trackers["skipped_steps"].update_state((1.0 - finite) / replicas)
        # Per example, not a scalar: Keras' Mean turns a scalar weight on a replica's empty batch into NaN.
        weight = tf.fill(tf.shape(checked["loss"]), finite)
        return self._update_metrics(checked, weight if sample_weight is None else weight * sample_weight)

    def _adversary_step(self, x, terms, sample_weight):
        """One update of the adversary on the batch and what the model's step drew (held out of its gradient)."""
        variables = self.adversary.trainable_variables
        x = self._check_images(x)
        with tf.GradientTape() as tape:
            adversary_terms = self.adversary.discriminator_terms(self, x, terms, self.noise_seed(), training=True)
            loss = tf.nn.compute_average_loss(adversary_terms["discriminator_loss"], sample_weight=sample_weight)
            scaled_loss = self.adversary_optimizer.scale_loss(loss)
        grads = tape.gradient(scaled_loss, variables)
        return _apply_unless_nonfinite(self.adversary_optimizer, grads, variables, adversary_terms)

    def _metric_terms(self, terms):
        """The loss and the tracked terms (what the finiteness guard checks and the metrics read)."""
        return {name: terms[name] for name in ("loss", *self.trackers) if name in terms}

    def test_step(self, data):
        x, labels, sample_weight = self._batch(data)
        terms = self.step_terms(x, labels, training=False)
        if self.adversary is not None:
            terms.update(self.adversary.discriminator_terms(self, self._check_images(x), terms, self.noise_seed(),
                                                            training=False))
        return self._update_metrics(terms, sample_weight)

    def _check_data(self, x):
        """Checks the data of `fit`/`evaluate` up front, so a wrong shape, dtype or range is a ValueError."""
        if isinstance(x, tf.data.Dataset):
            spec = self.unpack(x.element_spec)[0]
            if spec.shape.rank is not None:
                checked_shape(tf.TensorSpec(spec.shape), self.image_shape, "images")
            if spec.dtype.is_integer and self.likelihood.data_range is not None:
                raise ValueError(_integer_images_message(spec.dtype.name, self.likelihood))
            return
        if isinstance(x, dict):
            x = self.unpack(x)[0]
        if hasattr(x, "shape") and hasattr(x, "dtype"):
            checked_shape(tf.TensorSpec(tuple(x.shape)), self.image_shape, "images")
            check_data_range(np.asarray(x), self.likelihood)

    def fit(self, x=None, y=None, *args, **kwargs):
        self._check_data(x)
        self._check_labels_given(x, y)
        y = self._placeholder_labels(x, y, kwargs)
        if isinstance(x, (np.ndarray, tf.Tensor)):
            self.objective.observe_dataset_size(int(x.shape[0]) - _validation_count(x, kwargs))
        self.objective.check_ready()
        if getattr(self, "adversary_optimizer", None) is not None and not self.adversary_optimizer.built:
            # Built here, in the strategy's scope: built lazily inside a distributed step it would create its
            # variables in a cond branch, which fails.
            with self.distribute_strategy.scope():
                self.adversary_optimizer.build(self.adversary.trainable_variables)
        callbacks = list(kwargs.pop("callbacks", None) or [])
        if self.nonfinite_policy == "stop":
            callbacks.append(StopOnSkippedStep())
        history = super().fit(x, y, *args, callbacks=callbacks, **kwargs)
        skipped = sum(history.history.get("skipped_steps", []))
        if skipped:
            warnings.warn(f"{int(skipped)} training steps had a non-finite loss or gradient and were skipped "
                          "(the weights stayed finite): check the data for NaN/Inf or lower the learning rate.",
                          RuntimeWarning, stacklevel=2)
        return history

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._check_data(x)
        self._check_labels_given(x, y)
        y = self._placeholder_labels(x, y, kwargs)
        return super().evaluate(x, y, *args, **kwargs)

    def _check_labels_given(self, x, y):
        """A conditional model's data must carry labels: say so before Keras traces the step."""
        if not self.condition:
            return
        if isinstance(x, tf.data.Dataset):
            labels = self.unpack(x.element_spec)[1]
        elif isinstance(x, dict):
            labels = x.get("labels")
        elif hasattr(x, "shape"):
            labels = y
        else:
            return  # generators and PyDatasets are checked when the step is traced
        if labels is None:
            raise ValueError(f"This model is conditional ({self.condition.describe()}): give the labels with the "
                             "images, as fit(images, labels), a dataset of (images, labels) or "
                             "{'images': ..., 'labels': ...}.")

    def _placeholder_labels(self, x, y, kwargs):
        """Keras drops ``sample_weight`` when there is no ``y``: an unconditional model gets unused labels, so
        the weights arrive."""
        if y is None and kwargs.get("sample_weight") is not None and not self.condition and hasattr(x, "shape"):
            return np.zeros([int(x.shape[0])], np.float32)
        return y

    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": serialize(self.encoder),
            "decoder": serialize(self.decoder),
            "latent_dim": self.latent_dim,
            "likelihood": serialize(self.likelihood),
            "prior": serialize(self.prior),
            "posterior": serialize(self.posterior),
            "objective": serialize(self.objective),
            "condition": self.condition.get_config(),
            "seed": self.seed,
            "samplers": {name: serialize(sampler) for name, sampler in self.samplers.items()},
            "adversary": None if self.adversary is None else serialize(self.adversary),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class StopOnSkippedStep(keras.callbacks.Callback):
    """Stops `fit` at the first skipped (non-finite) step: ``compile(nonfinite="stop")``."""

    def on_train_batch_end(self, batch, logs=None):
        if logs and logs.get("skipped_steps", 0) > 0:
            self.model.stop_training = True
            raise NonFiniteLossError(
                f"Non-finite loss or gradient at batch {batch + 1} (nonfinite='stop'). The update was not applied; "
                "the weights hold the last finite state. Check the data for NaN/Inf, lower the learning rate or "
                "clip gradients (clipnorm)."
            )


def _guarded(optimizer):
    """``optimizer`` wrapped so non-finite steps are skipped (under mixed_float16 Keras adds its dynamic one)."""
    optimizer = keras.optimizers.get(optimizer)
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) or \
            keras.mixed_precision.global_policy().name == "mixed_float16":
        return optimizer
    return NonFiniteSkipping(optimizer)


def _checked_sampling(num_samples, temperature):
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if not (math.isfinite(float(temperature)) and float(temperature) > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    return int(num_samples), float(temperature)


def _validation_count(x, fit_kwargs):
    split = float(fit_kwargs.get("validation_split") or 0.0)
    return int(int(x.shape[0]) * split)


def _integer_images_message(dtype, likelihood):
    low, high = likelihood.data_range
    return (f"Images have integer dtype {dtype}; {type(likelihood).__name__} models data in [{low}, {high}]: "
            "convert them to float32 (for 8-bit images, images / 255).")


def check_data_range(images, likelihood):
    """Raises a ValueError when numpy ``images`` are not finite or outside the likelihood's data range."""
    if images.dtype.kind in "iu" and likelihood.data_range is not None and images.size and images.max() > 1:
        raise ValueError(_integer_images_message(images.dtype.name, likelihood))
    if images.dtype.kind == "f" and images.size:
        if not np.all(np.isfinite(images)):
            # Not an error for fit: the step guard skips such batches; but say it plainly up front.
            warnings.warn(f"The images hold {int(np.sum(~np.isfinite(images)))} non-finite values (NaN/Inf): "
                          "the batches holding them will be skipped.", RuntimeWarning, stacklevel=3)
            images = images[np.isfinite(images)]
        if likelihood.data_range is not None and images.size:
            low, high = likelihood.data_range
            if images.min() < low or images.max() > high:
                raise ValueError(f"Images must lie in [{low}, {high}] for {type(likelihood).__name__}; they span "
                                 f"[{images.min():.4g}, {images.max():.4g}]. Rescale them, or use "
                                 "likelihood='gaussian' for real-valued data.")


def _apply_unless_nonfinite(optimizer, grads, variables, terms):
    """Applies ``grads`` unless a loss term or gradient is non-finite on any replica; keeps such a step out of
    the metrics. Returns ``(terms, finite)``: the terms zeroed on a skipped step, ``finite`` 1.0 or 0.0.

    The loss-scale optimizer tests the gradients of the first replica only (before the all-reduce), so a
    NaN on another replica would reach every replica's weights through the sum: under several replicas a
    non-finite step turns all gradients to NaN, so every replica skips. With one replica `NonFiniteSkipping`
    takes the verdict as it is instead of testing the gradients a second time.
    """
    finite = all_finite([*terms.values(), *grads])
    ctx = tf.distribute.get_replica_context()
    replicas = ctx.num_replicas_in_sync if ctx is not None else 1
    if replicas > 1:
        num_bad = ctx.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32))
        finite = tf.equal(num_bad, 0.0)
    if replicas == 1 and isinstance(optimizer, NonFiniteSkipping):
        optimizer.apply_with_verdict(grads, variables, finite)
    else:
        # A cond, not a select per gradient: a finite step passes its gradients on without touching them.
        grads = tf.cond(
            finite,
            lambda: list(grads),
            lambda: [None if g is None else tf.fill(tf.shape(g), tf.constant(float("nan"), g.dtype)) for g in grads],
        )
        optimizer.apply_gradients(zip(grads, variables))
    terms = {k: tf.where(finite, v, tf.zeros_like(v)) for k, v in terms.items()}
    return terms, tf.cast(finite, tf.float32)
