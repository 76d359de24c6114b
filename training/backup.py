"""Training-state backups that survive a kill at any instant: two generations, each checked by its digest.

A generation is a weights file and a JSON metadata file that names the weights' SHA-256, the epoch to resume
at, and (for an epoch's end) that epoch's records: its ``history.csv`` row and its ``best.keras`` candidate.
Writing one: the weights and metadata go to temp files beside their final names and are synced; the current
generation is renamed to ``previous.*``; the new files are renamed into place. Whatever instant a kill hits,
at least one (metadata, weights) pair whose digests agree is left, and `BackupStore.restore` finds the newest.

Files in the backup folder: ``latest.keras`` + ``training_metadata.json`` (newest generation) and
``previous.keras`` + ``previous_metadata.json``. The weights go in ``.keras`` files (written with ``model.save``,
read with ``model.load_weights``) because Keras builds their HDF5 part in memory: h5py writing to a full disk
can crash the process. ``latest.weights.h5`` / ``previous.weights.h5`` generations (earlier keras-vae versions,
`keras.callbacks.BackupAndRestore`) are still restored.

Example:

>>> store = BackupStore("runs/sprites/backup")
>>> store.write(model.save, {"epoch": 3, "batch": 0})
>>> store.restore(model.load_weights)         # loads the newest good generation into model
{'epoch': 3, 'batch': 0, 'weights_sha256': '...'}
"""

import json
import os
import sys

from keras_vae.atomic_files import remove_abandoned
from keras_vae.run_lock import run_directory_of
from keras_vae.training.run_dir import RunWriteError, file_digest, fsync_path, remove_temporaries, write_beside

LATEST = ("latest.keras", "training_metadata.json")
PREVIOUS = ("previous.keras", "previous_metadata.json")
# Weights names of older backups: restored, moved to previous.*, never written.
OLD_WEIGHTS = {LATEST[0]: "latest.weights.h5", PREVIOUS[0]: "previous.weights.h5"}
WEIGHTS_NAMES = (LATEST[0], OLD_WEIGHTS[LATEST[0]], PREVIOUS[0], OLD_WEIGHTS[PREVIOUS[0]])


class StagedWeights:
    """Weights written and synced beside the backup, not yet a generation (see `BackupStore.stage`)."""

    def __init__(self, path):
        self.path = path
        self.digest = file_digest(path)


