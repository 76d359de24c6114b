"""Loading a trained VAE from a `.keras` file or a run directory.

Example:

>>> vae = load_vae("runs/sprites")            # runs/sprites/model.keras
>>> vae = load_vae("runs/sprites/best.keras")
"""

import os
import zipfile

import keras

MODEL_FILENAME = "model.keras"


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
    import keras_vae

    keras_vae.load_library()  # the file may name any registered class of the library
    try:
        return keras.saving.load_model(model_path, compile=compile)
    except (zipfile.BadZipFile, OSError, KeyError) as err:
        raise ValueError(f"Could not load {model_path!r}: the file is corrupt ({err}).") from err
