"""Keras callbacks of a training run: the NaN guard, multi-worker-safe backups, image grids, epoch lines.

Example:

>>> guard = NonFiniteGuard(policy="skip")          # reads the model's skipped_steps metric
>>> backup = RunBackup("runs/x/backup", save_freq=100, records_dir="runs/x")
>>> best = BestCandidate("runs/x/best.keras", history_path="runs/x/history.csv")
>>> model.fit(data, epochs=3, callbacks=[guard, backup, best, EpochCommit(backup, best, "runs/x")])
>>> guard.total_skipped
0
"""

import math
import os
import shutil
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

import keras_vae
from keras_vae import NonFiniteLossError, image_grid  # noqa: F401  (raised here, and by the model)
from keras_vae.training.backup import BackupStore
from keras_vae.training.run_dir import (apply_epoch_records, best_of, file_digest, history_row, read_history,
                                        remove_temporaries, write_beside)



def _finite_weights(model):
    return all(np.all(np.isfinite(keras.ops.convert_to_numpy(w))) for w in model.weights)


class NonFiniteGuard(keras.callbacks.Callback):
    """Reports, limits and on request stops at training steps skipped as non-finite.

    The skipping itself is the model's (`keras_vae.VAE` skips a step whose loss or gradient is not finite
    on any replica, and counts it in its ``skipped_steps`` metric, which this callback reads).

    Args:
        policy: ``"skip"`` (count and carry on) or ``"stop"`` (raise `NonFiniteLossError`). Under
            mixed_float16 the first skips are the dynamic loss scale's own overflow checks, so ``stop`` waits
            until the scale has fallen to 1 or below.
        max_steps: with ``skip``, stop once more than this many steps were skipped (0: no limit).
        verbose: print a line for every skipped step.
    """

    def __init__(self, policy="skip", max_steps=100, verbose=True):
        super().__init__()
        if policy not in ("skip", "stop"):
            raise ValueError(f"policy must be 'skip' or 'stop', got {policy!r}")
        self.policy = policy
        self.max_steps = int(max_steps)
        self.verbose = verbose
        self.total_skipped = 0
        self.epoch_skipped = 0
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self.epoch_skipped = 0

    def on_train_batch_end(self, batch, logs=None):
        skipped = int(round(float((logs or {}).get("skipped_steps", 0.0)))) - self.epoch_skipped  # an epoch's sum
        if skipped > 0:
            self.epoch_skipped += skipped
            self._on_skipped(skipped, batch)

    def _dynamic_scale(self):
        optimizer = self.model.optimizer
        if isinstance(optimizer, keras_vae.NonFiniteSkipping) or not hasattr(optimizer, "dynamic_scale"):
            return None
        return float(keras.ops.convert_to_numpy(optimizer.dynamic_scale))

    def _on_skipped(self, skipped, batch):
        self.total_skipped += skipped
        scale = self._dynamic_scale()
        where = f"epoch {self._epoch + 1}, batch {batch + 1}"
        if self.verbose:
            print(f"\nNon-finite loss or gradient at {where}: update skipped "
                  f"({self.total_skipped} so far).", file=sys.stderr)
        if self.policy == "stop" and (scale is None or scale <= 1.0):
            self.model.stop_training = True
            raise NonFiniteLossError(
                f"Non-finite loss or gradient at {where} (nan_policy: stop). The update was not applied; "
                "the weights and checkpoints hold the last finite state. Lower the learning rate, clip "
                "gradients (clipnorm) or check the data for NaN/Inf."
            )
        if self.policy == "skip" and self.max_steps and self.total_skipped > self.max_steps:
            raise NonFiniteLossError(
                f"{self.total_skipped} training steps had non-finite losses or gradients (more than "
                f"max_nonfinite_steps={self.max_steps}): training diverged. Lower the learning rate or clip gradients."
            )

    def on_epoch_end(self, epoch, logs=None):
        if not _finite_weights(self.model):
            raise NonFiniteLossError(
                f"The model weights hold NaN or Inf after epoch {epoch + 1} (a layer state that the optimizer "
                "does not guard, e.g. batch-norm statistics, took a non-finite value). Nothing was saved."
            )


