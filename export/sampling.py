"""Images from any exported form of a VAE: a run directory / .keras file, a SavedModel, or a .tflite file.

Every source takes the same request (`limits.check_sample_request`: 1..MAX_SAMPLES images, a finite
temperature > 0) and, for a conditional model, one label for all images (a class index or a label vector).

Example:

>>> images = sample_images("saved_models/vae", 16, seed=0)             # highest SavedModel version
>>> images = sample_images("saved_models/vae/tflite/1/int8.tflite", 16)
>>> images = sample_images("runs/mnist", 16, seed=0, temperature=0.8)
>>> images = sample_images("runs/sprites_cvae", 16, seed=0, label=[0, 2, 1, 3, 0])  # a label vector
"""

import os
import secrets

import numpy as np

from keras_vae.export.labels import condition_of_input, label_batch
from keras_vae.export.layout import existing_versions, latest_version_dir
from keras_vae.export.limits import check_sample_request


def saved_model_dir_of(path):
    """``path`` if it is a SavedModel folder, its highest version if it is a model base path, else None."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    if os.path.isdir(path) and existing_versions(path):
        return latest_version_dir(path)
    return None


def sample_images(source, num_samples, seed=None, temperature=1.0, label=None, sampler="prior"):
    """``[num_samples, H, W, C]`` float images drawn from the prior (or an ex-post sampler) of the model at ``source``.

    Args:
        source: a run directory or ``.keras`` file, a SavedModel folder (``BASE/NAME/N``), a model base
            path (``BASE/NAME``: its highest version), or a ``.tflite`` file.
        num_samples: how many images, 1..`MAX_SAMPLES`.
        seed: integer seed (same seed, same images; a SavedModel and its ``.tflite`` files give the same
            images for the same seed, within each file's precision); None for a fresh draw.
        temperature: scales the prior's spread (finite, > 0).
        label: for conditional models, one label for all samples: a class index or a label vector.
        sampler: ``"prior"``, or the name of an ex-post sampler the model was exported with (``keras-vae
            fit-sampler``): its ``sample_<name>`` signature is used.
    """
    check_sample_request(num_samples, temperature)
    source = os.fspath(source)
    if not os.path.exists(source):
        raise FileNotFoundError(f"No model at {source!r}.")
    if source.endswith(".tflite"):
        return _from_tflite(source, num_samples, seed, temperature, label, sampler)
    saved_model = saved_model_dir_of(source) if os.path.isdir(source) else None
    if saved_model is not None:
        return _from_saved_model(saved_model, num_samples, seed, temperature, label, sampler)
    return _from_keras(source, num_samples, seed, temperature, label, sampler)


def _labels(condition, label, count):
    """The label input for ``count`` samples, or None for an unconditional model (which refuses a label)."""
    if condition:
        return label_batch(condition, label, count)
    if label is not None:
        raise ValueError("This model is not conditional: it takes no label.")
    return None


def _from_tflite(path, num_samples, seed, temperature, label, sampler="prior"):
    from keras_vae.export.tflite import TFLiteModel

    model = TFLiteModel(path)
    labels = _labels(model.condition, label, num_samples)
    if model.seeded or (seed is None and temperature == 1.0):
        return model.sample(num_samples, labels=labels, seed=seed, temperature=temperature, sampler=sampler)["images"]
    return _numpy_codes_decoded(model, path, num_samples, seed, temperature, labels, sampler)


def _numpy_codes_decoded(model, path, num_samples, seed, temperature, labels, sampler):
    """A seeded draw from a file whose ``sample`` takes no seed (exported before seeded sampling): codes from a
    seeded NumPy generator, decoded by the ``decode`` signature (standard normal priors only)."""
    from keras_vae.export.metadata import read_metadata

    meta = read_metadata(os.path.dirname(os.path.abspath(path)))
    if sampler != "prior" or meta.get("prior") != "standard_normal":
        raise ValueError(
            f"{path!r} predates seeded sampling: --seed/--temperature need a standard normal prior and no ex-post "
            "sampler with it. Export the model again, or use the SavedModel or the run directory."
        )
    rng = np.random.default_rng(seed)
    z = (temperature * rng.standard_normal((num_samples, model.latent_dim))).astype(np.float32)
    return model.decode(z, labels=labels)


def load_saved_model(path):
    """``tf.saved_model.load(path)``; ValueError naming ``saved_model.pb`` when it is truncated or corrupt."""
    import tensorflow as tf

    try:
        return tf.saved_model.load(path)
    except (OSError, ValueError, tf.errors.OpError) as err:
        pb = os.path.join(path, "saved_model.pb")
        reason = str(err).split(": ", 1)[-1] if isinstance(err, OSError) else str(err)
        raise ValueError(f"Could not load the SavedModel {pb!r} (truncated or corrupt?): {reason}") from None


def _from_saved_model(path, num_samples, seed, temperature, label, sampler="prior"):
    import tensorflow as tf

    from keras_vae.export.signatures import error_message, sample_signature

    signatures = load_saved_model(path).signatures
    name = sample_signature(sampler)
    if name not in signatures:
        if sampler != "prior":
            raise ValueError(f"The SavedModel at {path!r} has no sampler {sampler!r} (no {name!r} signature); it has "
                             f"{sorted(s for s in signatures if s.startswith('sample'))}.")
        raise ValueError(f"The SavedModel at {path!r} has no 'sample' signature: was it written by `keras-vae export`?")
    signature = signatures[name]
    spec = signature.structured_input_signature[1].get("label")
    condition = None if spec is None else condition_of_input(spec.dtype.as_numpy_dtype, spec.shape)
    inputs = {
        "num_samples": tf.constant(num_samples, tf.int32),
        "temperature": tf.constant(temperature, tf.float32),
        "seed": tf.constant(secrets.randbits(63) if seed is None else seed, tf.int64),
    }
    labels = _labels(condition, label, 1)  # one label, broadcast in the graph (which checks its range)
    if labels is not None:
        inputs["label"] = tf.constant(labels)
    try:
        return signature(**inputs)["images"].numpy()
    except tf.errors.InvalidArgumentError as err:
        raise ValueError(error_message(err)) from None


def _from_keras(path, num_samples, seed, temperature, label, sampler="prior"):
    from keras_vae.export.source import load_checked_vae

    model = load_checked_vae(path)
    labels = _labels(model.condition, label, num_samples)
    return np.asarray(model.sample(num_samples, temperature=temperature, seed=seed, labels=labels, sampler=sampler))
