"""The training runner: `train(config)` runs a `TrainConfig` and writes its run directory.

The run directory (``config.run_dir``, default ``runs/<dataset>``) holds ``config.yaml`` (the
resolved config), ``logs/`` (TensorBoard scalars, plus sample and reconstruction grids each epoch),
``best.keras`` (best validation ELBO), ``model.keras`` (final), ``history.csv``, ``metrics.json`` and
``backup/`` (`keras_vae.training.callbacks.RunBackup`: the same command resumes an interrupted run).
The config is validated and the model built before anything is written, so a failed start leaves the
folder as it was; see `keras_vae.training.run_dir` for how each file is written. While it runs, the
run directory's lock (`keras_vae.run_lock`, a ``.lock`` file) makes a second writer fail at once.

Example:

>>> from keras_vae.training.config import load_config
>>> model, metrics = train(load_config("configs/sprites_quick.yaml", {"epochs": 1}))
>>> metrics["best_val_elbo"]
-160.2
"""

import contextlib
import dataclasses
import os
import shutil
import tempfile
import time

from keras_vae.precision import float32_compute
from keras_vae.run_lock import RunLock
from keras_vae.training import run_dir as files
from keras_vae.training.build import (build_resolved_model, likelihood_note, load_initial_weights, make_optimizer,
                                      resolve_config)
from keras_vae.training.config import TrainConfig


def selection_metric(config):
    """``(metric, mode)`` that picks best.keras and drives ``reduce_lr_patience``: the validation value of the
    bound being trained (the ELBO, or with ``iw_train_samples`` > 1 the importance-weighted bound in val_loss)."""
    return ("val_loss", "min") if config.iw_train_samples > 1 else ("val_elbo", "max")


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


def _check_jit(config, strategy):
    import tensorflow as tf

    on_cpu = not tf.config.list_logical_devices("GPU") and not isinstance(strategy, tf.distribute.TPUStrategy)
    if config.jit_compile and config.architecture == "conv" and on_cpu:
        # Measured in benchmarks/peers.py and train_throughput.py (BENCHMARKS.md): with XLA's CPU convolutions
        # the conv training step runs at 0.29x to 0.75x of its speed without, so the option could only cost time.
        raise ValueError(
            "jit_compile with architecture 'conv' on a machine without a GPU or TPU is refused: with XLA's CPU "
            "convolutions the conv training step runs at 0.29x to 0.75x of its speed without it (BENCHMARKS.md). "
            "Leave jit_compile off here, or use it with architecture 'mlp' (where it is not slower)."
        )

    if config.jit_compile and isinstance(strategy, tf.distribute.MirroredStrategy) and (
        strategy.num_replicas_in_sync > 1
    ):
        raise ValueError(
            f"jit_compile with {type(strategy).__name__} over {strategy.num_replicas_in_sync} devices is not "
            "supported: Keras XLA-compiles every replica's step into one program, which cannot reach variables "
            "on other devices. Use jit_compile with one device per process (default, one_device, or "
            "multi_worker with one device per worker)."
        )


def _compiled_model(config, strategy):
    """The run's model, built, warm-started and compiled in ``strategy``'s scope."""
    import tensorflow as tf

    with strategy.scope():
        model = build_resolved_model(config)
        if config.init_weights:  # a warm start; a backup of this run, if any, still wins (restored in fit)
            load_initial_weights(model, config.init_weights)
        model.compile(optimizer=make_optimizer(config), jit_compile=config.jit_compile,
                      steps_per_execution=config.steps_per_execution)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        _rank1_step_logs(model)
    return model


def _datasets(config, strategy, with_labels, train_data=None):
    """(train, valid) datasets of the run: batches of the global batch size, labelled when ``with_labels``."""
    import tensorflow as tf

    from keras_vae.training import data

    common = dict(data_dir=config.data_dir, batch_size=config.batch_size, with_labels=with_labels,
                  source_options=data.source_options_of(config))
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
    return train_data, valid_data


