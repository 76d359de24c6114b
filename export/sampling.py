"""Images from any exported form of a VAE: a run directory / .keras file, a SavedModel, or a .tflite file.

Example:

>>> images = sample_images("saved_models/vae", 16, seed=0)             # highest SavedModel version
>>> images = sample_images("saved_models/vae/tflite/1/int8.tflite", 16)
>>> images = sample_images("runs/mnist", 16, seed=0, temperature=0.8)
"""

import os
import secrets

import numpy as np

from keras_vae.export.layout import existing_versions, latest_version_dir


def saved_model_dir_of(path):
    """``path`` if it is a SavedModel folder, its highest version if it is a model base path, else None."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    if os.path.isdir(path) and existing_versions(path):
        return latest_version_dir(path)
    return None


def sample_images(source, num_samples, seed=None, temperature=1.0, label=None):
    """``[num_samples, H, W, C]`` float images in [0, 1] drawn from the prior of the model at ``source``.

    Args:
        source: a run directory or ``.keras`` file, a SavedModel folder (``BASE/NAME/N``), a model base
            path (``BASE/NAME``: its highest version), or a ``.tflite`` file.
        num_samples: how many images.
        seed: integer seed (same seed, same images). A ``.tflite`` model without a seed samples on
            device; with one, codes come from a seeded NumPy generator (standard normal priors only).
        temperature: scales the prior's spread.
        label: class label for conditional models (one label for all samples).
    """
    source = os.fspath(source)
    if not os.path.exists(source):
        raise FileNotFoundError(f"No model at {source!r}.")
    if source.endswith(".tflite"):
        return _from_tflite(source, num_samples, seed, temperature, label)
    saved_model = saved_model_dir_of(source) if os.path.isdir(source) else None
    if saved_model is not None:
        return _from_saved_model(saved_model, num_samples, seed, temperature, label)
    return _from_keras(source, num_samples, seed, temperature, label)


def _from_tflite(path, num_samples, seed, temperature, label):
    from keras_vae.export.metadata import read_metadata
    from keras_vae.export.tflite import TFLiteModel

    model = TFLiteModel(path)
    if seed is None and temperature == 1.0:
        return model.sample(num_samples, labels=label)["images"]
    # The on-device generator cannot be re-seeded at run time; for a reproducible draw, the
    # codes come from a seeded NumPy generator and go through the `decode` signature instead.
    meta = read_metadata(os.path.dirname(os.path.abspath(path)))
    if meta.get("prior") != "standard_normal":
        raise ValueError(
            f"--seed/--temperature with a .tflite file need a standard normal prior (this model's is "
            f"{meta.get('prior')!r}); use the SavedModel or the run directory for reproducible samples."
        )
    rng = np.random.default_rng(seed)
    z = (temperature * rng.standard_normal((num_samples, int(meta["latent_dim"])))).astype(np.float32)
    labels = None if label is None else np.full([num_samples], label, np.int32)
    return model.decode(z, labels=labels)


def _from_saved_model(path, num_samples, seed, temperature, label):
    import tensorflow as tf

    from keras_vae.export.signatures import error_message

    loaded = tf.saved_model.load(path)
    if "sample" not in loaded.signatures:
        raise ValueError(f"The SavedModel at {path!r} has no 'sample' signature: was it written by `keras-vae export`?")
    signature = loaded.signatures["sample"]
    inputs = {
        "num_samples": tf.constant(num_samples, tf.int32),
        "temperature": tf.constant(temperature, tf.float32),
        "seed": tf.constant(secrets.randbits(63) if seed is None else seed, tf.int64),
    }
    if "label" in signature.structured_input_signature[1]:
        if label is None:
            raise ValueError("This model is conditional: pass a label (--label).")
        inputs["label"] = tf.constant([label], tf.int32)
    else:
        _no_label(label)
    try:
        return signature(**inputs)["images"].numpy()
    except tf.errors.InvalidArgumentError as err:
        raise ValueError(error_message(err)) from None


def _from_keras(path, num_samples, seed, temperature, label):
    import keras_vae

    model = keras_vae.load_vae(path, compile=False)
    if getattr(model, "conditional", False):
        if label is None:
            raise ValueError("This model is conditional: pass a label (--label).")
        labels = np.full([num_samples], label, np.int32)
        return np.asarray(model.sample(num_samples, temperature=temperature, seed=seed, labels=labels))
    _no_label(label)
    return np.asarray(model.sample(num_samples, temperature=temperature, seed=seed))


def _no_label(label):
    if label is not None:
        raise ValueError("This model is not conditional: it takes no label.")
