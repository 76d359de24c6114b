"""Bounds on log p(x) for evaluation, and per-example refinement of their proposal.

Example:

>>> log_px = iwae_bound(vae, images, num_samples=5000, chunk_size=500, seed=0)   # [batch], nats
>>> refined = refine_posterior(vae, images, steps=200)                          # the model is unchanged
>>> tighter = iwae_bound(vae, images, num_samples=5000, parameters=refined)
"""

import math

import numpy as np
import tensorflow as tf

from keras_vae import limits
from keras_vae.limits import finite_float, int32_seed, integer_at_least


def iwae_bound(model, x, num_samples=5000, chunk_size=500, seed=0, parameters=None, labels=None):
    """Importance-weighted estimate of log p(x) per example (Burda et al. 2015), in nats.

    ``log (1/K) sum_k p(x, z_k) / q(z_k|x)`` with ``K = num_samples``; it is a lower bound on
    log p(x) that tightens as K grows (K=1 is the ELBO). Samples are drawn ``chunk_size`` at a time
    so memory stays bounded by ``chunk_size * batch`` decoded images whatever K is.

    Args:
        model: a `VAE` (any variant).
        x: images ``[batch, H, W, C]``.
        num_samples: K, the number of importance samples.
        chunk_size: samples decoded at once; lowered when ``chunk_size * batch`` decoded samples exceed
            `keras_vae.limits.MAX_CHUNK_BYTES` (and the examples bounded in parts when one sample each does).
        seed: integer; the same seed gives the same estimate.
        parameters: the proposal q(z|x) as ``model.posterior_parameters(x)`` gives it (e.g. from
            `refine_posterior`); by default the encoder's. Any proposal gives a bound on log p(x) of the same
            model: a closer one gives a tighter bound.
        labels: the labels of ``x`` for a conditional model.
    """
    num_samples = integer_at_least("num_samples", num_samples, 1)
    chunk_size = integer_at_least("chunk_size", chunk_size, 1)
    seed = int32_seed("seed", seed)
    batch, per_sample = _static_batch(x), decode_bytes(model)
    if batch is not None and batch * per_sample > limits.MAX_CHUNK_BYTES:
        # Even one sample of every example exceeds the chunk budget: the examples are bounded in parts.
        step = max(1, limits.MAX_CHUNK_BYTES // per_sample)
        parts = [iwae_bound(model, x[i:i + step], num_samples, chunk_size, seed, _rows(parameters, i, step),
                            labels[i:i + step] if _static_batch(labels) == batch else labels)
                 for i in range(0, batch, step)]
        return tf.concat(parts, 0)
    if batch:
        chunk_size = min(chunk_size, max(1, limits.MAX_CHUNK_BYTES // (batch * per_sample)))
    partial = []
    done = 0
    chunk_index = 0
    while done < num_samples:
        k = min(chunk_size, num_samples - done)
        chunk_seed = tf.constant([seed, chunk_index], tf.int32)
        log_w = model.log_importance_weights(x, k, seed=chunk_seed, labels=labels, parameters=parameters)
        partial.append(tf.reduce_logsumexp(log_w, axis=0))
        done += k
        chunk_index += 1
    return tf.reduce_logsumexp(tf.stack(partial), axis=0) - math.log(num_samples)


def decode_bytes(model):
    """Bytes one sample of one example costs while decoded (float32): the decoder's activations
    (`keras_vae.limits.activation_count`), its output and the log-likelihood's terms."""
    return 4 * (limits.activation_count(model.decoder) + 2 * math.prod(model.image_shape))


def _static_batch(x):
    """The number of examples of ``x`` when its shape says (None inside a graph traced for any batch)."""
    if x is None:
        return None
    shape = getattr(x, "shape", None)
    if shape is None:
        shape = np.shape(x)
    return None if not len(shape) or shape[0] is None else int(shape[0])


def _rows(parameters, start, count):
    """Rows ``start .. start + count`` of posterior parameters (a list of ``(loc, scale)``), or None."""
    return None if parameters is None else [(loc[start:start + count], scale[start:start + count])
                                            for loc, scale in parameters]


def refine_posterior(model, x, steps=200, learning_rate=0.01, num_samples=10, seed=0, labels=None):
    """Per-example posterior parameters moved uphill on the ``num_samples`` importance-weighted bound.

    Starts from the encoder's ``model.posterior_parameters(x)`` and takes ``steps`` Adam steps on each
    example's own locations and log scales, with the model's weights fixed (semi-amortized inference,
    Kim et al. 2018; the "amortization gap" of Cremer et al. 2018). An encoder that overfits its training
    images proposes poorly on new ones; the refined proposal makes `iwae_bound` of the *same model* tighter.

    Args:
        model: a `VAE` (any variant).
        x: images ``[batch, H, W, C]``.
        steps: Adam steps (0 returns the encoder's parameters).
        learning_rate: Adam's step size, in units of location and log scale.
        num_samples: importance samples of the bound that is maximized (fresh draws each step).
        seed: integer seed of those draws. They never coincide with `iwae_bound`'s draws for any seed, so a
            proposal refined here stays independent of the samples that then estimate the bound.
        labels: the labels of ``x`` for a conditional model.

    Returns:
        Parameters in the form ``model.posterior_parameters(x)`` has: a list of ``(loc, scale)`` pairs.

    Raises:
        ValueError: for a negative ``steps``, a non-positive ``learning_rate`` or ``num_samples``, or when the
            samples of one step exceed `keras_vae.limits.MAX_CHUNK_BYTES`.
    """
    steps = integer_at_least("steps", steps, 0)
    learning_rate = finite_float("learning_rate", learning_rate, above=0.0)
    num_samples = integer_at_least("num_samples", num_samples, 1)
    seed = int32_seed("seed", seed)
    batch = _static_batch(x)
    if batch:  # every step keeps its samples' activations for the gradient: no chunks
        limits.check_size("num_samples", num_samples, 2 * batch * decode_bytes(model), "MAX_CHUNK_BYTES",
                          f"decoded samples and their gradients for {batch} examples",
                          "refine fewer examples at once or with fewer samples")
    start = model.posterior_parameters(x, labels)
    if steps == 0:
        return start
    # Unconstrained: locations and log scales, flat so the loop carries one list of tensors.
    params = [tf.stop_gradient(t) for loc, scale in start for t in (loc, tf.math.log(scale))]
    lr, beta_1, beta_2, epsilon = float(learning_rate), 0.9, 0.999, 1e-7

    def as_parameters(flat):
        return [(flat[i], tf.exp(flat[i + 1])) for i in range(0, len(flat), 2)]

    # Adam written out over tensors, not keras.optimizers.Adam: that needs variables of a fixed shape,
    # and this runs inside the evaluation's tf.function for every batch size.
    def bound_of(flat, i):
        log_w = model.log_importance_weights(x, int(num_samples), seed=tf.stack([tf.constant(seed, tf.int32), -1 - i]),
                                             labels=labels, parameters=as_parameters(flat))
        return tf.reduce_logsumexp(log_w, axis=0)  # [batch]; up to a constant, the bound

    def step(i, flat, last_good, stopped, m, v):
        with tf.GradientTape() as tape:
            tape.watch(flat)
            bound = bound_of(flat, i)
            finite = tf.math.is_finite(bound)
            # Each example's bound depends on its own parameters only: the sum gives them their own gradients.
            total = tf.reduce_sum(tf.where(finite, bound, 0.0))
        grads = tape.gradient(total, flat)
        # Any proposal with a finite bound is a valid one: an example whose bound turns non-finite goes back
        # to its last parameters that had a finite bound, and stops there.
        stopped = tf.logical_or(stopped, tf.logical_not(finite))
        keep = stopped[:, tf.newaxis]
        flat = [tf.where(keep, g, p) for g, p in zip(last_good, flat)]
        t = tf.cast(i + 1, tf.float32)
        correction = tf.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t)
        m = [beta_1 * a + (1.0 - beta_1) * tf.where(keep, 0.0, g) for a, g in zip(m, grads)]
        v = [beta_2 * b + (1.0 - beta_2) * tf.square(tf.where(keep, 0.0, g)) for b, g in zip(v, grads)]
        updated = [tf.where(keep, p, p + lr * correction * a / (tf.sqrt(b) + epsilon)) for p, a, b in zip(flat, m, v)]
        return i + 1, updated, flat, stopped, m, v

    zeros = [tf.zeros_like(p) for p in params]
    batch = tf.shape(params[0])[:1]
    steps_done, params, last_good, _, _, _ = tf.while_loop(
        lambda i, *_: i < int(steps), step,
        (tf.constant(0), params, list(params), tf.zeros(batch, tf.bool), zeros, list(zeros)),
    )
    finite = tf.math.is_finite(bound_of(params, steps_done))[:, tf.newaxis]
    return as_parameters([tf.where(finite, p, g) for p, g in zip(params, last_good)])
