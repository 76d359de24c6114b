"""Bounds on log p(x) for evaluation, and per-example refinement of their proposal.

Example:

>>> log_px = iwae_bound(vae, images, num_samples=5000, chunk_size=500, seed=0)   # [batch], nats
>>> refined = refine_posterior(vae, images, steps=200)                          # the model is unchanged
>>> tighter = iwae_bound(vae, images, num_samples=5000, parameters=refined)
"""

import math

import tensorflow as tf


def iwae_bound(model, x, num_samples=5000, chunk_size=500, seed=0, parameters=None, labels=None):
    """Importance-weighted estimate of log p(x) per example (Burda et al. 2015), in nats.

    ``log (1/K) sum_k p(x, z_k) / q(z_k|x)`` with ``K = num_samples``; it is a lower bound on
    log p(x) that tightens as K grows (K=1 is the ELBO). Samples are drawn ``chunk_size`` at a time
    so memory stays bounded by ``chunk_size * batch`` decoded images whatever K is.

    Args:
        model: a `VAE` (any variant).
        x: images ``[batch, H, W, C]``.
        num_samples: K, the number of importance samples.
        chunk_size: samples decoded at once.
        seed: integer; the same seed gives the same estimate.
        parameters: the proposal q(z|x) as ``model.posterior_parameters(x)`` gives it (e.g. from
            `refine_posterior`); by default the encoder's. Any proposal gives a bound on log p(x) of the same
            model: a closer one gives a tighter bound.
        labels: the labels of ``x`` for a conditional model.
    """
    if int(num_samples) < 1 or int(chunk_size) < 1:
        raise ValueError(f"num_samples and chunk_size must be >= 1, got {num_samples}, {chunk_size}")
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
        ValueError: for a negative ``steps``, a non-positive ``learning_rate`` or ``num_samples``.
    """
    if int(steps) < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if not float(learning_rate) > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    start = model.posterior_parameters(x, labels)
    if int(steps) == 0:
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
