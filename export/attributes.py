"""What the studio knows about an export beyond its signatures: ``assets.extra/attributes.json`` in a version.

The document holds attribute vectors (mean posterior code of the examples with an attribute minus
that of the others, e.g. "digit 7" or "scale"), the per-dimension KL of the posterior to N(0, 1)
(to rank latent dimensions), and the anomaly threshold: a quantile of the ``score`` signature's
scores of training examples, so a verdict compares like with like. ``assets.extra`` is where TF
Serving keeps files it does not load, so the version stays a valid servable.

Example:

>>> encode, score = saved_model_functions("saved_models/vae/1")
>>> doc = attributes_document(encode, score, images, {"digit 7": labels == 7})
>>> write_attributes("saved_models/vae/1", doc)
>>> read_attributes("saved_models/vae/1")["threshold"]
104.2
"""

import json
import os

import numpy as np

from keras_vae.export.layout import write_text

ATTRIBUTES_FILE = os.path.join("assets.extra", "attributes.json")
THRESHOLD_QUANTILE = 0.99
BATCH_SIZE = 128


def attributes_path(version_dir):
    return os.path.join(os.fspath(version_dir), ATTRIBUTES_FILE)


def read_attributes(version_dir):
    """The attributes document of a version, or None when it has none (or an unreadable one).

    >>> read_attributes("saved_models/vae/1")["attributes"][0]["name"]
    'digit 0'
    """
    path = attributes_path(version_dir)
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError):  # absent or half-written: the studio works without it
        return None
    return doc if isinstance(doc, dict) else None


def write_attributes(version_dir, doc):
    """Writes ``doc`` atomically to ``version_dir/assets.extra/attributes.json``; returns the path.

    >>> write_attributes("saved_models/vae/1", {"attributes": [], "threshold": None})
    'saved_models/vae/1/assets.extra/attributes.json'
    """
    path = attributes_path(version_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_text(path, json.dumps(doc, indent=1) + "\n")
    return path


def attribute_vectors(codes, masks):
    """``[{"name", "vector", "count"}]``: for each boolean mask, mean code with it minus mean code without.

    Masks selecting all or none of the examples give no vector (no contrast to take).

    >>> attribute_vectors(np.eye(2), {"first": np.array([True, False])})[0]["vector"]
    [1.0, -1.0]
    """
    vectors = []
    for name, mask in masks.items():
        mask = np.asarray(mask, bool)
        if mask.all() or not mask.any():
            continue
        vector = codes[mask].mean(axis=0) - codes[~mask].mean(axis=0)
        vectors.append({"name": str(name), "vector": [round(float(v), 6) for v in vector], "count": int(mask.sum())})
    return vectors


def kl_per_dimension(loc, scale):
    """Mean KL(q(z_d | x) || N(0, 1)) per latent dimension over the examples: ``[latent_dim]``.

    >>> kl_per_dimension(np.zeros((3, 2)), np.ones((3, 2)))
    [0.0, 0.0]
    """
    scale = np.maximum(scale, 1e-12)
    kl = 0.5 * (loc**2 + scale**2 - 1.0) - np.log(scale)
    return [round(float(v), 6) for v in kl.mean(axis=0)]


def attributes_document(encode, score, images, masks, labels=None, quantile=THRESHOLD_QUANTILE, source=None):
    """The attributes.json document for labelled training ``images``.

    Args:
        encode: ``encode(images, labels) -> (loc, scale)`` numpy, e.g. from `saved_model_functions`.
        score: ``score(images, labels) -> scores`` (the export's ``score`` signature), or None (no threshold).
        masks: ``{attribute name: booleans [n]}``.
        labels: the condition labels of a conditional model (one per image), else None.
        source: a note on where the examples came from (e.g. "sprites train, 2000 examples").
    """
    loc, scale = encode(images, labels)
    doc = {"attributes": attribute_vectors(loc, masks), "kl_per_dim": kl_per_dimension(loc, scale),
           "threshold": None, "threshold_quantile": quantile, "count": int(len(images)), "source": source}
    if score is not None:
        scores = score(images, labels)
        doc["threshold"] = round(float(np.quantile(scores, quantile)), 4)
    return doc


def _batched(fn, images, labels):
    outputs = []
    for start in range(0, len(images), BATCH_SIZE):
        chunk = {"images": images[start : start + BATCH_SIZE]}
        if labels is not None:
            chunk["label"] = labels[start : start + BATCH_SIZE]
        outputs.append(fn(chunk))
    return {key: np.concatenate([out[key] for out in outputs]) for key in outputs[0]}


def saved_model_functions(version_dir):
    """``(encode, score)`` callables running a version's signatures (score is None without one).

    Both take ``(images, labels)`` numpy arrays (labels None for unconditional models), in batches.

    >>> loc, scale = saved_model_functions("saved_models/vae/1")[0](images, None)
    """
    import tensorflow as tf

    signatures = tf.saved_model.load(os.fspath(version_dir)).signatures
    if "encode" not in signatures:
        raise ValueError(f"{version_dir!r} has no encode signature: export it with --with-encoder.")

    def run(name):
        def call(chunk):
            outputs = signatures[name](**{key: tf.constant(value) for key, value in chunk.items()})
            return {key: value.numpy() for key, value in outputs.items()}

        return call

    def encode(images, labels):
        out = _batched(run("encode"), np.asarray(images, np.float32), labels)
        return out["loc"], out["scale"]

    def score(images, labels):
        return _batched(run("score"), np.asarray(images, np.float32), labels)["score"]

    return encode, (score if "score" in signatures else None)
