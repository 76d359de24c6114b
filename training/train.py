"""`keras-vae train`: a training run from a `TrainConfig`, written to a run directory.

The run directory (``config.run_dir``, default ``runs/<dataset>``) holds ``config.yaml`` (the
resolved config), ``logs/`` (TensorBoard scalars, plus sample and reconstruction grids each epoch),
``best.keras`` (best validation ELBO), ``model.keras`` (final), ``history.csv``, ``metrics.json`` and
``backup/`` (`keras.callbacks.BackupAndRestore`: the same command resumes an interrupted run).

Example:

>>> from keras_vae.training.config import load_config
>>> model, metrics = train(load_config("configs/sprites_quick.yaml", {"epochs": 1}))
>>> metrics["best_val_elbo"]
-160.2
"""

import argparse
import csv
import dataclasses
import inspect
import json
import math
import os
import shutil
import tempfile
import time

from keras_vae.training.config import TrainConfig, load_config, parse_assignment, save_config

# Keys that fix the model's weights' shapes and meaning: a run directory only resumes with the same ones.
MODEL_KEYS = ("dataset", "image_shape", "variant", "architecture", "latent_dim", "likelihood", "prior",
              "model_options", "optimizer")
_NEVER = 2**30  # a loss scale growth interval that is never reached


def build_model(config):
    """The uncompiled model of ``config`` via `keras_vae.build_vae` (call inside the strategy scope).

    The image shape and the variant's dataset-given options come from the dataset when the config
    leaves them out (see `dataset_model_options`).
    """
    import keras_vae
    from keras_vae.training.data import dataset_info

    info = dataset_info(config.dataset, config.data_dir)
    image_shape = tuple(config.image_shape or info.image_shape)
    prior = config.prior
    if config.prior_options:
        try:
            prior = keras_vae.priors.PRIORS[config.prior](**config.prior_options)
        except (TypeError, ValueError) as err:  # Keras layers reject unknown keywords with a ValueError
            raise ValueError(f"Invalid prior option in prior_options {config.prior_options}: {err}") from err
    options = dict(
        likelihood=config.likelihood,
        prior=prior,
        beta=config.beta,
        kl_warmup_steps=config.kl_warmup_steps,
        free_bits=config.free_bits,
        seed=config.seed,
        iw_train_samples=config.iw_train_samples,
        **dataset_model_options(config, info),
    )
    if config.variant != "vae":
        if "variant" not in inspect.signature(keras_vae.build_vae).parameters:
            raise ValueError(f"variant {config.variant!r} is not available in this keras_vae; use 'vae'.")
        options["variant"] = config.variant
    try:
        return keras_vae.build_vae(image_shape, config.latent_dim, config.architecture, **options)
    except TypeError as err:  # an unknown option reaches a constructor
        raise ValueError(f"Invalid model option in model_options {config.model_options}: {err}") from err


def dataset_model_options(config, info):
    """``config.model_options`` plus what the variant needs and the dataset tells: a conditional model's
    label size (``num_classes`` or ``label_dim``) and beta-TCVAE's ``dataset_size``."""
    options = dict(config.model_options)
    if config.variant == "cvae" and "num_classes" not in options and "label_dim" not in options:
        if info.label_kind == "class":
            options["num_classes"] = info.num_classes
        elif info.label_kind == "factors":
            options["label_dim"] = len(info.factor_names)
    if config.variant == "beta_tcvae":
        options.setdefault("dataset_size", info.split_sizes["train"])
    return options


def make_optimizer(config):
    """The optimizer, wrapped in a `keras.optimizers.LossScaleOptimizer`, which skips non-finite steps.

    Under mixed_float16 the loss scale is dynamic (as Keras would set it up itself); otherwise it is a
    constant 1 (the `NonFiniteGuard` undoes the halving that follows a skipped step).
    """
    import keras

    classes = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD,
               "rmsprop": keras.optimizers.RMSprop}
    ema = {"use_ema": True, "ema_momentum": config.ema_momentum} if config.ema_momentum else {}
    inner = classes[config.optimizer](learning_rate=config.learning_rate, clipnorm=config.clipnorm, **ema)
    if config.precision == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(inner)
    return keras.optimizers.LossScaleOptimizer(inner, initial_scale=1.0, dynamic_growth_steps=_NEVER)


