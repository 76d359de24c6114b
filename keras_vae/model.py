"""The variational autoencoder: a subclassed `keras.Model` with its own `train_step` / `test_step`.

A model is a declaration of parts: encoder and decoder networks, a posterior, a prior, a likelihood,
an objective and a condition. `VAE` owns everything they share (the Keras steps, metrics, importance
weights, config); a subclass only where the generative model differs in structure
(`keras_vae.LadderVAE`), overriding the hooks listed under "Hooks" below. Three mixins hold the rest of
its jobs: `keras_vae.input_checks` (networks, images, codes, labels, `fit` data), `keras_vae.step_policy`
(non-finite steps, `compile`, the adversary's optimizer) and `keras_vae.sampler_registry` (samplers, seeds);
`keras_vae.draws` holds the records of a draw.

Example:

>>> vae = keras_vae.build_vae((28, 28, 1), latent_dim=16, architecture="mlp")
>>> vae.compile(optimizer=keras.optimizers.Adam(1e-3))
>>> vae.fit(images, epochs=1, batch_size=64)          # images: float32 in [0, 1], (N, 28, 28, 1)
>>> vae.sample(16, seed=0).shape
TensorShape([16, 28, 28, 1])
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae import data_checks
from keras_vae import limits
from keras_vae.adversaries import get_adversary
from keras_vae.conditioning import Condition
from keras_vae.draws import Draw, LatentLayer, tile_samples
from keras_vae.input_checks import InputChecks, as_tensor, validation_count
from keras_vae.likelihoods import get_likelihood
from keras_vae.objectives import get_objective
from keras_vae.posteriors import get_posterior
from keras_vae.priors import get_prior
from keras_vae.sampler_registry import SamplerRegistry, checked_sampling
from keras_vae.samplers import get_sampler
from keras_vae.step_policy import AppliedMean, StepPolicy, apply_unless_nonfinite, warn_skipped_steps

# Importable from here too: the library, its tests and users import them from keras_vae.model.
from keras_vae.draws import diagonal_gaussian_layer  # noqa: F401
from keras_vae.input_checks import check_data_range, checked_shape  # noqa: F401
from keras_vae.step_policy import NONFINITE_POLICIES, NonFiniteLossError, StopOnSkippedStep  # noqa: F401

tfd = tfp.distributions

BASE_METRICS = ("loss", "reconstruction", "kl", "elbo")


def _deserialize(obj):
    return keras.saving.deserialize_keras_object(obj) if isinstance(obj, dict) else obj


@keras.saving.register_keras_serializable(package="keras_vae")
class VAE(InputChecks, StepPolicy, SamplerRegistry, keras.Model):
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
        posterior: ``"gaussian"``, ``"iaf"``, ``"planar"``, ``"radial"`` or a `Posterior` layer.
        objective: ``"elbo"`` or an `Objective` (`ELBO`, `CapacityELBO`, `TotalCorrelationELBO`,
            `ImportanceWeightedBound`).
        condition: a `Condition` (or its config): what the networks are conditioned on; None for nothing.
        seed: seed of the posterior noise drawn in training.
        samplers: ex-post samplers by name (see `fit_sampler`), saved with the model.
        adversary: an `keras_vae.adversaries.Adversary` (a discriminator trained alongside, with its own
            optimizer: FactorVAE, VAE-GAN), or None.

    Data for `fit` / `evaluate`: images, ``(images, labels)``, ``(images, labels, sample_weight)`` or
    ``{"images": ..., "labels": ...}``; an unconditional model takes no labels. A sample weight scales each
    example's objective (0 leaves it out). The metrics are nats per example: ``reconstruction`` =
    E_q[-log p(x|z)], ``kl``, ``elbo`` = -(reconstruction + kl), ``loss`` (the objective minimized; see the
    objective) and ``skipped_steps`` (updates skipped in the epoch because the loss or a gradient was
    not finite: the weights never take NaN).

    Hooks (overridden by models whose generative structure differs, e.g. `LadderVAE`):
    ``posterior_parameters_of`` (encoder output -> one (loc, scale) per stochastic layer),
    ``latent_layers`` (a draw of every layer), ``mean_codes`` (decoder input at the posterior means),
    ``codes_from_top`` (decoder input for top-layer codes), ``sample_codes`` (ancestral draw from the top
    codes), and ``network_shapes`` / ``network_code_size`` (what the networks must output and take).
    """

    def __init__(self, encoder, decoder, latent_dim, likelihood="bernoulli", prior="standard_normal",
                 posterior="gaussian", objective="elbo", condition=None, seed=None, samplers=None, adversary=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.encoder = _deserialize(encoder)
        self.decoder = _deserialize(decoder)
        self.latent_dim = limits.integer_at_least("latent_dim", latent_dim, 1)  # 2.5 is refused, not truncated
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
        self.trackers = {name: AppliedMean(name=name) for name in names}
        self.trackers["skipped_steps"] = keras.metrics.Sum(name="skipped_steps")
        self.nonfinite_policy = "skip"
        self.built = True  # every weight exists now: saving, loading and strategies need no build call

    # ----------------------------------------------------------------- structure hooks
    @staticmethod
    def network_code_size(latent_dim, **options):
        """The size of the codes the networks see (``latent_dim`` here) for a model built with ``options``."""
        return int(latent_dim)

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

    # ----------------------------------------------------------------- networks
    def encoder_output(self, x, condition, training=False):
        return self.encoder(x if condition is None else [x, condition], training=training)

    def decoder_output_of(self, codes, condition, training=False):
        return self.decoder(codes if condition is None else [codes, condition], training=training)

    def _encoded(self, x, labels=None, training=False, parameters=None):
        """The opening of every pass over images: ``(images, condition, posterior parameters)``, the images
        checked, the condition None for an unconditional model, ``parameters`` the encoder's unless given."""
        x = self._check_images(x)
        condition = self._condition_of(labels, tf.shape(x)[0])
        if parameters is None:
            parameters = self.posterior_parameters_of(self.encoder_output(x, condition, training), training)
        return x, condition, parameters

    # ----------------------------------------------------------------- public API
    def posterior_parameters(self, x, labels=None, training=False):
        """The encoder's posterior parameters for ``x``: a list of ``(loc, scale)`` pairs, ``[batch, d]`` each.

        One pair per stochastic layer, bottom first (one for this model). They are what
        `log_importance_weights` samples from unless it is given others, e.g. refined per example by
        `keras_vae.refine_posterior`.
        """
        return self._encoded(x, labels, training)[2]

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
        return self.call(x, labels)

    def sample(self, num_samples, temperature=1.0, seed=None, labels=None, sampler="prior"):
        """Decoded samples ``[num_samples, H, W, C]`` of codes from the prior or an ex-post ``sampler``; a
        conditional model takes one label or one per sample.

        ``num_samples`` whose images exceed `keras_vae.limits.MAX_ARRAY_BYTES` (2 GiB) is a ValueError naming
        the limit, raised before anything is drawn: draw such a number in batches, one call each.
        """
        pixels = int(np.prod(self.image_shape))
        num_samples, temperature = checked_sampling(num_samples, temperature, 4 * pixels,
                                                    f"sampled {self.image_shape} images")
        condition = self._condition_of(labels, num_samples)
        base = self._sampling_seed(seed)
        z = self.sampler(sampler).sample(num_samples, temperature=temperature, seed=base)
        # Folded so layers below the top draw other noise than the top layer, from the same seed.
        codes = self.sample_codes(z, temperature, tf.random.experimental.stateless_fold_in(base, 1))
        # Decoded in chunks: the decoder's activations for all samples at once can be many times the output.
        step = max(1, limits.MAX_CHUNK_BYTES // (4 * (limits.activation_count(self.decoder) + pixels)))
        chunks = [self.likelihood.mean(self.decoder_output_of(
            codes[i:i + step], None if condition is None else condition[i:i + step]))
            for i in range(0, num_samples, step)]
        return chunks[0] if len(chunks) == 1 else tf.concat(chunks, 0)

    # ----------------------------------------------------------------- bounds
    def draw(self, x, labels=None, num_samples=1, seed=None, training=False, parameters=None):
        """One joint draw of every layer per example and sample, with the decoder's log-likelihood.

        Returns a `Draw`: `LatentLayer`s (bottom first), ``log p(x | z)``, the decoder output and the
        condition, all ``[num_samples * batch, ...]``, sample-major.
        """
        x, condition, parameters = self._encoded(x, labels, training, parameters)
        batch = tf.shape(x)[0]
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
        _, condition, parameters = self._encoded(x, labels, training)
        return self.likelihood.mean(self.decoder_output_of(self.mean_codes(parameters), condition, training))

    def predict_step(self, data):
        x, labels, _ = self.unpack(data)
        labels = labels if self.condition else None
        return self(data_checks.graph_checked(as_tensor(x), labels, self.likelihood, self.condition), labels=labels)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _update_metrics(self, terms, weight, applied=1.0):
        for name, tracker in self.trackers.items():
            if name != "skipped_steps":
                tracker.update_state(terms[name], sample_weight=weight, applied=applied)
        return {m.name: m.result() for m in self.metrics}

    def _total_loss(self, terms, sample_weight):
        # Sum over the local batch divided by the *global* batch size: Keras sums gradients
        # across replicas, so this yields the mean gradient on any number of replicas.
        loss = tf.nn.compute_average_loss(terms["loss"], sample_weight=sample_weight)
        if self.losses:
            loss += tf.nn.scale_regularization_loss(tf.add_n(self.losses))
        return loss

    def _metric_terms(self, terms):
        """The loss and the tracked terms (what the finiteness guard checks and the metrics read)."""
        return {name: terms[name] for name in ("loss", *self.trackers) if name in terms}

    def step_terms(self, x, labels, training):
        """The objective's per-example terms, with the adversary's generator terms when there is one."""
        terms = self.objective.terms(self, x, labels, training=training)
        if self.adversary is not None:
            terms = self.adversary.generator_terms(self, x, terms, self.noise_seed(), training)
        return terms

    def train_step(self, data):
        x, labels, sample_weight = self._batch(data)
        variables = self.model_variables()
        with tf.GradientTape() as tape:
            terms = self.step_terms(x, labels, training=True)
            loss = self._total_loss(terms, sample_weight)
            scaled_loss = self.optimizer.scale_loss(loss)  # loss scaling under mixed_float16
        grads = tape.gradient(scaled_loss, variables)
        checked, finite = apply_unless_nonfinite(self.optimizer, grads, variables, self._metric_terms(terms))
        if self.adversary is not None:
            adversary_terms, adversary_finite = self._adversary_step(x, terms, sample_weight)
            checked.update(adversary_terms)
            finite = finite * adversary_finite
        # A skipped step is counted, and weighs 0 in the metrics.
        return self._update_metrics(checked, self._metric_weight(finite, checked, sample_weight), finite)

    def test_step(self, data):
        x, labels, sample_weight = self._batch(data)
        terms = self.step_terms(x, labels, training=False)
        if self.adversary is not None:
            terms.update(self.adversary.discriminator_terms(self, x, terms, self.noise_seed(), training=False))
        return self._update_metrics(terms, sample_weight)

    def fit(self, x=None, y=None, *args, **kwargs):
        x, y = self._checked_fit_arguments(x, y, kwargs)
        data_checks.check_validation_data(self, kwargs.get("validation_data"))
        if isinstance(x, (np.ndarray, tf.Tensor)):
            self.objective.observe_dataset_size(int(x.shape[0]) - validation_count(x, kwargs))
        self.objective.check_ready()
        step_count = data_checks.StepCount()
        callbacks = [*self._fit_callbacks(kwargs.pop("callbacks", None)), step_count]
        with data_checks.errors_as_value_errors(self.likelihood, self.condition, "fit"):
            history = super().fit(x, y, *args, callbacks=callbacks, **kwargs)
        step_count.check()  # a dataset of unknown size (e.g. filtered) may turn out empty
        warn_skipped_steps(history)
        return history

    def evaluate(self, x=None, y=None, *args, **kwargs):
        if not kwargs.get("_use_cached_eval_dataset"):  # fit's validation data: checked when fit began
            x, y = self._checked_fit_arguments(x, y, kwargs, entry="evaluate")
        with data_checks.errors_as_value_errors(self.likelihood, self.condition, "evaluate"):
            result = super().evaluate(x, y, *args, **kwargs)
        if isinstance(result, (list, dict)) and not result:
            raise ValueError(data_checks.empty_message("evaluate"))
        return result

    def predict(self, x, *args, **kwargs):
        x, _ = self._checked_fit_arguments(x, None, {}, entry="predict")
        with data_checks.errors_as_value_errors(self.likelihood, self.condition, "predict"):
            return super().predict(x, *args, **kwargs)

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """Keras' `Model.export` with the model's own input signature (`serving_signature`): images (and labels)
        -> reconstructions, as `predict` gives them. For TF Serving signatures of the decoder (sampling, scores)
        and TFLite files, use `keras_vae.export.export_model`."""
        input_signature = self.serving_signature() if input_signature is None else input_signature
        return super().export(filepath, format=format, verbose=verbose, input_signature=input_signature, **kwargs)

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
