"""Files written atomically: beside their final name, synced to disk, then renamed into place.

A reader, or a process restarted after a kill or a full disk, finds the previous file or the new one,
never a truncated one. A temporary file is named ``.tmp-<pid>-<random>-<name>``: hidden, ending with the
final name (Keras checks the ``.keras`` suffix), and carrying its writer's pid so that a clean-up can
tell a killed writer's leftovers from a running writer's files (`remove_abandoned`,
`keras_vae.export.layout.clean_stale`; `remove_temporaries` under a run's lock). A failed write raises
`AtomicWriteError` naming the file.

Example:

>>> atomic_write("runs/x/model.keras", model.save)      # model.save(temp_path), then the rename
>>> atomic_write_text("runs/x/metrics.json", "{}")
>>> temp = write_beside("runs/x/best.keras", model.save)  # in two steps: written and synced now...
>>> replace(temp, "runs/x/best.keras")                   # ...renamed into place later
"""

import os
import re
import uuid

TEMP_PREFIX = ".tmp-"


class AtomicWriteError(OSError):
    """A file could not be written (disk full, read-only...); its previous version is intact.

    ``errno`` is the underlying error's (ENOSPC stays recognizable) and ``reason`` its text.
    """


def temporary_path(path):
    """A unique path beside ``path`` that ends with its file name.

    >>> temporary_path("runs/x/model.keras")
    'runs/x/.tmp-4242-1f0c9a2b-model.keras'
    """
    folder, name = os.path.split(os.fspath(path))
    return os.path.join(folder, f"{TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-{name}")


def fsync_path(path):
    """Flushes a file, or a folder's entries, to disk (a rename is only durable once its folder is synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_error(path, err):
    reason = err.strerror or str(err)
    error = AtomicWriteError(
        f"Could not write {os.path.basename(path)!r} in {os.path.dirname(os.path.abspath(path))!r}: {reason}. "
        "The file's previous version is unchanged; free space (or fix permissions) and rerun the same command."
    )
    error.errno = err.errno
    error.reason = reason
    return error


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def write_beside(path, write):
    """Calls ``write(temp_path)`` for a temp file beside ``path``, syncs it and returns its path.

    On any failure the temp file is removed; an OSError becomes `AtomicWriteError` naming ``path``.
    HDF5 files are refused: h5py meets a full disk in destructors, which print tracebacks or crash the
    process (a segfault, seen when the disk filled during a weights write); write a ``.keras`` file
    instead, whose HDF5 part Keras builds in memory and Python's zipfile writes, so a failed write is
    one OSError.
    """
    if os.fspath(path).endswith((".h5", ".hdf5")):
        raise ValueError(f"{os.path.basename(path)!r}: HDF5 files are not written through atomic_write (a full disk "
                         "can crash h5py); save a .keras file instead.")
    temp = temporary_path(path)
    try:
        write(temp)
        fsync_path(temp)
    except BaseException as err:
        _remove_quietly(temp)
        if isinstance(err, OSError):
            raise _write_error(path, err) from err
        raise
    return temp


def replace(temp, path):
    """Renames a synced ``temp`` file to ``path`` and syncs the folder (the commit of `atomic_write`)."""
    try:
        os.replace(temp, path)
        fsync_path(os.path.dirname(os.path.abspath(path)))
    except OSError as err:
        _remove_quietly(temp)
        raise _write_error(path, err) from err


def atomic_write(path, write):
    """Writes ``path`` through ``write(temp_path)`` beside it, then renames: readers see the old or the new file.

    Raises `AtomicWriteError` (``path`` untouched) when writing fails with an OSError.

    >>> atomic_write("runs/x/model.keras", model.save)
    """
    path = os.fspath(path)
    replace(write_beside(path, write), path)


def atomic_write_text(path, text):
    """`atomic_write` of a text file.

    >>> atomic_write_text("saved_models/vae/models.config", config_text)
    """

    def write(temp):
        with open(temp, "w") as f:
            f.write(text)

    atomic_write(path, write)


def remove_temporaries(folder, keep=()):
    """Removes the temp files an interrupted `atomic_write` left in ``folder``, except the names in ``keep``.

    Call it holding the folder's lock (`keras_vae.run_lock.RunLock`): running writers' files go too.
    """
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.startswith(TEMP_PREFIX) and name not in keep:
                _remove_quietly(os.path.join(folder, name))


def process_alive(pid):
    """Whether process ``pid`` runs on this host (another user's process counts as running).

    >>> process_alive(os.getpid())
    True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):  # not a pid at all
        return False
    return True


def remove_abandoned(path):
    """Removes the temp files whose writer process has ended (killed mid-write) of the file ``path``, or of any
    file in the folder ``path``; returns their names.

    Safe without a lock on one host: a running writer's temp file names its live pid.

    >>> remove_abandoned("exports/model.keras")
    ['.tmp-4242-1f0c9a2b-model.keras']
    """
    path = os.path.abspath(os.fspath(path))
    folder, name = (path, None) if os.path.isdir(path) else os.path.split(path)
    ending = re.escape(name) if name else ".+"
    pattern = re.compile(rf"^{re.escape(TEMP_PREFIX)}(\d+)-[0-9a-f]{{8}}-{ending}$")
    removed = []
    for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
        match = pattern.match(entry)
        if match and int(match.group(1)) != os.getpid() and not process_alive(int(match.group(1))):
            _remove_quietly(os.path.join(folder, entry))
            removed.append(entry)
    return removed
