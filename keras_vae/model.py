"""The variational autoencoder: a subclassed `keras.Model` with its own `train_step` / `test_step`.

Example:

>>> vae = keras_vae.build_vae((28, 28, 1), latent_dim=16, architecture="mlp")
>>> vae.compile(optimizer=keras.optimizers.Adam(1e-3))
>>> vae.fit(images, epochs=1, batch_size=64)          # images: float32 in [0, 1], (N, 28, 28, 1)
>>> vae.sample(16, seed=0).shape
TensorShape([16, 28, 28, 1])
"""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.likelihoods import get_likelihood
from keras_vae.posteriors import GaussianPosterior
from keras_vae.priors import get_prior

tfd = tfp.distributions

METRIC_NAMES = ("loss", "reconstruction", "kl", "elbo")


def _deserialize(obj):
    return keras.saving.deserialize_keras_object(obj) if isinstance(obj, dict) else obj


def _shape_str(shape):
    return "(" + ", ".join("batch" if d is None else str(d) for d in shape) + ")"


def _checked_shape(x, item_shape, what):
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


def check_built_networks(encoder, decoder):
    """Both networks must be built Keras models, so their shapes are known up front."""
    for role, net in (("encoder", encoder), ("decoder", decoder)):
        if not isinstance(net, keras.Model) or not net.built:
            raise ValueError(f"The {role} must be a built keras.Model (give it a keras.Input); got {net!r}.")