def _run_callbacks(config, model, run_dir, write_dir, chief, guard):
    """The run's own callbacks, in the order their epoch ends must run (see the comments)."""
    import keras

    from keras_vae.training import data
    from keras_vae.training.callbacks import (AveragedWeights, BestCandidate, EpochCommit, ImageGrids,
                                              LearningRateLog, RunBackup, TimeLimit)

    monitor, mode = selection_metric(config)
    images, labels = data.load_examples(config.dataset, "valid", config.data_dir, count=config.image_grid_size,
                                        with_labels=bool(model.condition), source_options=data.source_options_of(config))
    backup = RunBackup(os.path.join(run_dir, "backup"), save_freq=config.backup_every_steps or "epoch", chief=chief,
                       scratch_dir=None if chief else os.path.join(write_dir, "backup"), records_dir=write_dir)
    best = BestCandidate(os.path.join(write_dir, files.BEST_FILE), monitor, mode,
                         history_path=os.path.join(write_dir, files.HISTORY_FILE))
    return [
        guard,  # first: it raises before anything non-finite is written
        backup,  # stages the raw weights; before the averaged weights are swapped in
        # Before the averaged weights: it must know at the end of an epoch whether training stops there.
        *([TimeLimit(config.max_train_minutes)] if config.max_train_minutes else []),
        *([AveragedWeights()] if config.ema_momentum else []),  # validation and best.keras see the average
        best,
        *([keras.callbacks.ReduceLROnPlateau(  # before the commit, so history.csv records the rate
            monitor=monitor, mode=mode, factor=config.reduce_lr_factor, patience=config.reduce_lr_patience,
            min_lr=config.learning_rate / 100, verbose=1 if chief else 0,
        )] if config.reduce_lr_patience else []),
        *([LearningRateLog()] if config.learning_rate_schedule != "constant" else []),  # before the commit
        keras.callbacks.TensorBoard(os.path.join(write_dir, "logs")),
        ImageGrids(os.path.join(write_dir, "logs"), images, labels, seed=config.seed),
        EpochCommit(backup, best, write_dir),  # last: the epoch's backup, history row and best.keras together
    ]


def _metrics(config, history, seconds, guard):
    import keras

    best_val_elbo, _ = files.best_of(history)
    _, best_epoch = files.best_of(history, *selection_metric(config))
    return {
        "dataset": config.dataset,
        "epochs": len(history),
        "train_seconds_this_session": round(seconds, 2),
        "precision": keras.mixed_precision.global_policy().name,  # "auto" resolved
        "skipped_steps_this_session": guard.total_skipped,
        "final": history[-1] if history else {},
        "best_val_elbo": best_val_elbo,
        "best_epoch": None if best_epoch is None else best_epoch + 1,  # the epoch saved as best.keras
        "history": history,
    }


def _fit_sampler(config, model, with_labels):
    """Fits ``config.fit_sampler`` to codes of a seeded random subset of the train split (kept in the model)."""
    from keras_vae.training.data import load_examples, source_options_of

    images, labels = load_examples(config.dataset, "train", data_dir=config.data_dir,
                                   count=config.fit_sampler_examples, with_labels=with_labels, shuffle=True,
                                   seed=config.seed, source_options=source_options_of(config))
    model.fit_sampler(images, labels, kind=config.fit_sampler, seed=config.seed, dataset=config.dataset,
                      **config.fit_sampler_options)


def _fit_sampler_into_best(config, model, run_dir, with_labels):
    """best.keras carries the run's sampler too: the final model's when their weights are the same, else one
    fitted to best.keras' own codes (a sampler fits the codes of the encoder it was fitted with)."""
    import numpy as np

    from keras_vae.saving import load_vae

    path = os.path.join(run_dir, files.BEST_FILE)
    if not os.path.isfile(path):
        return
    best = load_vae(path)
    same = len(best.trainable_variables) == len(model.trainable_variables) and all(
        np.array_equal(a, b) for a, b in zip(best.trainable_variables, model.trainable_variables))
    if same:  # the final model's sampler, without fitting the same codes again (about 6 s for make train's)
        best = model
    else:
        _fit_sampler(config, best, with_labels)
    files.atomic_write(path, best.save)


def _sample_quality(config, model):
    """Fréchet distance, precision and recall of samples from the prior and from ``config.fit_sampler``."""
    from keras_vae.training.evaluate import evaluate_sample_quality
    from keras_vae.training.feature_networks import get_feature_extractor

    features = get_feature_extractor(config.dataset, data_dir=config.data_dir, verbose=0)
    result = {}
    for sampler in ("prior",) + ((config.fit_sampler,) if config.fit_sampler else ()):
        scores = evaluate_sample_quality(model, config.dataset, config.eval_split, data_dir=config.data_dir,
                                         sampler=sampler, num_samples=config.eval_sample_quality, seed=config.seed,
                                         features=features)
        result.update({f"{key}_{sampler}": scores[key] for key in ("frechet_distance", "precision", "recall")})
    result.update(sample_quality_examples=scores["sample_quality_examples"],
                  feature_network_accuracy=scores["feature_network_accuracy"])
    return result


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
        RunWriteError: a file of the run could not be written (disk full); the previous files stay.
        RunLockedError: another process writes the run directory (`keras_vae.run_lock`); nothing was written.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"train() takes a TrainConfig, got {type(config).__name__}.")
    config = dataclasses.replace(config)  # resolved below (image shape, dataset options); the caller's stays
    from keras_vae.training import strategies

    strategy = strategies.make_strategy(config.strategy)  # first: multi-worker needs it before other TF work
    import keras

    from keras_vae.training import data, image_folder

    _check_jit(config, strategy)
    policy = strategies.set_precision(config.precision)
    keras.utils.set_random_seed(config.seed)
    likelihood = likelihood_note(config)
    config = resolve_config(config)  # a folder's checks run here: before anything is written
    chief = strategies.is_chief(strategy)
    if chief and config.verbose:
        if data.source_kind(config.dataset) == "folder":
            print(image_folder.scan_folder(config.dataset, data.source_options_of(config)).summary())
        if likelihood:
            print(likelihood)
        if config.precision == "auto":
            print(f"precision auto: {policy}")
    run_dir = config.resolved_run_dir()
    # One writer per run directory: the chief holds its lock; the other workers write only scratch files.
    with (RunLock(run_dir) if chief else contextlib.nullcontext()):
        return _train_holding_the_lock(config, strategy, chief, run_dir, train_data, callbacks)


