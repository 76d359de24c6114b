"""Training objectives: what a model minimizes, as objects any model takes (``VAE(..., objective=...)``).

Each objective turns the model's per-example ELBO terms (`VAE.elbo_terms`) into a ``loss`` and adds
metrics of its own. All are nats per example.

- `ELBO`: ``reconstruction + beta * KL`` with KL warm-up and free bits (beta > 1: the beta-VAE of
  Higgins et al. 2017).
- `CapacityELBO`: ``reconstruction + gamma * |KL - C|`` with the capacity C ramped linearly
  (Burgess et al. 2018).
- `TotalCorrelationELBO`: the KL split into index-code MI, total correlation and dimension-wise KL,
  weighted alpha / beta / gamma (beta-TCVAE, Chen et al. 2018).
- `ImportanceWeightedBound`: the K-sample importance-weighted bound (IWAE, Burda et al. 2015).

Example:

>>> vae = keras_vae.build_vae((64, 64, 1), 10, objective=TotalCorrelationELBO(beta=6.0, dataset_size=663552))
>>> get_objective("elbo").get_config()
{'beta': 1.0, 'kl_warmup_steps': 0, 'free_bits': 0.0}
"""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae import names
from keras_vae._lookup import resolve
from keras_vae.limits import finite_float, integer_at_least

tfd = tfp.distributions


class Objective:
    """Base class: ``terms(model, x, labels, training)`` -> per-example dict with ``loss`` and the model's terms.

    Hooks: ``metric_names`` (extra metrics the terms carry), `check` (refuse a model the objective cannot
    train, when the model is built), `observe_dataset_size` / `check_ready` (for objectives that need the
    number of training examples, which `fit` supplies when it knows it).
    """

    metric_names = ()
    name_key = None

    def terms(self, model, x, labels, training):
        raise NotImplementedError

    def check(self, model):
        """Raises a ValueError if ``model`` cannot be trained on this objective."""

    def observe_dataset_size(self, size):
        """Told the number of training examples when `fit` knows it."""

    def check_ready(self):
        """Raises a ValueError if something the objective needs is still missing when `fit` starts."""

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _warmup(model, kl_warmup_steps):
    """1 after ``kl_warmup_steps`` optimizer steps, rising linearly from 0 before (1 when there is no warm-up)."""
    if not kl_warmup_steps:
        return tf.constant(1.0)
    return tf.minimum(1.0, (model.optimizer_step() + 1.0) / float(kl_warmup_steps))


@keras.saving.register_keras_serializable(package="keras_vae")
class ELBO(Objective):
    """``reconstruction + beta * KL``: the negative ELBO for beta = 1.

    Args:
        beta: weight of the KL term (beta > 1 gives a beta-VAE).
        kl_warmup_steps: ramp the KL weight linearly from 0 to ``beta`` over this many optimizer steps.
        free_bits: minimum KL (nats) per latent dimension charged in the loss, per example; where a layer
            has no per-dimension KL it applies to the layer's total as ``free_bits * dims``.
    """

    name_key = "elbo"

    def __init__(self, beta=1.0, kl_warmup_steps=0, free_bits=0.0):
        self.beta = finite_float("beta", beta, low=0.0)
        self.kl_warmup_steps = integer_at_least("kl_warmup_steps", kl_warmup_steps)
        self.free_bits = finite_float("free_bits", free_bits, low=0.0)

    def charged_kl(self, layers):
        """The KL the loss charges: each layer's, with free bits applied."""
        if not self.free_bits:
            return tf.add_n([layer.kl for layer in layers])
        charged = []
        for layer in layers:
            if layer.kl_per_dim is not None:
                charged.append(tf.reduce_sum(tf.maximum(layer.kl_per_dim, self.free_bits), axis=-1))
            else:
                charged.append(tf.maximum(layer.kl, self.free_bits * int(layer.z.shape[-1])))
        return tf.add_n(charged)

    def terms(self, model, x, labels, training):
        terms, layers = model.elbo_terms(x, labels, training=training)
        beta = self.beta * _warmup(model, self.kl_warmup_steps)
        return {**terms, "loss": terms["reconstruction"] + beta * self.charged_kl(layers)}

    def get_config(self):
        return {"beta": self.beta, "kl_warmup_steps": self.kl_warmup_steps, "free_bits": self.free_bits}