class BackupStore:
    """The two backup generations in ``folder`` (see the module docstring)."""

    def __init__(self, folder):
        self.folder = os.fspath(folder)

    def _path(self, name):
        return os.path.join(self.folder, name)

    def _read_metadata(self, name):
        """The metadata dict in ``name``, or None when it is missing or unreadable (half-written by an old version)."""
        try:
            with open(self._path(name)) as f:
                metadata = json.load(f)
        except (OSError, ValueError):
            return None
        return metadata if isinstance(metadata, dict) and "epoch" in metadata else None

    def candidates(self):
        """``(metadata, weights path, metadata path)`` whose digests agree, newest first.

        A metadata file without a digest (written by Keras' own callback) goes with the weights file beside it.
        """
        found = []
        for weights_name, metadata_name in (LATEST, PREVIOUS):
            metadata = self._read_metadata(metadata_name)
            if metadata is None:
                continue
            if "weights_sha256" not in metadata:
                for name in (weights_name, OLD_WEIGHTS[weights_name]):
                    if os.path.isfile(self._path(name)):
                        found.append((metadata, self._path(name), self._path(metadata_name)))
                        break
                continue
            for name in WEIGHTS_NAMES:
                path = self._path(name)
                if os.path.isfile(path) and file_digest(path) == metadata["weights_sha256"]:
                    found.append((metadata, path, self._path(metadata_name)))
                    break
        found.sort(key=lambda pair: pair[0].get("generation", 0), reverse=True)
        return found

    def has_files(self):
        return any(os.path.exists(self._path(n)) for n in (*WEIGHTS_NAMES, LATEST[1], PREVIOUS[1]))

    def restore(self, load_weights, stream=None):
        """Loads the newest good generation with ``load_weights(path)``; returns its metadata (None: no backup).

        A damaged newest generation is reported, naming its file, and the previous one is used. Raises
        ValueError naming the folder when files exist but no generation loads.
        """
        latest, stream = self._path(LATEST[0]), stream or sys.stderr
        last_error = None
        for metadata, path, _ in self.candidates():
            try:
                load_weights(path)
            except Exception as err:  # h5py raises OSError, KeyError, ValueError... for a damaged file
                last_error = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
                print(f"Backup {path!r} cannot be loaded ({type(err).__name__}: {err}); trying the previous one.",
                      file=stream)
                continue
            if path not in (latest, self._path(OLD_WEIGHTS[LATEST[0]])):
                print(f"Backup {latest!r} is damaged or incomplete (an interrupted write); resuming from "
                      f"{path!r} (epoch {metadata['epoch'] + 1}).", file=stream)
            return metadata
        if self.has_files():
            raise ValueError(
                f"No loadable backup in {self.folder!r}: latest.keras and previous.keras are damaged, do "
                "not match their metadata, or hold another network than the one built from the run's config (a "
                f"run written by another keras-vae version){f'; last error: {last_error}' if last_error else ''}. "
                "Delete that folder to restart the run from its beginning, or resume it with the version that "
                "wrote it."
            )
        return None

    def stage(self, save):
        """Writes the model with ``save(path)`` (a ``.keras`` path) to a synced temp file; `commit` makes it a
        generation."""
        os.makedirs(self.folder, exist_ok=True)
        return StagedWeights(write_beside(self._path(LATEST[0]), save))

    def commit(self, staged, metadata):
        """Makes ``staged`` the newest generation with ``metadata`` (a dict with ``epoch``; digest added here)."""
        newest = self.candidates()
        metadata = dict(metadata, weights_sha256=staged.digest,
                        generation=(newest[0][0].get("generation", 0) + 1) if newest else 1)
        latest_weights, latest_metadata = (self._path(n) for n in LATEST)
        temp_metadata = write_beside(latest_metadata, lambda path: _write_json(path, metadata))
        try:
            if newest:
                self._keep_as_previous(*newest[0])
            os.replace(staged.path, latest_weights)
            os.replace(temp_metadata, latest_metadata)
            fsync_path(self.folder)
        except OSError as err:
            raise self._write_error(err, temp_metadata, staged.path) from err
        self._remove_unreferenced_old_weights()
        return metadata

    def _remove_unreferenced_old_weights(self):
        """Deletes old-format weights files no generation uses any more (after a new one was committed)."""
        old = [p for p in map(self._path, OLD_WEIGHTS.values()) if os.path.isfile(p)]
        if not old:  # the usual case: no digests to compute on every commit
            return
        in_use = {path for _, path, _ in self.candidates()}
        for path in old:
            if path not in in_use:
                os.remove(path)

    def _keep_as_previous(self, metadata, weights_path, metadata_path):
        """Moves the good newest generation to the ``previous.*`` names, one rename at a time: after each
        step its metadata and weights still sit under names `candidates` pairs up."""
        previous_weights, previous_metadata = (self._path(n) for n in PREVIOUS)
        if weights_path.endswith(".h5"):  # an old-format generation keeps its format under the previous name
            previous_weights = self._path(OLD_WEIGHTS[PREVIOUS[0]])
        if weights_path != previous_weights:
            os.replace(weights_path, previous_weights)
        if metadata_path != previous_metadata:
            os.replace(metadata_path, previous_metadata)

    def _write_error(self, err, *temporaries):
        """A `RunWriteError` for a failed backup commit, after removing its temp files."""
        for path in temporaries:
            if os.path.exists(path):
                os.remove(path)
        return RunWriteError(f"Could not write a backup in {self.folder!r}: {err.strerror or err}. The previous "
                             "backup is unchanged; free space and rerun the same command to resume.")


    def write(self, save, metadata):
        """`stage` then `commit`: a new generation of the model ``save(path)`` writes."""
        return self.commit(self.stage(save), metadata)

    def clean(self):
        """Removes temp files an interrupted write left in the folder."""
        remove_temporaries(self.folder)

    def record_files(self):
        """Names of the run-directory files the generations' records name (best.keras candidates not yet applied)."""
        names = set()
        for _, metadata_name in (LATEST, PREVIOUS):
            best = ((self._read_metadata(metadata_name) or {}).get("records") or {}).get("best")
            if isinstance(best, dict) and isinstance(best.get("file"), str):
                names.add(best["file"])
        return names


def remove_leftovers(path):
    """Removes the temp files writers killed mid-write left where a command writes ``path`` (a file or a run).

    In a run directory (hold its `keras_vae.run_lock.RunLock`) every temp file goes except a best.keras
    candidate that a backup's records name, which the resumed ``train`` applies; elsewhere only ``path``'s own
    temp files whose writer process has ended.

    >>> with lock_of("runs/sprites"):
    ...     remove_leftovers("runs/sprites")
    """
    run_dir = run_directory_of(path)
    if run_dir is None:
        remove_abandoned(path)
    else:
        remove_temporaries(run_dir, keep=BackupStore(os.path.join(run_dir, "backup")).record_files())


def _write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f)

