"""Bounds on log p(x) used for evaluation.

Example:

>>> log_px = iwae_bound(vae, images, num_samples=5000, chunk_size=500, seed=0)   # [batch], nats
"""

import math

import tensorflow as tf


def iwae_bound(model, x, num_samples=5000, chunk_size=500, seed=0):
    """Importance-weighted estimate of log p(x) per example (Burda et al. 2015), in nats.

    ``log (1/K) sum_k p(x, z_k) / q(z_k|x)`` with ``K = num_samples``; it is a lower bound on
    log p(x) that tightens as K grows (K=1 is the ELBO). Samples are drawn ``chunk_size`` at a time
    so memory stays bounded by ``chunk_size * batch`` decoded images whatever K is.

    Args:
        model: a `VAE` (anything with ``log_importance_weights(x, k, seed)``).
        x: images ``[batch, H, W, C]``.
        num_samples: K, the number of importance samples.
        chunk_size: samples decoded at once.
        seed: integer; the same seed gives the same estimate.
    """
    if int(num_samples) < 1 or int(chunk_size) < 1:
        raise ValueError(f"num_samples and chunk_size must be >= 1, got {num_samples}, {chunk_size}")
    partial = []
    done = 0
    chunk_index = 0
    while done < num_samples:
        k = min(chunk_size, num_samples - done)
        chunk_seed = tf.constant([seed, chunk_index], tf.int32)
        log_w = model.log_importance_weights(x, k, seed=chunk_seed)
        partial.append(tf.reduce_logsumexp(log_w, axis=0))
        done += k
        chunk_index += 1
    return tf.reduce_logsumexp(tf.stack(partial), axis=0) - math.log(num_samples)
