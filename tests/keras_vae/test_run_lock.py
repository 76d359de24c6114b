"""`keras_vae.run_lock`: one writer per run directory, held by real processes; the clean-up of killed writers'
temp files (`keras_vae.atomic_files.remove_abandoned`, `keras_vae.training.backup.remove_leftovers`)."""

import errno
import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from keras_vae import run_lock
from keras_vae.atomic_files import remove_abandoned, remove_temporaries, temporary_path
from keras_vae.run_lock import LOCK_FILE, RunLock, RunLockedError

TIMEOUT = 60
# Holds the lock of argv[1] until its stdin closes (or a signal ends it); prints "held" once it has it.
HOLDER = """
import sys
from keras_vae.run_lock import RunLock
with RunLock(sys.argv[1], command="keras-vae train --run-dir x"):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def holder(tmp_path):
    """Starts a process holding the lock of a run directory; yields (process, run_dir)."""
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "held", proc.stderr.read()
        yield proc, run
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=TIMEOUT)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()


def _dead_pid():
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def _write_record(run, **record):
    os.makedirs(run, exist_ok=True)
    with open(os.path.join(run, LOCK_FILE), "w") as f:
        json.dump({"command": "keras-vae train", "since": "2026-01-02T03:04:05Z", **record}, f)


def test_the_lock_file_names_its_holder_and_goes_at_release(tmp_path):
    run = tmp_path / "runs" / "new"
    with RunLock(run, command="keras-vae train --epochs 2") as lock:
        record = json.loads((run / LOCK_FILE).read_text())
        assert lock.held
    assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
    assert record["command"] == "keras-vae train --epochs 2" and record["since"].endswith("Z")
    assert not lock.held
    assert not (tmp_path / "runs").exists()  # folders made for the lock and left empty are removed again


def test_a_second_writer_fails_at_once_naming_the_holder(holder):
    proc, run = holder
    with pytest.raises(RunLockedError) as caught:
        RunLock(run).acquire()
    message = str(caught.value)
    for part in (f"pid {proc.pid}", repr(socket.gethostname()), "keras-vae train --run-dir x", "since 20",
                 repr(str(run))):
        assert part in message, message
    assert isinstance(caught.value, OSError)  # the CLI reports it as a user error, exit status 2
    proc.stdin.close()
    assert proc.wait(timeout=TIMEOUT) == 0
    assert not (run / LOCK_FILE).exists()
    with RunLock(run):  # free again
        pass


def test_the_lock_of_a_killed_holder_is_taken_over_with_one_line(holder, capfd):
    proc, run = holder
    proc.kill()
    proc.wait(timeout=TIMEOUT)
    assert json.loads((run / LOCK_FILE).read_text())["pid"] == proc.pid  # left behind by the kill
    capfd.readouterr()
    with RunLock(run):
        assert json.loads((run / LOCK_FILE).read_text())["pid"] == os.getpid()
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"pid {proc.pid}" in lines[0] and "is no longer running" in lines[0], lines


def test_a_stale_lock_file_with_a_dead_pid_is_taken_over(tmp_path, capfd):
    pid = _dead_pid()
    _write_record(tmp_path, pid=pid, host=socket.gethostname())
    with RunLock(tmp_path):
        pass
    err = capfd.readouterr().err
    assert f"Took over the lock of run directory {str(tmp_path)!r} left by pid {pid}" in err
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_lock_from_another_host_is_reported_not_taken(tmp_path):
    _write_record(tmp_path, pid=4242, host="not-" + socket.gethostname())
    with pytest.raises(RunLockedError, match=r"pid 4242 on host 'not-.*this host cannot check.*delete .*\.lock"):
        RunLock(tmp_path).acquire()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == 4242  # left for its owner


@pytest.mark.parametrize("how", ["exception", "SIGTERM", "SIGINT"])
def test_the_lock_is_released_on_an_exception_and_on_signals(tmp_path, how):
    run = tmp_path / "run"
    if how == "exception":
        with pytest.raises(ZeroDivisionError):
            with RunLock(run):
                1 / 0
        assert not (run / LOCK_FILE).exists()
        return
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        proc.send_signal(getattr(signal, how))
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if how == "SIGTERM":
        assert proc.returncode == -signal.SIGTERM  # still ends as SIGTERM ends a process
    else:
        assert "KeyboardInterrupt" in err
    assert not (run / LOCK_FILE).exists()


def test_without_flock_the_pid_in_the_file_decides(tmp_path, monkeypatch, holder):
    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(run_lock.fcntl, "flock", no_flock)
    proc, run = holder
    with pytest.raises(RunLockedError, match=f"pid {proc.pid}"):  # alive on this host
        RunLock(run).acquire()
    _write_record(tmp_path / "stale", pid=_dead_pid(), host=socket.gethostname())
    with RunLock(tmp_path / "stale"):
        assert json.loads((tmp_path / "stale" / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_lock_of_locks_only_run_directories(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("dataset: sprites\n")
    for path in (tmp_path / "run", tmp_path / "run" / "eval.json"):
        assert run_lock.run_directory_of(path) == str(tmp_path / "run")
        with run_lock.lock_of(path):
            assert (tmp_path / "run" / LOCK_FILE).exists()
    assert run_lock.run_directory_of(tmp_path / "eval.json") is None
    with run_lock.lock_of(tmp_path / "eval.json"):  # outside a run: nothing is locked
        assert not (tmp_path / LOCK_FILE).exists() and not (tmp_path / "run" / LOCK_FILE).exists()
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_current_command_is_one_short_line(monkeypatch):
    monkeypatch.setattr(sys, "orig_argv", ["/venv/bin/python", "/venv/bin/keras-vae", "train", "--set", "a=b c"])
    assert run_lock.current_command() == "keras-vae train --set 'a=b c'"
    monkeypatch.setattr(sys, "orig_argv", ["python", "-c", "import x\nrun()", *["--flag"] * 200])
    command = run_lock.current_command()
    assert "\n" not in command and len(command) == run_lock.MAX_COMMAND_CHARS and command.endswith("...")


# ------------------------------------------------------------------------------------------ leftovers
def _leftover(path, pid):
    """A temp file as a writer with ``pid`` killed mid-write leaves it."""
    name = os.path.basename(temporary_path(path)).split("-", 2)[2]  # the random part and the name
    leftover = os.path.join(os.path.dirname(path), f".tmp-{pid}-{name}")
    with open(leftover, "wb") as f:
        f.write(b"PK\x03\x04 half a zip")
    return os.path.basename(leftover)


def test_remove_abandoned_removes_only_dead_writers_temp_files(tmp_path):
    model = str(tmp_path / "model.keras")
    dead = _leftover(model, _dead_pid())
    live = _leftover(model, os.getppid())  # a running writer's
    other = _leftover(str(tmp_path / "other.keras"), _dead_pid())
    assert remove_abandoned(model) == [dead]
    assert sorted(os.listdir(tmp_path)) == sorted([live, other])
    assert remove_abandoned(tmp_path) == [other]  # a folder: every file's abandoned temp files
    assert os.listdir(tmp_path) == [live]


def test_remove_leftovers_of_a_run_keeps_the_candidate_a_backup_still_names(tmp_path):
    from keras_vae.training.backup import remove_leftovers

    (tmp_path / "config.yaml").write_text("dataset: sprites\n")
    candidate = _leftover(str(tmp_path / "best.keras"), os.getpid())
    killed = [_leftover(str(tmp_path / name), _dead_pid()) for name in ("model.keras", "metrics.json")]
    running = _leftover(str(tmp_path / "model.keras"), os.getppid())  # under the lock, a live pid goes too
    (tmp_path / "backup").mkdir()
    metadata = {"epoch": 2, "batch": 0, "records": {"best": {"file": candidate, "sha256": "0" * 64}}}
    (tmp_path / "backup" / "training_metadata.json").write_text(json.dumps(metadata))
    remove_leftovers(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted(["config.yaml", "backup", candidate])
    assert not set(killed + [running]) & set(os.listdir(tmp_path))
    remove_temporaries(str(tmp_path))
    assert candidate not in os.listdir(tmp_path)


def test_a_read_only_run_is_read_without_the_lock_only_when_the_lock_is_optional(tmp_path):
    mount = tmp_path / "run"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a file system needs root")
    try:
        (mount / "config.yaml").write_text("dataset: sprites\n")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True, capture_output=True)
        with run_lock.lock_of(mount / "model.keras", optional=True) as lock:  # export of a read-only run
            assert not lock.held
        with pytest.raises(OSError) as caught:  # a writer gets the file system's error
            RunLock(mount).acquire()
        assert caught.value.errno == errno.EROFS and not isinstance(caught.value, RunLockedError)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