class RunBackup(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose backups survive a kill at any instant and commit each epoch.

    Backups are two digest-checked generations (`keras_vae.training.backup.BackupStore`): a damaged newest one
    falls back to the previous one with a message naming the file. At the end of an epoch the weights are
    staged here and committed by `EpochCommit` together with the epoch's history row and best.keras
    candidate, so a kill either keeps the whole epoch or redoes it; a restore finishes applying the records
    of the generation it loads (`keras_vae.training.run_dir.apply_epoch_records`).

    Every worker restores from ``backup_dir`` (the chief's; a shared file system is assumed); only the chief
    writes there and into ``records_dir``, the others write to ``scratch_dir`` (saving reads distributed
    variables, which all workers must do together). With a step-level ``save_freq`` it also backs up at
    the end of every epoch, and a step-level backup records the running epoch, also in the first epoch
    after a restore (Keras' own records epoch 0 there).
    """

    def __init__(self, backup_dir, save_freq="epoch", chief=True, scratch_dir=None, records_dir=None):
        super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=False)
        self.chief = chief
        self.records_dir = records_dir
        self.store = BackupStore(backup_dir)
        self._scratch = None if chief or scratch_dir else tempfile.mkdtemp(prefix="keras-vae-backup-")
        self.writer = self.store if chief else BackupStore(scratch_dir or self._scratch)
        self.staged = None

    def on_train_begin(self, logs=None):
        if not self.model.built:
            raise ValueError("RunBackup needs a built model: build it (call it on a batch) before fit().")
        if self.store.has_files() and self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        metadata = self.store.restore(self.model.load_weights)
        if metadata is not None:
            self.model._initial_epoch = metadata["epoch"]
        if self.chief:  # finish the restored epoch's commit, then drop what interrupted writes left
            if self.records_dir and metadata is not None:
                apply_epoch_records(self.records_dir, metadata.get("records"))
            self.store.clean()
            if self.records_dir:
                remove_temporaries(self.records_dir)

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch, self._last_batch_seen = epoch + 1, 0
        self.staged = self.writer.stage(self._save)
        if self.records_dir is None:  # no EpochCommit follows: the backup alone is the epoch's record
            self.commit_epoch(None)

    def commit_epoch(self, records):
        """Commits the weights staged at this epoch's end with ``records`` (see `EpochCommit`)."""
        self.writer.commit(self.staged, {"epoch": self._current_epoch, "batch": 0, "records": records})
        self.staged = None

    def _save(self, path):
        self.model.save(path)  # a .keras file: see keras_vae.training.backup on why not save_weights

    def _save_model(self):  # Keras calls this every save_freq batches
        self.writer.write(self._save, {"epoch": self._current_epoch, "batch": self._last_batch_seen})

    def on_train_end(self, logs=None):
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)


class BestCandidate(keras.callbacks.Callback):
    """Saves the model beside ``path`` (best.keras) when ``monitor`` improves on the run's best so far.

    The candidate becomes ``path`` when `EpochCommit` commits the epoch; the best so far comes from the
    run's committed history, so a resumed run keeps comparing against the epochs before it.
    """

    def __init__(self, path, monitor="val_elbo", mode="max", history_path=None):
        super().__init__()
        self.path, self.monitor, self.mode, self.history_path = path, monitor, mode, history_path
        self.best = None
        self.candidate = None

    def on_train_begin(self, logs=None):  # after RunBackup's restore, which completes the history
        self.best, _ = best_of(read_history(self.history_path), self.monitor, self.mode) if self.history_path else (
            None, None)

    def _improves(self, value):
        if value is None or not math.isfinite(value):
            return False
        return self.best is None or (value > self.best if self.mode == "max" else value < self.best)

    def on_epoch_end(self, epoch, logs=None):
        self.candidate = None
        value = (logs or {}).get(self.monitor)
        value = None if value is None else float(value)
        if self._improves(value):
            self.candidate = write_beside(self.path, self.model.save)
            self.best = value


class EpochCommit(keras.callbacks.Callback):
    """Commits an epoch (list it after every callback that writes logs): the backup `RunBackup` staged, the
    epoch's ``history.csv`` row and the `BestCandidate`, recorded together in one backup generation."""

    def __init__(self, backup, best, run_dir):
        super().__init__()
        self.backup, self.best, self.run_dir = backup, best, run_dir

    def on_epoch_end(self, epoch, logs=None):
        records = {"history_row": history_row(epoch, logs), "best": None}
        if self.best.candidate:
            records["best"] = {"file": os.path.basename(self.best.candidate),
                               "sha256": file_digest(self.best.candidate)}
        self.backup.commit_epoch(records)
        apply_epoch_records(self.run_dir, records)


class LearningRateLog(keras.callbacks.Callback):
    """Adds the optimizer's learning rate to an epoch's logs, as ReduceLROnPlateau does (list it before
    `EpochCommit`, which records the logs in history.csv): for a schedule, the rate after the epoch's last step."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class ImageGrids(keras.callbacks.Callback):
    """Writes a grid of prior samples and one of reconstructions (originals left, reconstructions right)
    to TensorBoard at the end of every epoch.

    Args:
        log_dir: TensorBoard directory (the grids go to ``log_dir/images``).
        images: a fixed batch of images to reconstruct; ``labels`` for a conditional model.
        seed: seed of the prior samples (the same codes every epoch, so the grids show progress).
    """

    def __init__(self, log_dir, images, labels=None, seed=0):
        super().__init__()
        self.log_dir = os.path.join(log_dir, "images")
        self.images = np.asarray(images)
        self.labels = None if labels is None else np.asarray(labels)
        self.seed = seed
        self._writer = None

    def grids(self):
        """(samples grid, reconstructions grid) as uint8 ``[H, W, C]`` arrays."""
        n = len(self.images)
        labels = self.labels if self.model.condition else None
        samples = self.model.sample(n, seed=self.seed, labels=labels)
        recon = keras.ops.convert_to_numpy(self.model.reconstruct(self.images, labels=labels))
        columns = math.ceil(math.sqrt(n))
        pairs = np.stack([self.images, recon], axis=1).reshape((-1, *self.images.shape[1:]))
        return image_grid(samples, columns=columns), image_grid(pairs, columns=2 * columns)

    def on_epoch_end(self, epoch, logs=None):
        samples, reconstructions = self.grids()
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default(step=epoch):
            tf.summary.image("samples", samples[np.newaxis])
            tf.summary.image("reconstructions", reconstructions[np.newaxis])
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()


class AveragedWeights(keras.callbacks.SwapEMAWeights):
    """`keras.callbacks.SwapEMAWeights` (swapping at each epoch end) that also ends an early-stopped run averaged.

    Validation, and every callback after this one at the end of an epoch, see the optimizer's moving
    average of the weights. Keras' callback finalizes the average only after the last planned epoch, so a
    run stopped earlier (`TimeLimit` listed before this callback) would end with the raw weights.
    """

    def __init__(self):
        super().__init__(swap_on_epoch=True)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.model.stop_training and epoch != self.params["epochs"] - 1:
            self._finalize_ema_values()


class TimeLimit(keras.callbacks.Callback):
    """Stops training at the end of the first epoch that ends after ``minutes`` of wall time."""

    def __init__(self, minutes):
        super().__init__()
        self.seconds = 60.0 * float(minutes)

    def on_train_begin(self, logs=None):
        self._start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        over = time.monotonic() - self._start >= self.seconds
        strategy = self.model.distribute_strategy
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            # Every worker must stop after the same epoch: stop when any worker's clock says so.
            votes = strategy.run(lambda: tf.constant(float(over)))
            over = float(strategy.reduce(tf.distribute.ReduceOp.MAX, votes, axis=None)) > 0
        if over:
            self.model.stop_training = True


class EpochSummary(keras.callbacks.Callback):
    """Prints one line per epoch: epoch, time, and every logged number."""

    def __init__(self, total_epochs, stream=None):
        super().__init__()
        self.total_epochs = total_epochs
        self.stream = stream or sys.stdout

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        parts = [f"epoch {epoch + 1}/{self.total_epochs}", f"{time.monotonic() - self._start:.1f}s"]
        parts += [f"{k} {float(v):.4g}" for k, v in sorted((logs or {}).items()) if np.ndim(v) == 0]
        print("  ".join(parts), file=self.stream, flush=True)