@keras.saving.register_keras_serializable(package="keras_vae")
class VAE(keras.Model):
    """A VAE trained by maximizing the ELBO, log p(x|z) - beta * KL(q(z|x) || p(z)).

    Args:
        encoder: a built Keras model, images ``(batch, H, W, C)`` -> ``(batch, 2 * latent_dim)``.
        decoder: a built Keras model, codes ``(batch, latent_dim)`` -> likelihood parameters ``(batch, H, W, C)``.
        latent_dim: size of the latent code.
        likelihood: ``"bernoulli"`` (logits; binary or [0, 1] data), ``"gaussian"`` or a likelihood layer.
        prior: ``"standard_normal"``, ``"mixture"`` (learnable mixture of Gaussians), ``"vamp"`` (`VampPrior`)
            or a prior layer.
        posterior: the posterior layer (default `GaussianPosterior`).
        beta: weight of the KL term (beta > 1 gives a beta-VAE).
        kl_warmup_steps: ramp the KL weight linearly from 0 to ``beta`` over this many optimizer steps.
        free_bits: minimum KL (nats) per latent dimension charged in the loss, per example; with a
            non-factorized prior it applies to the total KL as ``free_bits * latent_dim``.
        seed: seed for the posterior noise drawn in training.
        iw_train_samples: K > 1 trains on the importance-weighted bound with K samples (IWAE, Burda et al.
            2015) instead of the ELBO: ``loss`` is then -log (1/K) sum_k p(x, z_k) / q(z_k|x) in training and
            validation (beta, KL warm-up and free bits do not enter it); the other metrics stay ELBO terms.

    Data for `fit` / `evaluate`: images, or ``(images, anything)`` tuples (the rest is ignored).
    The metrics are nats per example: ``reconstruction`` = E_q[-log p(x|z)], ``kl``, ``elbo`` =
    -(reconstruction + kl) (at most 0 for binary data), and ``loss``, the objective that is minimized
    (reconstruction + current beta * KL after free bits).
    """

    # Conditional variants set this and take labels in decode/sample (see keras_vae.variants).
    conditional = False

    def __init__(
        self,
        encoder,
        decoder,
        latent_dim,
        likelihood="bernoulli",
        prior="standard_normal",
        posterior=None,
        beta=1.0,
        kl_warmup_steps=0,
        free_bits=0.0,
        seed=None,
        iw_train_samples=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.encoder = _deserialize(encoder)
        self.decoder = _deserialize(decoder)
        self.latent_dim = int(latent_dim)
        self.likelihood = get_likelihood(likelihood)
        self.prior = get_prior(prior)
        self.posterior = _deserialize(posterior) if posterior is not None else GaussianPosterior()
        if float(beta) < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if int(kl_warmup_steps) < 0 or float(free_bits) < 0:
            raise ValueError(f"kl_warmup_steps and free_bits must be >= 0, got {kl_warmup_steps}, {free_bits}")
        if int(iw_train_samples) < 1:
            raise ValueError(f"iw_train_samples must be >= 1, got {iw_train_samples}")
        self.iw_train_samples = int(iw_train_samples)
        self.beta = float(beta)
        self.kl_warmup_steps = int(kl_warmup_steps)
        self.free_bits = float(free_bits)
        self.seed = seed
        self._check_networks()
        self.image_shape = tuple(self.encoder.inputs[0].shape[1:])  # conditional encoders: images come first
        if hasattr(self.prior, "bind_encoder"):  # a VampPrior's components are this model's posteriors
            if self.conditional:
                raise ValueError(
                    f"{type(self.prior).__name__} needs an unconditional model; {type(self).__name__} is conditional."
                )
            self.prior.bind_encoder(self.image_shape, self.encode)
        if not self.prior.built:
            self.prior.build((None, self.latent_dim))
        if not self.likelihood.built:
            self.likelihood.build((None, *self.image_shape))
        if not self.posterior.built:
            # With every layer built, Keras never traces `call` to build the model under a strategy.
            self.posterior.build((None, 2 * self.latent_dim))
        self.seed_generator = keras.random.SeedGenerator(seed, name="posterior_noise")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in METRIC_NAMES}
        self.built = True  # every weight exists now: saving, loading and strategies need no build call

    def _check_networks(self):
        check_built_networks(self.encoder, self.decoder)
        enc_in, enc_out = tuple(self.encoder.input_shape), tuple(self.encoder.output_shape)
        dec_in, dec_out = tuple(self.decoder.input_shape), tuple(self.decoder.output_shape)
        if len(enc_in) != 4:
            raise ValueError(f"The encoder must take images (batch, H, W, C); its input shape is {_shape_str(enc_in)}.")
        if enc_out[1:] != (2 * self.latent_dim,):
            raise ValueError(
                f"The encoder must output (batch, {2 * self.latent_dim}) = 2 * latent_dim posterior parameters; "
                f"it outputs {_shape_str(enc_out)}."
            )
        if dec_in[1:] != (self.latent_dim,):
            raise ValueError(f"The decoder must take (batch, {self.latent_dim}) codes; it takes {_shape_str(dec_in)}.")
        if dec_out[1:] != enc_in[1:]:
            raise ValueError(
                f"The decoder output {_shape_str(dec_out)} must match the encoder input {_shape_str(enc_in)}."
            )

    # ----------------------------------------------------------------- input checks
    def _check_images(self, x):
        x = tf.convert_to_tensor(x) if not isinstance(x, (tf.Tensor, tf.Variable)) else x
        if not (x.dtype.is_floating or x.dtype.is_integer or x.dtype == tf.bool):
            raise ValueError(f"Expected numeric images, got dtype {x.dtype.name}.")
        return tf.cast(_checked_shape(x, self.image_shape, "images"), tf.float32)

    def _check_codes(self, z):
        z = tf.convert_to_tensor(z) if not isinstance(z, (tf.Tensor, tf.Variable)) else z
        if not z.dtype.is_floating:
            raise ValueError(f"Expected floating-point latent codes, got dtype {z.dtype.name}.")
        return tf.cast(_checked_shape(z, (self.latent_dim,), "latent codes"), tf.float32)

    @staticmethod
    def images_from(data):
        """The images in a batch from `fit`: ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``."""
        if isinstance(data, (tuple, list)):
            return data[0]
        if isinstance(data, dict):
            if "image" not in data:
                raise ValueError(f"A dict batch must hold the images under 'image'; it has keys {sorted(data)}.")
            return data["image"]
        return data

    # ----------------------------------------------------------------- distributions
    def encode(self, x, training=False):
        """Returns the posterior q(z|x) as a tfp `MultivariateNormalDiag` with batch shape ``[batch]``."""
        return self.posterior_from(self.posterior_parameters(x, training=training))

    def posterior_parameters(self, x, training=False):
        """The encoder's posterior parameters for ``x``: a list of ``(loc, scale)`` pairs, ``[batch, d]`` each.

        One pair per stochastic layer, bottom first (one for this model). They are what
        `log_importance_weights` samples from unless it is given others, e.g. refined per example by
        `keras_vae.refine_posterior`.
        """
        x = self._check_images(x)
        return [self.posterior.parameters_from(self.encoder(x, training=training))]

    def posterior_from(self, parameters):
        """q(z|x) of the top layer from `posterior_parameters`."""
        loc, scale = parameters[-1]
        return tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)

    def decoder_output(self, z, training=False):
        """Raw decoder output (likelihood parameters: logits or means) for codes z."""
        return self.decoder(self._check_codes(z), training=training)

    def decode(self, z):
        """Likelihood mean in data space for codes ``z``: pixel probabilities for Bernoulli, means for Gaussian."""
        return self.likelihood.mean(self.decoder_output(z))

    def reconstruct(self, x):
        """Decodes the posterior mean of each input."""
        return self.decode(self.encode(x).mean())

    def sample(self, num_samples, temperature=1.0, seed=None):
        """Draws codes from the prior (scaled by ``temperature``) and returns their decoded means."""
        return self.decode(self.sample_prior(num_samples, temperature=temperature, seed=seed))

    def sample_prior(self, num_samples, temperature=1.0, seed=None):
        """Codes ``[num_samples, latent_dim]`` from the prior; ``temperature`` scales the spread."""
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if not float(temperature) > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        seed = keras.random.SeedGenerator(seed).next() if seed is not None else self.seed_generator.next()
        return self.prior.sample(int(num_samples), temperature=float(temperature), seed=tf.cast(seed, tf.int32))

    def current_beta(self):
        """The KL weight at the current optimizer step (ramped when ``kl_warmup_steps`` > 0)."""
        beta = tf.constant(self.beta, tf.float32)
        if self.kl_warmup_steps and getattr(self, "optimizer", None) is not None:
            step = tf.cast(self.optimizer.iterations + 1, tf.float32)
            beta = beta * tf.minimum(1.0, step / float(self.kl_warmup_steps))
        return beta

    def noise_seed(self):
        """A fresh stateless seed for this step, distinct on every replica of a tf.distribute strategy."""
        seed = tf.cast(self.seed_generator.next(), tf.int32)
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            seed = tf.random.experimental.stateless_fold_in(seed, ctx.replica_id_in_sync_group)
        return seed

    def sample_posterior(self, posterior):
        """One reparameterized draw z ~ q(z|x) per example."""
        return posterior.sample(seed=self.noise_seed())

    def kl_divergence(self, posterior, z):
        """Per-example KL(q(z|x) || p(z)): analytic when tfp has it, else the Monte Carlo estimate at ``z``."""
        if getattr(self.prior, "factorized", False):  # mixtures never have a closed form
            try:
                return tfd.kl_divergence(posterior, self.prior.distribution())
            except NotImplementedError:  # e.g. a flow posterior
                pass
        return posterior.log_prob(z) - self.prior.log_prob(z)

    def kl_per_dimension(self, posterior):
        """Per-example, per-dimension KL ``[batch, latent_dim]``; needs a factorized prior."""
        if not getattr(self.prior, "factorized", False):
            raise ValueError(f"A per-dimension KL needs a factorized prior; {type(self.prior).__name__} is not.")
        q = tfd.Normal(loc=posterior.mean(), scale=posterior.stddev())
        return tfd.kl_divergence(q, self.prior.marginal())

    def _kl_charged(self, posterior, kl):
        if not self.free_bits:
            return kl
        if getattr(self.prior, "factorized", False):
            return tf.reduce_sum(tf.maximum(self.kl_per_dimension(posterior), self.free_bits), axis=-1)
        return tf.maximum(kl, self.free_bits * self.latent_dim)

    def elbo_parts(self, x, training=False):
        """The posterior, one draw z from it, and the per-example ``-log p(x|z)`` and KL."""
        posterior = self.encode(x, training=training)
        z = self.sample_posterior(posterior)
        reconstruction = -self.likelihood.log_prob(tf.cast(x, tf.float32), self.decoder(z, training=training))
        return posterior, z, reconstruction, self.kl_divergence(posterior, z)

    def compute_terms(self, x, training=False):
        """Per-example objective terms, each ``[batch]`` in nats: loss, reconstruction, kl, elbo."""
        posterior, _, reconstruction, kl = self.elbo_parts(x, training=training)
        loss = reconstruction + self.current_beta() * self._kl_charged(posterior, kl)
        return {"loss": loss, "reconstruction": reconstruction, "kl": kl, "elbo": -(reconstruction + kl)}

    def log_importance_weights(self, x, num_samples, seed=None, training=False, parameters=None):
        """``log p(x|z_k) + log p(z_k) - log q(z_k|x)`` for k samples: ``[num_samples, batch]``.

        ``parameters`` (as from `posterior_parameters`) replaces the encoder's proposal q(z|x).
        """
        if parameters is None:
            parameters = self.posterior_parameters(x, training=training)
        posterior = self.posterior_from(parameters)
        x = tf.cast(self._check_images(x), tf.float32)
        seed = self.noise_seed() if seed is None else seed
        z = posterior.sample(num_samples, seed=seed)  # [k, batch, d]
        batch = tf.shape(z)[1]
        logits = self.decoder(tf.reshape(z, [-1, self.latent_dim]), training=training)
        logits = tf.reshape(logits, tf.concat([[num_samples, batch], tf.shape(logits)[1:]], 0))
        log_px_z = self.likelihood.log_prob(x[tf.newaxis], logits)
        return log_px_z + self.prior.log_prob(z) - posterior.log_prob(z)

    # ----------------------------------------------------------------- Keras plumbing
    def _check_data(self, x):
        """Checks the image shape of `fit`/`evaluate` data up front, so the error is a ValueError."""
        if isinstance(x, tf.data.Dataset):
            spec = self.images_from(x.element_spec)
            shape = tuple(spec.shape) if spec.shape.rank is not None else None
        elif hasattr(x, "shape") and hasattr(x, "dtype"):
            shape = tuple(x.shape)
        else:
            return  # generators and PyDatasets are checked when the step is traced or run
        if shape is not None:
            _checked_shape(tf.TensorSpec(shape), self.image_shape, "images")

    def fit(self, x=None, *args, **kwargs):
        self._check_data(x)
        return super().fit(x, *args, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        self._check_data(x)
        return super().evaluate(x, *args, **kwargs)

    def call(self, x, training=False):
        """Returns posterior parameters and the decoder output at the posterior mean (all tensors)."""
        x = self._check_images(x)
        loc, scale = self.posterior.parameters_from(self.encoder(x, training=training))
        return {"loc": loc, "scale": scale, "decoder_output": self.decoder(loc, training=training)}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _update_metrics(self, terms, weight=None):
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name], sample_weight=weight)
        return {m.name: m.result() for m in self.metrics}

    def _total_loss(self, terms):
        # Sum over the local batch divided by the *global* batch size: Keras sums gradients
        # across replicas, so this yields the mean gradient on any number of replicas.
        loss = tf.nn.compute_average_loss(terms["loss"])
        if self.losses:
            loss += tf.nn.scale_regularization_loss(tf.add_n(self.losses))
        return loss

    def _objective_terms(self, x, training):
        terms = self.compute_terms(x, training=training)
        if self.iw_train_samples > 1:
            log_w = self.log_importance_weights(x, self.iw_train_samples, training=training)
            terms["loss"] = math.log(self.iw_train_samples) - tf.reduce_logsumexp(log_w, axis=0)
        return terms

    def train_step(self, data):
        x = self.images_from(data)
        with tf.GradientTape() as tape:
            terms = self._objective_terms(x, training=True)
            loss = self._total_loss(terms)
            scaled_loss = self.optimizer.scale_loss(loss)  # loss scaling under mixed_float16
        grads = tape.gradient(scaled_loss, self.trainable_weights)
        weight = None
        if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):  # it skips non-finite steps
            grads, terms, weight = _skip_nonfinite_everywhere(grads, terms)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        return self._update_metrics(terms, weight)

    def test_step(self, data):
        return self._update_metrics(self._objective_terms(self.images_from(data), training=False))

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "latent_dim": self.latent_dim,
            "likelihood": keras.saving.serialize_keras_object(self.likelihood),
            "prior": keras.saving.serialize_keras_object(self.prior),
            "posterior": keras.saving.serialize_keras_object(self.posterior),
            "beta": self.beta,
            "kl_warmup_steps": self.kl_warmup_steps,
            "free_bits": self.free_bits,
            "seed": self.seed,
            "iw_train_samples": self.iw_train_samples,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _skip_nonfinite_everywhere(grads, terms):
    """Makes a LossScaleOptimizer's skip of a non-finite step global, and keeps the step out of the metrics.

    The optimizer tests the gradients of the first replica only (before the all-reduce), so a NaN on
    another replica would reach every replica's weights through the sum. A non-finite loss or gradient on
    any replica turns all gradients to NaN (every replica skips), and the step's terms get weight 0.
    """
    local_finite = tf.reduce_all(
        [tf.reduce_all(tf.math.is_finite(t)) for t in [*terms.values(), *grads] if t is not None]
    )
    num_bad = 1.0 - tf.cast(local_finite, tf.float32)
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and ctx.num_replicas_in_sync > 1:
        num_bad = ctx.all_reduce(tf.distribute.ReduceOp.SUM, num_bad)
    finite = tf.equal(num_bad, 0.0)
    grads = [g if g is None else tf.where(finite, g, tf.constant(float("nan"), g.dtype)) for g in grads]
    terms = {k: tf.where(finite, v, tf.zeros_like(v)) for k, v in terms.items()}
    return grads, terms, tf.cast(finite, tf.float32)
