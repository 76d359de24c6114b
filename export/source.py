"""The model an export or a `sample` starts from: loaded, checked to be a keras_vae VAE, and matched to its run.

Example:

>>> model, dataset = exportable_model("runs/mnist")        # the run's model.keras and its config's dataset
>>> model, dataset = exportable_model(vae)                  # a model in memory: dataset "unknown"
"""

import os

import numpy as np


def _described(source):
    return "The model given" if source is None else f"The model in {os.fspath(source)!r}"


def checked_vae(model, source=None):
    """``model`` if it is a `keras_vae.VAE` (any variant); ValueError naming ``source`` (a path) otherwise."""
    import keras_vae

    if not isinstance(model, keras_vae.VAE):
        raise ValueError(
            f"{_described(source)} is a {type(model).__name__}, not a keras_vae VAE: export and sample need a "
            "model built with keras_vae.build_vae (or a keras_vae.VAE subclass)."
        )
    return model


def load_checked_vae(source):
    """`keras_vae.load_vae` of a run directory or ``.keras`` file, refused unless it is a VAE."""
    import keras_vae

    return checked_vae(keras_vae.load_vae(source, compile=False), source)


def count_non_finite_weights(model):
    """How many weight values of ``model`` are NaN or Inf (e.g. after a diverged training run)."""
    return int(sum(np.size(w) - np.count_nonzero(np.isfinite(w)) for w in model.get_weights()))


def check_finite_weights(model, source=None):
    """Refuses a model with NaN or Inf weights, naming how many (``source``: its path, if any)."""
    bad = count_non_finite_weights(model)
    if bad:
        raise ValueError(
            f"{_described(source)} has {bad} non-finite weights (NaN or Inf): training diverged, and its outputs would be "
            "NaN. Export an earlier checkpoint (e.g. the run's best.keras) or retrain."
        )


def check_matches_run(model, config, source):
    """Refuses a model whose image shape or latent size differs from its run's config.yaml.

    Such a model was copied in from another run, and the run's dataset name would mislabel the export.
    """
    expected = {"image_shape": config.get("image_shape"), "latent_dim": config.get("model", {}).get("latent_dim")}
    actual = {"image_shape": [int(d) for d in model.image_shape], "latent_dim": int(model.latent_dim)}
    wrong = [key for key, value in expected.items() if value is not None and _as_json(value) != actual[key]]
    if wrong:
        details = ", ".join(f"{key} {actual[key]} (config.yaml: {_as_json(expected[key])})" for key in wrong)
        raise ValueError(
            f"{_described(source)} does not match its run's config.yaml (dataset {config.get('dataset')!r}): "
            f"{details}. It belongs to another run; export its .keras file from a folder of its own."
        )


def _as_json(value):
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else int(value)


def exportable_model(source, dataset=None):
    """``(model, dataset)`` for ``source``: a VAE, or a run directory / ``.keras`` file to load one from.

    A path's dataset comes from its run's config.yaml (`keras_vae.saving.read_run_config`), after checking the
    model matches that run; ``dataset`` overrides it. Refuses non-VAE models and non-finite weights.
    """
    from keras_vae.run_config import read_run_config

    if isinstance(source, (str, os.PathLike)):
        model, path = load_checked_vae(source), source
        config = read_run_config(source)
        if dataset is None:
            check_matches_run(model, config, path)
        dataset = dataset or config.get("dataset")
    else:
        model, path = checked_vae(source), None
    check_finite_weights(model, path)
    return model, str(dataset or "unknown")