def _check_resumable(config, run_dir):
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        return
    previous = load_config(path).to_dict()
    current = config.to_dict()
    for key in MODEL_KEYS:
        if previous[key] != current[key]:
            raise ValueError(
                f"Run directory {run_dir!r} holds a run with {key}={previous[key]!r}, not {current[key]!r}: "
                "its backup and checkpoints cannot continue this config. Use another --run-dir (or delete it)."
            )


def read_history(path):
    """Rows of ``history.csv`` as dicts of floats, one per epoch (the last row of an epoch that was redone)."""
    if not os.path.isfile(path):
        return []
    rows = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            values = {k: float(v) for k, v in row.items() if v not in ("", None)}
            rows[int(values["epoch"])] = values
    return [rows[e] for e in sorted(rows)]


def _load_initial_weights(model, path):
    path = os.path.join(path, "best.keras") if os.path.isdir(path) else path
    if not os.path.isfile(path):
        raise FileNotFoundError(f"init_weights: no such file {path!r} (give a .keras file or a run directory).")
    try:
        model.load_weights(path)
    except ValueError as err:
        raise ValueError(f"init_weights {path!r} does not fit this model: {err}") from err


def selection_metric(config):
    """``(metric, mode)`` that picks best.keras and drives ``reduce_lr_patience``: the validation value of the
    bound being trained (the ELBO, or with ``iw_train_samples`` > 1 the importance-weighted bound in val_loss)."""
    return ("val_loss", "min") if config.iw_train_samples > 1 else ("val_elbo", "max")


def _best(history, key="val_elbo", mode="max"):
    sign = 1.0 if mode == "max" else -1.0
    scored = [(sign * row[key], int(row["epoch"])) for row in history if math.isfinite(row.get(key, math.nan))]
    if not scored:
        return None, None
    value, epoch = max(scored)
    return sign * value, epoch


def _rank1_step_logs(model):
    """Makes the model's step logs shape [1] for MultiWorkerMirroredStrategy.

    Keras 3 reduces step logs across workers with ``strategy.reduce("MEAN", v, axis=0)``, which fails on
    scalars ("Invalid reduction dimension 0", tensorflow/tensorflow#72388); over [1] it yields the mean.
    The epoch logs come from the metric objects, which Keras reduces over all workers itself.
    """
    import tensorflow as tf

    for name in ("train_step", "test_step"):
        step = getattr(model, name)

        def rank1(data, step=step):
            return {key: tf.reshape(value, [1]) for key, value in step(data).items()}

        setattr(model, name, rank1)