@keras.saving.register_keras_serializable(package="keras_vae")
class CapacityELBO(Objective):
    """``reconstruction + gamma * |KL - C|`` with the target capacity C (nats) rising linearly from 0 to
    ``capacity_max`` over ``capacity_steps`` optimizer steps: the KL is pushed towards C rather than to 0,
    so latent dimensions switch on one at a time as C grows (Burgess et al. 2018). Metrics add ``capacity``.
    """

    metric_names = ("capacity",)
    name_key = "capacity"

    def __init__(self, capacity_max=25.0, capacity_steps=100_000, gamma=1000.0):
        self.capacity_max = finite_float("capacity_max", capacity_max, low=0.0)
        self.capacity_steps = integer_at_least("capacity_steps", capacity_steps, 1)
        self.gamma = finite_float("gamma", gamma, low=0.0)

    def capacity(self, model):
        """The target KL C at the model's current optimizer step."""
        return self.capacity_max * tf.minimum(1.0, model.optimizer_step() / float(self.capacity_steps))

    def terms(self, model, x, labels, training):
        terms, _ = model.elbo_terms(x, labels, training=training)
        capacity = self.capacity(model)
        loss = terms["reconstruction"] + self.gamma * tf.abs(terms["kl"] - capacity)
        return {**terms, "loss": loss, "capacity": tf.fill(tf.shape(loss), capacity)}

    def get_config(self):
        return {"capacity_max": self.capacity_max, "capacity_steps": self.capacity_steps, "gamma": self.gamma}


def total_correlation_terms(z, loc, scale, log_prior, dataset_size):
    """Per-example minibatch-weighted-sampling estimates ``{"mi", "tc", "dim_kl"}`` (nats, each ``[batch]``).

    ``log q(z_i) ~ logsumexp_j log q(z_i | x_j) - log(N * M)`` with N = ``dataset_size`` and M the batch
    size, and the same per dimension for ``q(z_j)``. N only shifts the three terms by constants (not the
    gradients). With N much larger than M the values are strongly biased (``mi`` is close to
    ``log(N * M)``): compare them between runs of one setup, not as absolute nats.

    Args:
        z: posterior samples ``[M, d]``, z_i ~ q(z | x_i).
        loc, scale: the diagonal Gaussian posteriors of the same minibatch, ``[M, d]``.
        log_prior: ``log p(z_i)``, ``[M]``.
        dataset_size: N, the number of training examples.
    """
    log_q_pairs = tfd.Normal(loc[tf.newaxis], scale[tf.newaxis]).log_prob(z[:, tf.newaxis])  # [M(i), M(j), d]
    # max(M, 1): a replica's empty final batch has no pairs, and log(0) would make its (empty) terms NaN.
    batch = tf.maximum(tf.cast(tf.shape(z)[0], tf.float32), 1.0)
    log_nm = tf.math.log(batch) + math.log(dataset_size)
    log_q_z_given_x = tf.reduce_sum(tfd.Normal(loc, scale).log_prob(z), axis=1)
    log_q_z = tf.reduce_logsumexp(tf.reduce_sum(log_q_pairs, axis=2), axis=1) - log_nm
    log_prod_q_zj = tf.reduce_sum(tf.reduce_logsumexp(log_q_pairs, axis=1) - log_nm, axis=1)
    return {"mi": log_q_z_given_x - log_q_z, "tc": log_q_z - log_prod_q_zj, "dim_kl": log_prod_q_zj - log_prior}


