"""``metadata.json``: what an exported model is, written beside its files (SavedModel version or TFLite set).

Example:

>>> meta = export_metadata(vae, version=3, dataset=dataset_of("runs/mnist"), signatures=["serving_default"])
>>> write_metadata("saved_models/vae/3", meta)
>>> read_metadata("saved_models/vae/3")["latent_dim"]
16
"""

import datetime
import json
import os

import yaml

import keras_vae

METADATA_FILENAME = "metadata.json"
RUN_CONFIG_FILENAME = "config.yaml"


def dataset_of(source):
    """The ``dataset`` named in the run's config.yaml (beside the model file, or in the run dir), else "unknown"."""
    source = os.fspath(source)
    run_dir = source if os.path.isdir(source) else os.path.dirname(os.path.abspath(source))
    path = os.path.join(run_dir, RUN_CONFIG_FILENAME)
    if not os.path.isfile(path):
        return "unknown"
    try:
        with open(path) as f:
            config = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise ValueError(f"{path!r} is not valid YAML: {err}") from err
    if not isinstance(config, dict):
        raise ValueError(f"{path!r} must hold a mapping of settings, got {type(config).__name__}.")
    return str(config.get("dataset", "unknown"))


def export_metadata(model, version, dataset, signatures, **extra):
    """A JSON-ready description of an exported ``model``."""
    likelihood = model.likelihood
    meta = {
        "latent_dim": int(model.latent_dim),
        "image_shape": [int(d) for d in model.image_shape],
        "likelihood": getattr(likelihood, "name_key", type(likelihood).__name__),
        "prior": getattr(model.prior, "name_key", type(model.prior).__name__),
        "model_class": type(model).__name__,
        "conditional": bool(getattr(model, "conditional", False)),
        "dataset": dataset,
        "version": int(version),
        "keras_vae_version": keras_vae.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "signatures": signatures,
    }
    if meta["conditional"]:
        meta["num_classes"] = int(model.num_classes)
    meta.update(extra)
    return meta


def write_metadata(directory, metadata):
    path = os.path.join(directory, METADATA_FILENAME)
    with open(path, "w") as f:
        json.dump(metadata, f, indent=2, sort_keys=True)
        f.write("\n")
    return path


def read_metadata(directory):
    path = os.path.join(directory, METADATA_FILENAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No {METADATA_FILENAME} in {directory!r}: was it written by `keras-vae export`?")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path!r} is not valid JSON: {err}") from err