def train(config, train_data=None, callbacks=()):
    """Trains ``config`` (a `TrainConfig`); returns ``(model, metrics)``, the metrics as in ``metrics.json``.

    Args:
        config: the run's configuration.
        train_data: optional batched `tf.data.Dataset` used instead of the config's train split
            (batches of the global batch size).
        callbacks: more Keras callbacks (run after the run's own).

    Raises:
        NonFiniteLossError: training met non-finite values and ``nan_policy`` is ``stop`` (or the
            ``skip`` limit was passed). Nothing with NaN is saved.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"train() takes a TrainConfig, got {type(config).__name__}.")
    config = dataclasses.replace(config)  # resolved below (image shape, dataset options); the caller's stays
    from keras_vae.training import strategies

    strategy = strategies.make_strategy(config.strategy)  # first: multi-worker needs it before other TF work
    import keras
    import tensorflow as tf

    from keras_vae.training import data
    from keras_vae.training.callbacks import AveragedWeights, EpochSummary, ImageGrids, NonFiniteGuard, RunBackup, TimeLimit
    from keras_vae.training.evaluate import evaluate_model

    if config.jit_compile and isinstance(strategy, tf.distribute.MirroredStrategy) and (
        strategy.num_replicas_in_sync > 1
    ):
        raise ValueError(
            f"jit_compile with {type(strategy).__name__} over {strategy.num_replicas_in_sync} devices is not "
            "supported: Keras XLA-compiles every replica's step into one program, which cannot reach variables "
            "on other devices. Use jit_compile with one device per process (default, one_device, or "
            "multi_worker with one device per worker)."
        )
    strategies.set_precision(config.precision)
    keras.utils.set_random_seed(config.seed)
    info = data.dataset_info(config.dataset, config.data_dir)
    config.model_options = dataset_model_options(config, info)
    if config.image_shape is None:
        config.image_shape = list(info.image_shape)
    elif tuple(config.image_shape) != tuple(info.image_shape):
        raise ValueError(f"image_shape {config.image_shape} does not match dataset {config.dataset!r} "
                         f"({list(info.image_shape)}).")

    chief = strategies.is_chief(strategy)
    run_dir = config.resolved_run_dir()
    # Workers other than the chief write everything to a scratch directory that is removed at the end.
    write_dir = run_dir if chief else tempfile.mkdtemp(prefix="keras-vae-worker-")
    if chief:
        os.makedirs(run_dir, exist_ok=True)
        _check_resumable(config, run_dir)
        save_config(config, os.path.join(run_dir, "config.yaml"))

    with strategy.scope():
        model = build_model(config)
        if config.init_weights:  # a warm start; a backup of this run, if any, still wins (restored in fit)
            _load_initial_weights(model, config.init_weights)
        model.compile(
            optimizer=make_optimizer(config),
            jit_compile=config.jit_compile,
            steps_per_execution=config.steps_per_execution,
        )
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        _rank1_step_logs(model)
    conditional = bool(getattr(model, "conditional", False))
    if conditional and info.label_kind is None:
        raise ValueError(f"variant {config.variant!r} needs labels; dataset {config.dataset!r} has none.")

    common = dict(data_dir=config.data_dir, batch_size=config.batch_size, with_labels=conditional)
    if train_data is None:
        train_data = data.get_dataset(config.dataset, "train", shuffle=True, seed=config.seed,
                                      dynamic_binarization=config.dynamic_binarization, **common)
    valid_data = data.get_dataset(config.dataset, "valid", **common)
    if config.steps_per_epoch:
        train_data = train_data.repeat()
    if config.validation_steps:
        valid_data = valid_data.take(config.validation_steps)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train_data, valid_data = train_data.with_options(options), valid_data.with_options(options)

    history_path = os.path.join(write_dir, "history.csv")
    monitor, mode = selection_metric(config)
    best_so_far, _ = _best(read_history(history_path), monitor, mode)
    images, labels = data.load_examples(config.dataset, "valid", config.data_dir, count=config.image_grid_size,
                                        with_labels=conditional)
    guard = NonFiniteGuard(
        config.nan_policy, config.max_nonfinite_steps, fixed_scale=config.precision != "mixed_float16", verbose=chief
    )
    extra_callbacks = list(callbacks)
    callbacks = [
        guard,  # first: it raises before anything non-finite is written
        RunBackup(os.path.join(run_dir, "backup"), save_freq=config.backup_every_steps or "epoch", chief=chief,
                  scratch_dir=None if chief else os.path.join(write_dir, "backup")),
        # Before the averaged weights: it must know at the end of an epoch whether training stops there.
        *([TimeLimit(config.max_train_minutes)] if config.max_train_minutes else []),
        # After the backup (which keeps the raw weights), before everything that validates or saves.
        *([AveragedWeights()] if config.ema_momentum else []),
        keras.callbacks.ModelCheckpoint(
            os.path.join(write_dir, "best.keras"), monitor=monitor, mode=mode, save_best_only=True,
            initial_value_threshold=best_so_far,
        ),
        *([keras.callbacks.ReduceLROnPlateau(  # before the CSV logger, so history.csv records the rate
            monitor=monitor, mode=mode, factor=config.reduce_lr_factor, patience=config.reduce_lr_patience,
            min_lr=config.learning_rate / 100, verbose=1 if chief else 0,
        )] if config.reduce_lr_patience else []),
        keras.callbacks.CSVLogger(history_path, append=True),
        keras.callbacks.TensorBoard(os.path.join(write_dir, "logs")),
        ImageGrids(os.path.join(write_dir, "logs"), images, labels, seed=config.seed),
    ]
    callbacks += extra_callbacks
    if chief and config.verbose == 1:
        # Keras adds its progress bar last unless it is listed: listed here, its epoch line comes first.
        callbacks += [keras.callbacks.ProgbarLogger(), EpochSummary(config.epochs)]

    start = time.monotonic()
    model.fit(
        train_data,
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch,
        validation_data=valid_data,
        shuffle=False,  # the dataset shuffles itself, reproducibly
        callbacks=callbacks,
        verbose=config.verbose if chief else 0,
    )
    seconds = time.monotonic() - start

    model_path = os.path.join(write_dir, "model.keras")
    model.save(model_path)
    if not chief:
        shutil.rmtree(write_dir, ignore_errors=True)
        return model, {}

    history = read_history(history_path)
    best_val_elbo, _ = _best(history)
    _, best_epoch = _best(history, *selection_metric(config))
    metrics = {
        "dataset": config.dataset,
        "epochs": len(history),
        "train_seconds_this_session": round(seconds, 2),
        "nonfinite_steps_this_session": guard.total_skipped,
        "final": history[-1] if history else {},
        "best_val_elbo": best_val_elbo,
        "best_epoch": None if best_epoch is None else best_epoch + 1,  # the epoch saved as best.keras
        "history": history,
    }
    if config.eval_iw_samples:
        eval_data = data.get_dataset(config.dataset, config.eval_split, data_dir=config.data_dir,
                                     batch_size=config.eval_batch_size, with_labels=conditional)
        metrics["evaluation"] = evaluate_model(
            model, eval_data, iw_samples=config.eval_iw_samples, max_examples=config.eval_max_examples,
            seed=config.seed,
        )
        metrics["evaluation"]["split"] = config.eval_split
    with open(os.path.join(run_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    return model, metrics


# ------------------------------------------------------------------------------------------ CLI
_FLAGS = (  # (flag, config key, type, help)
    ("--dataset", "dataset", str, "dataset name (default sprites)"),
    ("--data-dir", "data_dir", str, "folder with canonical files or a tfds data directory"),
    ("--architecture", "architecture", str, "conv or mlp"),
    ("--variant", "variant", str, "model variant passed to keras_vae.build_vae (default vae)"),
    ("--latent-dim", "latent_dim", int, "size of the latent code"),
    ("--epochs", "epochs", int, "number of epochs"),
    ("--steps-per-epoch", "steps_per_epoch", int, "training steps per epoch (default: a full pass)"),
    ("--validation-steps", "validation_steps", int, "validation batches per epoch (default: all)"),
    ("--batch-size", "batch_size", int, "global batch size (split across replicas and workers)"),
    ("--learning-rate", "learning_rate", float, "learning rate"),
    ("--strategy", "strategy", str, "auto, default, one_device, mirrored, multi_worker or tpu"),
    ("--precision", "precision", str, "float32, mixed_bfloat16 or mixed_float16"),
    ("--seed", "seed", int, "seed for initialization, shuffling and noise"),
    ("--run-dir", "run_dir", str, "run directory (default runs/<dataset>)"),
    ("--backup-every-steps", "backup_every_steps", int, "back up every N steps (default: every epoch)"),
    ("--nan-policy", "nan_policy", str, "skip (count and skip non-finite steps) or stop (fail)"),
    ("--eval-iw-samples", "eval_iw_samples", int, "evaluate with K importance samples after training (0: no)"),
)


def add_commands(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train a VAE; resumes an interrupted run in the same run directory",
        description="Train a VAE. Flags override the --config file; --set KEY=VALUE sets any config key.",
    )
    parser.add_argument("--config", help="YAML config file (keys of training.config.TrainConfig)")
    for flag, key, kind, text in _FLAGS:
        parser.add_argument(flag, dest=key, type=kind, default=None, help=text)
    parser.add_argument("--jit-compile", dest="jit_compile", action=argparse.BooleanOptionalAction, default=None,
                        help="XLA-compile the train step")
    parser.add_argument("--dynamic-binarization", dest="dynamic_binarization", default=None,
                        action=argparse.BooleanOptionalAction, help="a fresh Bernoulli draw of grey pixels each epoch")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="set any config key (value parsed as YAML), e.g. --set model_options={hidden_units: [64]}")
    parser.set_defaults(func=run_train)


def config_from_args(args):
    """The `TrainConfig` of parsed ``keras-vae train`` arguments: config file, then --set, then flags."""
    overrides = dict(parse_assignment(a) for a in args.assignments)
    keys = [key for _, key, _, _ in _FLAGS] + ["jit_compile", "dynamic_binarization"]
    overrides.update({k: getattr(args, k) for k in keys if getattr(args, k) is not None})
    return load_config(args.config, overrides)


def run_train(args):
    import sys

    from keras_vae.training.callbacks import NonFiniteLossError

    config = config_from_args(args)
    try:
        _, metrics = train(config)
    except NonFiniteLossError as err:
        print(f"keras-vae train: error: {err}", file=sys.stderr)
        return 1
    if metrics:
        best = metrics["best_val_elbo"]
        print(f"run directory: {config.resolved_run_dir()}  best val ELBO: "
              f"{'n/a' if best is None else f'{best:.3f}'} nats (epoch {metrics['best_epoch']})")
        if "evaluation" in metrics:
            from keras_vae.training.evaluate import format_table

            print(format_table(metrics["evaluation"]))
    return 0
