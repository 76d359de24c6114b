"""One writer per run directory with real `keras-vae` processes: two trains on one run, a stale lock taken over,
a fit-sampler killed mid-write and rerun, writers refused and readers served while another process holds the lock."""

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

import keras_vae
from keras_vae.cli import main
from keras_vae.run_lock import LOCK_FILE
from tests.keras_vae.test_run_lock import HOLDER  # a process holding a run directory's lock until its stdin closes

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TIMEOUT = 240
TINY = ["--dataset", "sprites", "--architecture", "mlp", "--latent-dim", "2", "--validation-steps", "1",
        "--batch-size", "8", "--seed", "3", "--strategy", "default", "--set", "image_grid_size=4",
        "--set", "verbose=2"]


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    return env


def _command(*args):
    return [sys.executable, "-m", "keras_vae.cli", *args]


def _train(run, *extra):
    return _command("train", *TINY, "--run-dir", str(run), "--set", "model_options={hidden_units: [16]}", *extra)


def _run(command):
    return subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)


def _temporaries(run):
    return sorted(name for name in os.listdir(run) if name.startswith(".tmp-"))


def _stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=TIMEOUT)


def _wait_for_lock(run, proc):
    """Waits until ``proc`` holds the lock of ``run`` (its record is in the lock file)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads((run / LOCK_FILE).read_text())["pid"] == proc.pid:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    raise AssertionError(f"process {proc.pid} never held the lock of {run} (exit status {proc.poll()})")


def test_two_trains_on_one_run_directory_the_second_fails_at_once_naming_the_first(tmp_path):
    run = tmp_path / "run"
    command = _train(run, "--epochs", "2", "--steps-per-epoch", "3")
    first = subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:
        _wait_for_lock(run, first)
        first.send_signal(signal.SIGSTOP)  # the first holds the lock however long the second takes to start
        try:
            second = _run(command)
        finally:
            first.send_signal(signal.SIGCONT)
        first_out = first.communicate(timeout=TIMEOUT)[0]
    finally:
        _stop(first)
    assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
    assert "Traceback" not in second.stderr
    error = second.stderr.strip().splitlines()[-1]
    assert error.startswith(f"keras-vae train: error: Run directory {str(run)!r} is in use by another writer: "
                            f"pid {first.pid} on host {socket.gethostname()!r} (")
    assert "keras_vae.cli train" in error and "since 20" in error and "lock file" in error, error
    assert "Epoch" not in second.stdout  # refused before training

    assert first.returncode == 0, first_out[-3000:]
    with open(run / "history.csv", newline="") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [0, 1]  # one writer: no duplicated rows
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2
    assert not (run / LOCK_FILE).exists() and not _temporaries(run)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished tiny run of about 10 MB per model file (a write lasts long enough to be killed in the middle)."""
    run = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", *TINY, "--epochs", "1", "--steps-per-epoch", "2", "--run-dir", str(run),
                 "--set", "model_options={hidden_units: [64]}", "--set", "verbose=0"]) == 0
    return run


@pytest.fixture
def run_copy(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    return run


def test_a_stale_lock_is_taken_over_and_a_refused_start_releases_the_lock(run_copy, capsys):
    run = run_copy
    dead = subprocess.Popen(["true"])
    dead.wait()
    record = {"pid": dead.pid, "host": socket.gethostname(), "command": "keras-vae train", "since": "2026-01-01T00:00:00Z"}
    (run / LOCK_FILE).write_text(json.dumps(record))
    same = ["train", *TINY, "--epochs", "2", "--steps-per-epoch", "2", "--run-dir", str(run),
            "--set", "model_options={hidden_units: [64]}", "--set", "verbose=0"]
    assert main(same) == 0  # the finished run, continued by one epoch
    err = capsys.readouterr().err
    taken = [line for line in err.splitlines() if "Took over the lock" in line]
    assert len(taken) == 1 and f"left by pid {dead.pid}" in taken[0] and "is no longer running" in taken[0], err
    assert not (run / LOCK_FILE).exists()

    config = (run / "config.yaml").read_text()
    assert main([*same, "--latent-dim", "3"]) == 2
    assert "holds a run with model.latent_dim=2, not 3" in capsys.readouterr().err
    assert not (run / LOCK_FILE).exists()  # the ValueError raised under the lock released it
    assert (run / "config.yaml").read_text() == config


def test_fit_sampler_killed_mid_write_then_a_rerun_leaves_no_temporaries(run_copy, capsys):
    run = run_copy
    fit = ["fit-sampler", str(run), "--examples", "100", "--num-components", "2"]
    proc = subprocess.Popen(_command(*fit), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None and not _temporaries(run):
            time.sleep(0.001)
        assert proc.poll() is None, "fit-sampler ended before its temp file was seen"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=TIMEOUT)
    finally:
        _stop(proc)
    leftovers = _temporaries(run)
    assert leftovers and all(name.startswith(f".tmp-{proc.pid}-") for name in leftovers)
    assert json.loads((run / LOCK_FILE).read_text())["pid"] == proc.pid  # its record stays; its flock went with it

    capsys.readouterr()
    assert main(fit) == 0
    assert f"left by pid {proc.pid}" in capsys.readouterr().err
    assert not _temporaries(run) and not (run / LOCK_FILE).exists()
    assert "gmm" in keras_vae.load_vae(str(run)).samplers


@pytest.fixture
def held_run(run_copy):
    """A finished run whose lock another process holds; yields (run, holder pid)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_copy)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield run_copy, holder.pid
    finally:
        holder.stdin.close()
        holder.wait(timeout=TIMEOUT)
        holder.stdout.close()


def test_writers_of_a_locked_run_are_refused_and_readers_are_served(held_run, tmp_path, capsys):
    run, pid = held_run
    writers = {
        "evaluate": ["evaluate", str(run), "--iw-samples", "2", "--max-examples", "4", "--out", str(run / "eval.json")],
        "export": ["export", str(run), "--name", "vae", "--base-dir", str(tmp_path / "models")],
        "fit-sampler": ["fit-sampler", str(run / "model.keras"), "--examples", "50", "--num-components", "2"],
    }
    for command, argv in writers.items():
        assert main(argv) == 2, command
        err = capsys.readouterr().err
        assert err.startswith(f"keras-vae {command}: error: Run directory {str(run)!r} is in use by another "
                              f"writer: pid {pid} on host {socket.gethostname()!r} (keras-vae train --run-dir x)"), err
    assert not (run / "eval.json").exists() and not (tmp_path / "models").exists()
    # Readers take no lock; evaluate --out outside the run writes where it is told.
    assert main(["sample", str(run), "-n", "4", "--out", str(tmp_path / "grid.png"), "--seed", "1"]) == 0
    assert main(["evaluate", str(run), "--iw-samples", "2", "--max-examples", "4",
                 "--out", str(tmp_path / "eval.json")]) == 0
    assert (tmp_path / "grid.png").stat().st_size > 0
    assert json.loads((tmp_path / "eval.json").read_text())["dataset"] == "sprites"
    assert json.loads((run / LOCK_FILE).read_text())["pid"] == pid  # untouched