@keras.saving.register_keras_serializable(package="keras_vae")
class TotalCorrelationELBO(Objective):
    """beta-TCVAE (Chen et al. 2018): ``reconstruction + alpha * MI + beta * TC + gamma * dim-wise KL``.

    ``alpha = beta = gamma = 1`` gives back the plain ELBO. q(z) is estimated on each minibatch by
    minibatch-weighted sampling (`total_correlation_terms`); under a tf.distribute strategy over each
    replica's local batch. Needs a diagonal Gaussian posterior and one stochastic layer.

    Args:
        beta: weight of the total correlation (Chen et al. use 6 on dSprites).
        alpha: weight of the index-code mutual information.
        gamma: weight of the dimension-wise KL.
        dataset_size: N, the number of training examples; `fit` on arrays fills it in when None.
        kl_warmup_steps: ramps all three weights together from 0.

    Metrics add ``mi``, ``tc`` and ``dim_kl``; ``kl`` stays KL(q(z|x) || p(z)).
    """

    metric_names = ("mi", "tc", "dim_kl")
    name_key = "total_correlation"

    def __init__(self, beta=6.0, alpha=1.0, gamma=1.0, dataset_size=None, kl_warmup_steps=0):
        self.beta = finite_float("beta", beta, low=0.0)
        self.alpha = finite_float("alpha", alpha, low=0.0)
        self.gamma = finite_float("gamma", gamma, low=0.0)
        self.dataset_size = None if dataset_size is None else integer_at_least("dataset_size", dataset_size, 1)
        self.kl_warmup_steps = integer_at_least("kl_warmup_steps", kl_warmup_steps)

    def check(self, model):
        if not model.posterior.diagonal_gaussian or len(model.latent_dims) != 1:
            raise ValueError("TotalCorrelationELBO needs one stochastic layer with a diagonal Gaussian posterior "
                             f"(its estimator uses the Gaussian's density); {type(model).__name__} with "
                             f"{type(model.posterior).__name__} has another.")

    def observe_dataset_size(self, size):
        if self.dataset_size is None and size > 0:
            self.dataset_size = int(size)

    def check_ready(self):
        if self.dataset_size is None:
            raise ValueError("beta-TCVAE needs dataset_size, the number of training examples, for its estimate of "
                             "q(z): pass dataset_size= to build_vae, or fit on arrays (their length is used).")

    def terms(self, model, x, labels, training):
        self.check_ready()
        terms, layers = model.elbo_terms(x, labels, training=training)
        top = layers[-1]
        parts = total_correlation_terms(top.z, top.q.mean(), top.q.stddev(), top.log_p, self.dataset_size)
        penalty = self.alpha * parts["mi"] + self.beta * parts["tc"] + self.gamma * parts["dim_kl"]
        loss = terms["reconstruction"] + _warmup(model, self.kl_warmup_steps) * penalty
        return {**terms, **parts, "loss": loss}

    def get_config(self):
        return {"beta": self.beta, "alpha": self.alpha, "gamma": self.gamma, "dataset_size": self.dataset_size,
                "kl_warmup_steps": self.kl_warmup_steps}


@keras.saving.register_keras_serializable(package="keras_vae")
class ImportanceWeightedBound(Objective):
    """The negative K-sample importance-weighted bound, ``-log (1/K) sum_k p(x, z_k) / q(z_k|x)`` (IWAE).

    It is tighter than the ELBO (K = 1) and trains the encoder as a proposal for it. The ELBO metrics come
    from the first of the K draws, so they cost no second pass.

    Args:
        num_samples: K (>= 2).
    """

    name_key = "importance_weighted"

    def __init__(self, num_samples=5):
        self.num_samples = integer_at_least("num_samples", num_samples, 2)

    def terms(self, model, x, labels, training):
        k = self.num_samples
        draw = model.draw(x, labels, num_samples=k, training=training)
        log_w = draw.log_px_z + tf.add_n([layer.log_p - layer.log_q for layer in draw.layers])
        batch = tf.shape(log_w)[0] // k  # sample-major: rows [0, batch) are the first draw
        terms = model.terms_of(draw, batch)
        terms["loss"] = math.log(k) - tf.reduce_logsumexp(tf.reshape(log_w, [k, batch]), axis=0)
        return terms

    def get_config(self):
        return {"num_samples": self.num_samples}


OBJECTIVES = names.registry("objective", names.OBJECTIVES, (ELBO, CapacityELBO, TotalCorrelationELBO, ImportanceWeightedBound))


def get_objective(identifier):
    """An objective from a name (``"elbo"``, ``"capacity"``, ``"total_correlation"``, ``"importance_weighted"``),
    a config dict (as `keras.saving.serialize_keras_object` writes it) or an `Objective`."""
    return resolve(identifier, OBJECTIVES, "objective", Objective)
