"""``metadata.json``: what an exported model is, written beside its files (SavedModel version or TFLite set).

Example:

>>> meta = export_metadata(vae, version=3, dataset="mnist", signatures=["serving_default"])
>>> write_metadata("saved_models/vae/3", meta)
>>> read_metadata("saved_models/vae/3")["condition"]
{'kind': 'none', 'size': 0}
"""

import datetime
import json
import os

import keras_vae
from keras_vae.export.layout import write_text

METADATA_FILENAME = "metadata.json"


def export_metadata(model, version, dataset, signatures, **extra):
    """A JSON-ready description of an exported ``model`` (its condition as ``model.condition.get_config()``)."""
    likelihood = model.likelihood
    data_range = likelihood.data_range
    meta = {
        "latent_dim": int(model.latent_dim),
        "image_shape": [int(d) for d in model.image_shape],
        "likelihood": getattr(likelihood, "name_key", type(likelihood).__name__),
        "data_range": None if data_range is None else [float(v) for v in data_range],
        "prior": getattr(model.prior, "name_key", type(model.prior).__name__),
        "model_class": type(model).__name__,
        "condition": dict(model.condition.get_config()),
        "dataset": dataset,
        "version": int(version),
        "keras_vae_version": keras_vae.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "signatures": signatures,
        "samplers": ["prior", *model.samplers],  # each sampled by signature sample / sample_<name>
    }
    meta.update(extra)
    return meta


def write_metadata(directory, metadata):
    """Writes ``directory/metadata.json`` atomically: a reader never sees half of it."""
    path = os.path.join(directory, METADATA_FILENAME)
    write_text(path, json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return path


def read_metadata(directory):
    """The metadata of an export folder; ValueError naming the file when it is not a JSON object."""
    path = os.path.join(directory, METADATA_FILENAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No {METADATA_FILENAME} in {directory!r}: was it written by `keras-vae export`?")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path!r} is not valid JSON (truncated or corrupt?): {err}") from err
    if not isinstance(meta, dict):
        raise ValueError(f"{path!r} must hold a JSON object, got {type(meta).__name__}.")
    return meta
