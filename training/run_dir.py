"""The run directory: its files, written atomically, and the check that a config may continue it.

A run directory holds ``config.yaml`` (the resolved config), ``history.csv`` (one row per finished epoch),
``metrics.json``, ``best.keras``, ``model.keras``, ``backup/`` and ``logs/`` (TensorBoard). Every file here
is written with `keras_vae.atomic_files.atomic_write` (beside its final name, flushed to disk, renamed into
place), so a kill or a full disk leaves the previous good file, never a truncated one; a failed write raises
`RunWriteError` naming the file and its run directory.

Example:

>>> save_config(config, "runs/sprites/config.yaml")
>>> check_resumable(config, "runs/sprites")             # ValueError if the folder holds another model
>>> history = read_history("runs/sprites/history.csv")
>>> best_of(history, "val_elbo", "max")
(-160.2, 4)
>>> data_source("runs/sprites/best.keras")            # the dataset a run was trained on
('sprites', None, {})
"""

import csv
import hashlib
import io
import json
import math
import os

import numpy as np

from keras_vae.atomic_files import (  # noqa: F401  (several are imported from here by training modules)
    AtomicWriteError,
    atomic_write,
    atomic_write_text,
    fsync_path,
    remove_temporaries,
    replace,
    write_beside,
)
from keras_vae.run_config import MODEL_DEFAULTS, MODEL_SECTION, read_run_config
from keras_vae.training.config import TrainConfig, config_text

CONFIG_FILE = "config.yaml"
BEST_FILE = "best.keras"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
# Keys that fix the model's weights' shapes and meaning: a run directory only resumes with the same ones.
MODEL_KEYS = ("dataset", "image_shape", "model", "optimizer")
# Model keys a resumed run may change: the objective's weights and the prior's settings, not the weights' shapes.
RESUMABLE_MODEL_CHANGES = ("beta", "kl_warmup_steps", "free_bits", "iw_train_samples", "objective", "prior_options",
                           "seed")
# The run's name for the library's error: a file of the run could not be written, its previous version intact.
RunWriteError = AtomicWriteError


def file_digest(path):
    """SHA-256 of a file, hex: what a backup's metadata records of the weights file it belongs to."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------ config
def save_config(config, path):
    """Writes ``config`` (a `TrainConfig`) as the YAML of a run's ``config.yaml``, atomically."""
    atomic_write_text(path, config_text(config))


def check_resumable(config, run_dir):
    """Raises ValueError when ``run_dir`` holds a run whose model differs from ``config``'s (see `MODEL_KEYS`)."""
    previous = read_run_config(run_dir)
    if not previous:
        return
    defaults = TrainConfig().to_dict()  # keys an older config.yaml left out had their default value
    current = config.to_dict()
    pairs = {key: (previous.get(key, defaults[key]), current[key]) for key in MODEL_KEYS if key != MODEL_SECTION}
    before, now = (_structural(model) for model in (previous.get(MODEL_SECTION, {}), current[MODEL_SECTION]))
    pairs.update({f"{MODEL_SECTION}.{key}": (before.get(key), now.get(key)) for key in {**before, **now}})
    for key, (before, now) in pairs.items():
        if before != now:
            raise ValueError(
                f"Run directory {run_dir!r} holds a run with {key}={before!r}, not {now!r}: its backup and "
                "checkpoints cannot continue this config. Use another --run-dir (or delete it)."
            )


def _structural(model):
    """The model keys that fix its weights, with build_vae's defaults filled in (`RESUMABLE_MODEL_CHANGES` left out)."""
    model = {**MODEL_DEFAULTS, "prior": "standard_normal", **model}
    return {key: value for key, value in model.items() if key not in RESUMABLE_MODEL_CHANGES}


def data_source(model_path, dataset=None, data_dir=None):
    """``(dataset, data_dir, source_options)`` for a model: the given ones, else those of the run directory it is in.

    The run's ``data_dir`` and source options (image size, channels, resize, split of a folder or tfds: dataset;
    `keras_vae.training.data.source_options_of`) are used only for the run's own dataset; ``dataset`` is None when
    neither says.
    """
    from keras_vae.training.names import SOURCE_OPTIONS

    run = read_run_config(model_path)
    dataset = dataset or run.get("dataset")
    own = dataset == run.get("dataset")
    data_dir = data_dir or (run.get("data_dir") if own else None)
    return dataset, data_dir, {key: run[key] for key in SOURCE_OPTIONS if own and run.get(key) is not None}


# ------------------------------------------------------------------------------------------ history
def read_history(path):
    """Rows of ``history.csv`` as dicts of floats, one per epoch (the last row of an epoch that was redone)."""
    if not os.path.isfile(path):
        return []
    rows = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            values = {k: float(v) for k, v in row.items() if k is not None and v not in ("", None)}
            if "epoch" in values:
                rows[int(values["epoch"])] = values
    return [rows[e] for e in sorted(rows)]


def history_row(epoch, logs):
    """The ``history.csv`` row of an epoch: its 0-based index and every scalar in ``logs`` as a float."""
    row = {"epoch": float(epoch)}
    row.update({k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0})
    return row


def write_history(path, rows):
    """Writes ``rows`` (dicts with an ``epoch``) as ``history.csv``: ``epoch`` first, then the sorted keys."""
    keys = sorted({k for row in rows for k in row} - {"epoch"})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["epoch", *keys], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (int(v) if k == "epoch" else repr(float(v))) for k, v in row.items()})
    atomic_write_text(path, buffer.getvalue())


def add_history_row(path, row):
    """Records ``row`` in ``history.csv`` (replacing an earlier row of the same epoch), atomically."""
    rows = {int(r["epoch"]): r for r in read_history(path)}
    rows[int(row["epoch"])] = row
    write_history(path, [rows[e] for e in sorted(rows)])


def apply_epoch_records(run_dir, records):
    """Applies an epoch's committed records (see `keras_vae.training.callbacks.EpochCommit`) to ``run_dir``:
    its row into ``history.csv`` and its best.keras candidate, if still beside, into ``best.keras``.

    Idempotent: a resumed run calls it again for the generation it restores, finishing an interrupted commit.
    """
    if not records:
        return
    if records.get("history_row"):
        add_history_row(os.path.join(run_dir, HISTORY_FILE), records["history_row"])
    best = records.get("best")
    candidate = os.path.join(run_dir, best["file"]) if best else None
    if candidate and os.path.isfile(candidate) and file_digest(candidate) == best["sha256"]:
        replace(candidate, os.path.join(run_dir, BEST_FILE))


def best_of(history, key="val_elbo", mode="max"):
    """``(value, epoch)`` of the best finite ``key`` in ``history`` (``mode`` max or min), or ``(None, None)``."""
    sign = 1.0 if mode == "max" else -1.0
    scored = [(sign * row[key], int(row["epoch"])) for row in history if math.isfinite(row.get(key, math.nan))]
    if not scored:
        return None, None
    value, epoch = max(scored)
    return sign * value, epoch


def write_metrics(run_dir, metrics):
    """Writes ``metrics.json`` of a run, atomically."""
    atomic_write_text(os.path.join(run_dir, METRICS_FILE), json.dumps(metrics, indent=2))

