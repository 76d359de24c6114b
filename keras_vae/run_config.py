"""A training run's config as a mapping: its ``model`` section, the layout of configs written by keras-vae 0.2.0,
and the one reader of a run directory's ``config.yaml``. Importable without TensorFlow.

A config keeps everything `keras_vae.build_vae` takes in one ``model`` mapping; data, optimizer, schedule,
strategy, precision, run directory and evaluation stay at the top level. Configs of version 0.2.0 kept some model
keys at the top level and the rest in ``model_options``; `upgrade_config` moves them into ``model``.

Example:

>>> upgrade_config({"dataset": "sprites", "latent_dim": 4, "model_options": {"hidden_units": [8]}})["model"]
{'variant': 'vae', 'architecture': 'conv', 'latent_dim': 4, 'likelihood': 'bernoulli', 'prior': 'standard_normal', \
'beta': 1.0, 'kl_warmup_steps': 0, 'free_bits': 0.0, 'iw_train_samples': 1, 'hidden_units': [8]}
>>> read_run_config("runs/sprites")["model"]["latent_dim"]   # a run directory's config.yaml, in this layout
10
"""

import os

RUN_CONFIG_FILENAME = "config.yaml"
MODEL_SECTION = "model"
# build_vae's arguments that every config's model section records (the rest are build_vae's own defaults).
MODEL_DEFAULTS = {"architecture": "conv", "latent_dim": 10, "likelihood": "bernoulli", "variant": "vae"}
# The model keys version 0.2.0 kept at the top level, with the value it used when a config left one out.
LEGACY_MODEL_KEYS = {
    "variant": "vae", "architecture": "conv", "latent_dim": 10, "likelihood": "bernoulli",
    "prior": "standard_normal", "prior_options": {}, "beta": 1.0, "kl_warmup_steps": 0, "free_bits": 0.0,
    "iw_train_samples": 1,
}
LEGACY_OPTIONS_KEY = "model_options"


def is_legacy(values):
    """True when ``values`` has a model key at the top level (the 0.2.0 layout)."""
    return any(key in values for key in (*LEGACY_MODEL_KEYS, LEGACY_OPTIONS_KEY))


def upgrade_config(values, fill_defaults=True):
    """``values`` with the 0.2.0 layout's model keys moved into the ``model`` section (a new dict).

    With ``fill_defaults`` the keys 0.2.0 passed to `build_vae` even when a config left them out get the value it
    passed, so an old config builds the same model. Raises ValueError when a key is given in both places.
    """
    if not is_legacy(values):
        return values
    values = dict(values)
    model = dict(values.pop(MODEL_SECTION, None) or {})
    moved = {key: values.pop(key) for key in LEGACY_MODEL_KEYS if key in values}
    options = values.pop(LEGACY_OPTIONS_KEY, None) or {}
    if not isinstance(options, dict):
        raise ValueError(f"{LEGACY_OPTIONS_KEY} must be a mapping, got {options!r}.")
    if fill_defaults:
        moved = {key: moved.get(key, default) for key, default in LEGACY_MODEL_KEYS.items()}
        if not moved["prior_options"]:
            del moved["prior_options"]
    for key, value in (*moved.items(), *options.items()):
        if key in model and model[key] != value:
            raise ValueError(f"{key!r} is set twice: in the {MODEL_SECTION!r} section and as {key!r}.")
        model[key] = value
    values[MODEL_SECTION] = model
    return values


def read_config_file(path):
    """The mapping a config file holds, in the current layout ({} for an empty file).

    Raises ValueError naming the file when it is not valid YAML (e.g. half-written) or not a mapping.
    """
    import yaml

    try:
        with open(path) as f:
            config = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{path!r} is not valid YAML (truncated or corrupt?): {err}") from err
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValueError(f"{path!r} must hold a mapping of config keys, got {type(config).__name__}.")
    try:
        return upgrade_config(config)
    except ValueError as err:
        raise ValueError(f"{err} (config {path!r})") from None


def read_run_config(path):
    """The training config (a dict, in the current layout) of the run that ``path`` belongs to, or {} outside a
    run directory.

    ``path`` is a run directory or a file in one (``model.keras``, ``best.keras``). The one reader of a run's
    ``config.yaml`` for evaluation, export and plots (see `read_config_file` for its errors).
    """
    path = os.fspath(path)
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    config_path = os.path.join(folder, RUN_CONFIG_FILENAME)
    return read_config_file(config_path) if os.path.isfile(config_path) else {}
