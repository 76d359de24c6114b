"""Sample quality: how close generated images are to real ones, in the feature space of a domain network.

- `frechet_distance`: the Fréchet distance between Gaussians fitted to two feature sets (as FID, Heusel et
  al. 2017, but with a small domain network instead of Inception: no pretrained weights to download).
- `precision_recall`: improved precision and recall (Kynkäänniemi et al. 2019): the share of generated
  samples inside the real manifold (k-NN balls around real features) and of real samples inside the
  generated one. A collapsed generator keeps precision and loses recall; noise loses precision.
- `feature_network`: the small convolutional classifier whose penultimate layer gives the features
  (`keras_vae.training.feature_networks` trains and caches one per dataset).

Example:

>>> extractor = feature_extractor(network)                 # images -> features
>>> sample_quality(extractor, held_out_images, vae.sample(1000, sampler="gmm", seed=0))
{'frechet_distance': 3.1, 'precision': 0.82, 'recall': 0.64}
"""

import keras
import numpy as np

from keras_vae import limits
from keras_vae.limits import integer_at_least

FEATURES_LAYER = "features"
NEAREST_NEIGHBOURS = 3  # k of Kynkäänniemi et al.
_CHUNK = 1024  # rows of a pairwise-distance block at most (memory: chunk x n floats)


def _checked_features(features, what):
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"{what} must have shape (n >= 2, dims), got {features.shape}.")
    if not np.all(np.isfinite(features)):
        raise ValueError(f"{what} contain NaN or Inf.")
    return features


def _sqrtm_trace(a, b):
    """``tr sqrt(A B)`` for symmetric PSD A, B, as ``tr sqrt(A^1/2 B A^1/2)`` (symmetric: eigh is stable)."""
    values, vectors = np.linalg.eigh(a)
    root = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    inner = np.linalg.eigvalsh(root @ b @ root)
    return float(np.sum(np.sqrt(np.clip(inner, 0, None))))


def frechet_distance(features_a, features_b):
    """``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2)`` of two feature sets ``[n, d]``, ``[m, d]``.

    >>> frechet_distance(np.random.randn(5000, 4), np.random.randn(5000, 4) + 1.0)   # about 4 (= |mu|^2)
    """
    a = _checked_features(features_a, "features_a")
    b = _checked_features(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"Feature sets of different widths: {a.shape[1]} and {b.shape[1]}.")
    cov_a, cov_b = np.cov(a, rowvar=False).reshape(a.shape[1], -1), np.cov(b, rowvar=False).reshape(b.shape[1], -1)
    mean_term = float(np.sum((a.mean(0) - b.mean(0)) ** 2))
    return max(0.0, mean_term + float(np.trace(cov_a) + np.trace(cov_b)) - 2.0 * _sqrtm_trace(cov_a, cov_b))


def _squared_distances(a, b):
    """Pairwise squared Euclidean distances ``[len(a), len(b)]`` (clipped at 0 against rounding)."""
    return np.clip(np.sum(a**2, 1)[:, None] + np.sum(b**2, 1)[None, :] - 2.0 * a @ b.T, 0, None)


def _knn_radii(features, k):
    """Squared distance of each row to its k-th nearest other row."""
    radii = np.empty(len(features))
    step = _block_rows(len(features))
    for start in range(0, len(features), step):
        block = _squared_distances(features[start:start + step], features)
        radii[start:start + step] = np.partition(block, k, axis=1)[:, k]  # column 0 is the row itself
    return radii


def _block_rows(columns):
    """Rows of a pairwise-distance block against ``columns`` points: `_CHUNK`, fewer when its float64
    temporaries (about four of the block's size) would exceed `keras_vae.limits.MAX_CHUNK_BYTES`."""
    return max(1, min(_CHUNK, limits.MAX_CHUNK_BYTES // (32 * columns)))


def _coverage(points, centres, radii):
    """Share of ``points`` inside at least one ball (``centres``, squared ``radii``)."""
    inside = np.zeros(len(points), bool)
    step = _block_rows(len(centres))
    for start in range(0, len(points), step):
        block = _squared_distances(points[start:start + step], centres)
        inside[start:start + step] = np.any(block <= radii[None, :], axis=1)
    return float(inside.mean())


def precision_recall(real_features, generated_features, k=NEAREST_NEIGHBOURS):
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls; returns ``(precision, recall)``.

    >>> precision_recall(real, real[:1].repeat(len(real), 0))   # collapsed: (high, about 1/n)
    """
    k = integer_at_least("k", k, 1)
    real = _checked_features(real_features, "real_features")
    generated = _checked_features(generated_features, "generated_features")
    if min(len(real), len(generated)) <= k:
        raise ValueError(f"precision_recall needs more than k={k} real and generated samples.")
    precision = _coverage(generated, real, _knn_radii(real, k))
    recall = _coverage(real, generated, _knn_radii(generated, k))
    return precision, recall


def feature_network(image_shape, heads, filters=(32, 64, 128), feature_units=128, name="feature_network"):
    """A small conv classifier: images -> ``{head: logits}``; its ``"features"`` layer gives the features.

    ``heads`` maps each output to its number of classes, e.g. ``{"digit": 10}`` or one head per sprite factor;
    each of ``filters`` is a 3x3 convolution of stride 2.

    >>> net = feature_network((28, 28, 1), {"digit": 10})
    """
    images = keras.Input(shape=tuple(int(d) for d in image_shape), name="images")
    h = images
    for f in filters:
        h = keras.layers.Conv2D(f, 3, strides=2, padding="same", activation="relu")(h)
    h = keras.layers.Flatten()(h)
    features = keras.layers.Dense(feature_units, activation="relu", name=FEATURES_LAYER)(h)
    outputs = {head: keras.layers.Dense(int(n), name=head)(features) for head, n in heads.items()}
    return keras.Model(images, outputs, name=name)


def feature_extractor(network):
    """The model ``images -> features`` of a `feature_network` (its ``"features"`` layer)."""
    return keras.Model(network.input, network.get_layer(FEATURES_LAYER).output, name=f"{network.name}_features")


def extract_features(extractor, images, batch_size=256):
    """Features ``[n, F]`` (numpy float64) of images ``[n, H, W, C]``, ``batch_size`` at a time."""
    batch_size = integer_at_least("batch_size", batch_size, 1)
    images = np.asarray(images, np.float32)
    if images.ndim < 2 or not len(images):
        raise ValueError(f"extract_features needs a non-empty batch of images [n, H, W, C], got shape {images.shape}.")
    parts = [np.asarray(extractor(images[i:i + batch_size], training=False)) for i in range(0, len(images), batch_size)]
    return np.concatenate(parts).astype(np.float64)


def sample_quality(extractor, real_images, generated_images, k=NEAREST_NEIGHBOURS, batch_size=256):
    """``{"frechet_distance", "precision", "recall"}`` of generated images against real (held-out) ones.

    >>> sample_quality(extractor, test_images[:1000], vae.sample(1000, seed=0))
    """
    real = extract_features(extractor, real_images, batch_size)
    generated = extract_features(extractor, generated_images, batch_size)
    precision, recall = precision_recall(real, generated, k)
    return {"frechet_distance": frechet_distance(real, generated), "precision": precision, "recall": recall}
