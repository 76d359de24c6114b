"""One writer per run directory: an exclusive lock file, ``<run_dir>/.lock``, naming its holder.

``keras-vae train`` (and `keras_vae.training.train.train`), ``fit-sampler`` into a run, ``evaluate --out``
into a run and ``export`` of a run hold the lock while they run; readers (``sample``, ``plot``, ``score``,
``studio``) take none. The lock is an ``fcntl.flock`` on the file, which the kernel drops when its process
ends however it ends, so a killed writer never blocks the next one; the file holds the holder's pid, host,
command and start time (JSON) for the message a second writer gets. The holder removes the file when it
releases the lock (normal end, exception, Ctrl-C, SIGTERM or SIGHUP). A file left by a process that died
on this host is taken over with a one-line message; one written on another host is reported, not taken,
since its pid cannot be checked from here (delete the file once that process has ended). Where the file
system has no ``flock``, the pid in the file decides.

Example:

>>> with RunLock("runs/sprites"):        # RunLockedError if another writer holds it
...     write_the_run()
>>> with lock_of("runs/sprites/model.keras"):   # the lock of the run a file is in; none outside a run
...     rewrite_the_model()
"""

import contextlib
import errno
import fcntl
import json
import os
import shlex
import signal
import socket
import sys
import threading
import time

from keras_vae.atomic_files import process_alive
from keras_vae.run_config import RUN_CONFIG_FILENAME

LOCK_FILE = ".lock"
MAX_COMMAND_CHARS = 300
HOLDER_WAIT_SECONDS = 2.0  # a holder writes its record right after taking the lock
_HELD = set()  # locks this process holds, released by the signal handlers
_PREVIOUS_HANDLERS = {}


class RunLockedError(OSError):
    """Another writer holds the run directory's lock (or one from another host that this host cannot check)."""


def current_command():
    """This process's command line, short and on one line (what a lock records of its holder).

    >>> current_command()
    'keras-vae train --config sprites_quick'
    """
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    if len(argv) > 1 and os.path.basename(argv[1]) == "keras-vae":  # the console script, run by its interpreter
        argv = argv[1:]
    argv[0] = os.path.basename(argv[0])
    text = " ".join(shlex.join(argv).split())
    return text if len(text) <= MAX_COMMAND_CHARS else text[: MAX_COMMAND_CHARS - 3] + "..."


def run_directory_of(path):
    """The run directory ``path`` is, or is a file in (a folder with a config.yaml), or None.

    >>> run_directory_of("runs/sprites/eval.json")
    'runs/sprites'
    """
    path = os.fspath(path)
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    return folder if os.path.isfile(os.path.join(folder, RUN_CONFIG_FILENAME)) else None


def lock_of(path, command=None, optional=False):
    """A `RunLock` of the run directory ``path`` is in, or a context that locks nothing outside a run."""
    folder = run_directory_of(path)
    return RunLock(folder, command, optional) if folder else contextlib.nullcontext()


def describe(holder):
    """``pid 4242 on host 'gpu1' (keras-vae train ...), since 2026-01-02T03:04:05Z`` for a lock file's record."""
    if not holder:
        return "a process that has not written its name yet"
    return (f"pid {holder.get('pid')} on host {holder.get('host')!r} ({holder.get('command') or 'command unknown'}), "
            f"since {holder.get('since') or 'an unknown time'}")