def _train_holding_the_lock(config, strategy, chief, run_dir, train_data, callbacks):
    """`train` from the model's build on (the chief holds the run directory's lock)."""
    import keras

    from keras_vae.training import data, image_folder
    from keras_vae.training.callbacks import EpochSummary, NonFiniteGuard

    folder = data.source_kind(config.dataset) == "folder"
    if chief and os.path.isdir(run_dir):
        files.check_resumable(config, run_dir)
    # Everything that can refuse this config runs before the first write, so a failed start changes nothing.
    model = _compiled_model(config, strategy)
    with_labels = bool(model.condition)
    if with_labels and data.dataset_info(config.dataset, config.data_dir, data.source_options_of(config)).label_kind is None:
        raise ValueError(f"variant {config.variant!r} needs labels; dataset {config.dataset!r} has none.")
    train_data, valid_data = _datasets(config, strategy, with_labels, train_data)

    # Workers other than the chief write everything to a scratch directory that is removed at the end.
    write_dir = run_dir if chief else tempfile.mkdtemp(prefix="keras-vae-worker-")
    if chief:
        os.makedirs(run_dir, exist_ok=True)
        files.save_config(config, os.path.join(run_dir, files.CONFIG_FILE))
    guard = NonFiniteGuard(config.nan_policy, config.max_nonfinite_steps, verbose=chief)
    all_callbacks = _run_callbacks(config, model, run_dir, write_dir, chief, guard) + list(callbacks)
    if chief and config.verbose == 1:
        # Keras adds its progress bar last unless it is listed: listed here, its epoch line comes first.
        all_callbacks += [keras.callbacks.ProgbarLogger(), EpochSummary(config.epochs)]

    start = time.monotonic()
    with image_folder.bad_image_named(config.dataset if folder else None, data.source_options_of(config)):
        model.fit(train_data, epochs=config.epochs, steps_per_epoch=config.steps_per_epoch, validation_data=valid_data,
                  shuffle=False,  # the dataset shuffles itself, reproducibly
                  callbacks=all_callbacks, verbose=config.verbose if chief else 0)
    seconds = time.monotonic() - start

    if config.fit_sampler:
        _fit_sampler(config, model, with_labels)
    files.atomic_write(os.path.join(write_dir, files.MODEL_FILE), model.save)
    if chief and config.fit_sampler:
        _fit_sampler_into_best(config, model, run_dir, with_labels)
    if not chief:
        shutil.rmtree(write_dir, ignore_errors=True)
        return model, {}
    metrics = _metrics(config, files.read_history(os.path.join(run_dir, files.HISTORY_FILE)), seconds, guard)
    with float32_compute(model):  # the figures in float32 after mixed-precision training
        _evaluate(config, model, metrics, with_labels)
    files.write_metrics(run_dir, metrics)
    return model, metrics


def _evaluate(config, model, metrics, with_labels):
    """The importance-sampled bound and sample quality at the end of training, into ``metrics``."""
    from keras_vae.training import data
    from keras_vae.training.evaluate import evaluate_model

    if config.eval_iw_samples:
        eval_data = data.get_dataset(config.dataset, config.eval_split, data_dir=config.data_dir,
                                     batch_size=config.eval_batch_size, with_labels=with_labels,
                                     source_options=data.source_options_of(config))
        metrics["evaluation"] = evaluate_model(
            model, eval_data, iw_samples=config.eval_iw_samples, max_examples=config.eval_max_examples,
            seed=config.seed,
        )
        metrics["evaluation"]["split"] = config.eval_split
    if config.eval_sample_quality:
        metrics.setdefault("evaluation", {"split": config.eval_split}).update(_sample_quality(config, model))
