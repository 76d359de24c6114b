"""Anomaly scores: how badly a trained VAE explains each input, in nats (higher = more anomalous).

- ``"elbo"``: the negative ELBO, averaged over ``num_samples`` posterior draws.
- ``"iwae"``: the importance-weighted negative log-likelihood estimate, ``-iwae_bound`` with
  ``num_samples`` importance samples (tighter, slower).

A threshold is a quantile of the scores of normal (training) data: inputs scoring above it are flagged.

Example:

>>> train_scores = anomaly_scores(vae, train_images, method="iwae", num_samples=100)
>>> threshold = score_threshold(train_scores, quantile=0.99)
>>> flagged = anomaly_scores(vae, new_images, method="iwae", num_samples=100) > threshold
"""

import numpy as np
import tensorflow as tf

from keras_vae import limits
from keras_vae.bounds import decode_bytes, iwae_bound
from keras_vae.limits import finite_float, integer_at_least
from keras_vae.latent import checked_images, label_batch
from keras_vae.progress import progress_bar

SCORE_METHODS = ("elbo", "iwae")
DEFAULT_NUM_SAMPLES = {"elbo": 10, "iwae": 100}


def anomaly_scores(model, images, method="elbo", num_samples=None, batch_size=128, seed=0, labels=None):
    """Per-example anomaly scores (nats), numpy ``[n]``.

    Args:
        model: a trained `VAE` (any variant).
        images: ``[n, H, W, C]`` in the model's data range.
        method: ``"elbo"`` (negative ELBO) or ``"iwae"`` (importance-weighted negative log-likelihood).
        num_samples: posterior / importance samples per example (default 10 for elbo, 100 for iwae).
        batch_size: examples scored at once; one decoded sample of each must fit
            `keras_vae.limits.MAX_CHUNK_BYTES` (the samples are decoded in chunks that fit it).
        seed: the same seed gives the same scores.
        labels: for conditional models, one label per image (or one for all).
    """
    if method not in SCORE_METHODS:
        raise ValueError(f"Unknown score method {method!r}; expected one of {list(SCORE_METHODS)}.")
    num_samples = DEFAULT_NUM_SAMPLES[method] if num_samples is None else num_samples
    num_samples = integer_at_least("num_samples", num_samples, 1)
    batch_size = integer_at_least("batch_size", batch_size, 1)
    seed = integer_at_least("seed", seed, 0)
    images = checked_images(model, images)
    if not len(images):
        raise ValueError("anomaly_scores needs at least one image, got 0.")
    labels = label_batch(model, labels, len(images))
    per_sample = decode_bytes(model)
    limits.check_size("batch_size", min(batch_size, len(images)), per_sample, "MAX_CHUNK_BYTES",
                      "one decoded sample of each image of a batch", "lower batch_size")
    scores = []
    bar = progress_bar(len(images), unit="image")
    for index, start in enumerate(range(0, len(images), batch_size)):
        chunk = images[start : start + batch_size]
        chunk_labels = None if labels is None else labels[start : start + batch_size]
        # Distinct noise for every batch, reproducible from the seed.
        batch_seed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0] % 2**31)
        if method == "iwae":
            log_px = iwae_bound(model, chunk, num_samples=num_samples, chunk_size=min(num_samples, 100),
                                seed=batch_seed, labels=chunk_labels)
            scores.append(-np.asarray(log_px))
        else:  # the samples in chunks that fit MAX_CHUNK_BYTES (one chunk, seed [batch_seed, 0], when they fit)
            step = max(1, limits.MAX_CHUNK_BYTES // (len(chunk) * per_sample))
            sums = [np.asarray(model.log_importance_weights(chunk, min(step, num_samples - done),
                                                            seed=tf.constant([batch_seed, part], tf.int32),
                                                            labels=chunk_labels)).sum(axis=0, dtype=np.float64)
                    for part, done in enumerate(range(0, num_samples, step))]
            scores.append((-np.sum(sums, axis=0) / num_samples).astype(np.float32))
        bar.add(len(chunk))
    scores = np.concatenate(scores)
    if not np.all(np.isfinite(scores)):
        raise ValueError("The model produced non-finite scores (NaN or Inf): is it trained and finite?")
    return scores


def score_threshold(scores, quantile=0.99):
    """The ``quantile`` of ``scores`` (e.g. training scores): the anomaly threshold."""
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 1 or not len(scores) or not np.all(np.isfinite(scores)):
        raise ValueError("Scores must be a non-empty 1-D array of finite numbers.")
    quantile = finite_float("quantile", quantile, above=0.0, high=1.0)
    if quantile == 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    return float(np.quantile(scores, quantile))