class RunLock:
    """The exclusive lock of ``run_dir`` (created if missing; removed again at release if it was and is empty).

    Use it as a context manager, or `acquire` / `release`. ``command`` is what the lock file records
    (default: this process's command line). With ``optional``, a run directory this process cannot write
    (read-only, another user's) is used without the lock: a command that only reads the run keeps working there.
    """

    def __init__(self, run_dir, command=None, optional=False):
        self.run_dir = os.fspath(run_dir)
        self.path = os.path.join(self.run_dir, LOCK_FILE)
        self.command = command or current_command()
        self.optional = optional
        self._fd = None
        self._pid = None
        self._created = []

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    @property
    def held(self):
        return self._fd is not None

    def acquire(self):
        """Takes the lock, or raises `RunLockedError` naming the holder and the run directory."""
        if self._fd is not None:
            raise RuntimeError(f"The lock of {self.run_dir!r} is already held by this RunLock.")
        self._created = _make_folder(self.run_dir)
        try:
            self._fd = self._take()
        except OSError as err:
            _remove_empty(self._created)
            if self.optional and err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                return self  # a run this process cannot write: nothing of it is written here
            raise
        except BaseException:
            _remove_empty(self._created)
            raise
        self._pid = os.getpid()
        _HELD.add(self)
        _install_signal_handlers()
        return self

    def release(self):
        """Removes the lock file and drops the lock (nothing happens when it is not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        _HELD.discard(self)
        try:
            # Unlinked while still locked, so no other process can take the old file; a forked child leaves it.
            if os.getpid() == self._pid and _same_file(fd, self.path):
                os.unlink(self.path)
        except OSError:
            pass
        os.close(fd)
        _remove_empty(self._created)
        if not _HELD:
            _restore_signal_handlers()

    def _take(self):
        for _ in range(20):  # a holder releasing at this moment unlinks the file this one opened: open it again
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                locked = _flock(fd)
                if locked is False:
                    raise self._busy(_read_holder(fd, wait=True))
                if not _same_file(fd, self.path):
                    os.close(fd)
                    continue
                self._check_previous(_read_holder(fd), flocked=locked)
                _write_holder(fd, self.command)
                return fd
            except BaseException:
                os.close(fd)
                raise
        raise RunLockedError(f"Could not lock run directory {self.run_dir!r}: its lock file {self.path!r} keeps "
                             "being replaced by other processes.")

    def _busy(self, holder):
        return RunLockedError(
            f"Run directory {self.run_dir!r} is in use by another writer: {describe(holder)}. Wait until it "
            f"ends, or write elsewhere (its lock file: {self.path!r})."
        )

    def _check_previous(self, holder, flocked):
        """Refuses a record this host cannot prove dead; reports taking over a dead holder's record."""
        if not holder:
            return  # a holder that died before writing its record, or a fresh file
        if holder.get("host") != socket.gethostname():
            raise RunLockedError(
                f"Run directory {self.run_dir!r} is locked by {describe(holder)}; this host cannot check whether "
                f"that process still runs. Once it has ended, delete {self.path!r} and rerun."
            )
        pid = holder.get("pid")
        running = isinstance(pid, int) and pid > 0 and pid != os.getpid() and process_alive(pid)
        if running and not flocked:  # no flock on this file system: the pid is all there is to go by
            raise self._busy(holder)
        print(f"Took over the lock of run directory {self.run_dir!r} left by {describe(holder)}, which "
              f"{'no longer holds it' if running else 'is no longer running'}.", file=sys.stderr, flush=True)


def _flock(fd):
    """True when this process now holds the flock, False when another does, None without flock support."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as err:
        if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return None
        raise
    return True


def _same_file(fd, path):
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _read_holder(fd, wait=False):
    """The lock file's record (a dict), or {}; with ``wait``, waits briefly for a holder still writing it."""
    deadline = time.monotonic() + (HOLDER_WAIT_SECONDS if wait else 0)
    while True:
        try:
            holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        except (OSError, ValueError):
            holder = None
        if isinstance(holder, dict) or time.monotonic() >= deadline:
            return holder if isinstance(holder, dict) else {}
        time.sleep(0.05)


def _write_holder(fd, command):
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
              "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    data = (json.dumps(record) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _make_folder(folder):
    """Creates ``folder``; returns the folders this made, innermost first."""
    missing, current = [], os.path.abspath(folder)
    while not os.path.isdir(current) and os.path.dirname(current) != current:
        missing.append(current)
        current = os.path.dirname(current)
    os.makedirs(folder, exist_ok=True)
    return missing


def _remove_empty(folders):
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            return


def _on_signal(signum, frame):
    """Releases the held locks, then ends the process as the signal's default action would."""
    for lock in list(_HELD):
        lock.release()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_signal_handlers():
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers; the kernel still drops the flock at exit
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signum not in _PREVIOUS_HANDLERS and signal.getsignal(signum) == signal.SIG_DFL:
            _PREVIOUS_HANDLERS[signum] = signal.signal(signum, _on_signal)


def _restore_signal_handlers():
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, previous in list(_PREVIOUS_HANDLERS.items()):
        if signal.getsignal(signum) is _on_signal:
            signal.signal(signum, previous)
        del _PREVIOUS_HANDLERS[signum]
