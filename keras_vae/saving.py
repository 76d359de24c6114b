"""Loading a trained VAE from a `.keras` file or a run directory.

Example:

>>> vae = load_vae("runs/sprites")            # runs/sprites/model.keras
>>> vae = load_vae("runs/sprites/best.keras")
>>> read_run_config("runs/sprites")["dataset"]   # the config.yaml a training run wrote beside its models
'sprites'
"""

import os
import zipfile

import keras

MODEL_FILENAME = "model.keras"
RUN_CONFIG_FILENAME = "config.yaml"


def resolve_model_path(path):
    """The `.keras` file for ``path``: the file itself, or ``<dir>/model.keras`` for a run directory."""
    path = os.fspath(path)
    if os.path.isdir(path):
        candidate = os.path.join(path, MODEL_FILENAME)
        if not os.path.isfile(candidate):
            raise FileNotFoundError(f"No {MODEL_FILENAME} in directory {path!r}: is it a finished run directory?")
        return candidate
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file or run directory at {path!r}.")
    if not path.endswith(".keras"):
        raise ValueError(f"Expected a .keras file or a run directory, got {path!r}.")
    return path


def load_vae(path, compile=True):
    """Loads a VAE (any keras_vae variant) saved with ``model.save("...keras")``.

    Raises FileNotFoundError for a missing file and ValueError, naming the file, for a corrupt one.
    """
    model_path = resolve_model_path(path)
    if not zipfile.is_zipfile(model_path):
        raise ValueError(f"{model_path!r} is not a valid .keras file (not a zip archive: truncated or corrupt?).")
    try:
        return keras.saving.load_model(model_path, compile=compile)
    except (zipfile.BadZipFile, OSError, KeyError) as err:
        raise ValueError(f"Could not load {model_path!r}: the file is corrupt ({err}).") from err


def read_run_config(path):
    """The training config (a dict) of the run that ``path`` belongs to, or {} outside a run directory.

    ``path`` is a run directory or a file in one (``model.keras``, ``best.keras``). The one reader of a run's
    ``config.yaml`` for evaluation, export and plots. Raises ValueError naming the file when it is not a
    YAML mapping (e.g. half-written).
    """
    import yaml

    path = os.fspath(path)
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    config_path = os.path.join(folder, RUN_CONFIG_FILENAME)
    if not os.path.isfile(config_path):
        return {}
    try:
        with open(config_path) as f:
            config = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{config_path!r} is not valid YAML (truncated or corrupt?): {err}") from err
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValueError(f"{config_path!r} must hold a mapping of settings, got {type(config).__name__}.")
    return config
