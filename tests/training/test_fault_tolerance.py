"""Real processes: SIGKILL mid-run then resume from the backup; two MultiWorkerMirroredStrategy workers."""

import csv
import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TIMEOUT = 180


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _train_command(run_dir, *extra):
    return [
        sys.executable, "-m", "keras_vae.cli", "train", "--dataset", "sprites", "--architecture", "mlp",
        "--latent-dim", "3", "--epochs", "3", "--steps-per-epoch", "30", "--validation-steps", "4",
        "--batch-size", "32", "--learning-rate", "0.01", "--seed", "7", "--strategy", "default",
        "--run-dir", str(run_dir), "--backup-every-steps", "4",
        "--set", "model_options={hidden_units: [16]}", "--set", "image_grid_size=4", "--set", "verbose=2", *extra,
    ]


def _final_val_elbo(run_dir):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return json.load(f)["history"][-1]["val_elbo"]


def _history_epochs(run_dir):
    with open(os.path.join(run_dir, "history.csv"), newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def test_sigkill_then_same_command_resumes_from_backup(tmp_path):
    reference_dir = tmp_path / "reference"
    # The uninterrupted reference run goes alongside the run that is killed.
    reference = subprocess.Popen(_train_command(reference_dir), cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    run = tmp_path / "killed"
    metadata = run / "backup" / "training_metadata.json"
    proc = subprocess.Popen(_train_command(run), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + TIMEOUT
        backed_up = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                backed_up = json.loads(metadata.read_text())
            except (OSError, ValueError):  # not written yet, or being written
                backed_up = None
            if backed_up and backed_up["epoch"] >= 1 and backed_up["batch"] > 0:  # inside epoch 2 or later
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        reference_out = reference.communicate(timeout=TIMEOUT)[0]
    finally:
        for p in (proc, reference):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert proc.returncode == -signal.SIGKILL
    assert reference.returncode == 0, reference_out[-3000:]
    assert not (run / "model.keras").exists()
    killed_at_epoch = backed_up["epoch"]

    resumed = subprocess.run(_train_command(run), cwd=ROOT, env=_env(), capture_output=True, text=True,
                             timeout=TIMEOUT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    first_epoch = int(re.search(r"Epoch (\d+)/3", resumed.stdout).group(1))
    assert first_epoch == killed_at_epoch + 1 >= 2  # restored, not started from scratch
    assert sorted(set(_history_epochs(run))) == [0, 1, 2]
    assert _final_val_elbo(run) == pytest.approx(_final_val_elbo(reference_dir), rel=0.05)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


WORKER = """
import json, sys
import numpy as np
from keras_vae.training.config import load_config
from keras_vae.training.train import train
model, metrics = train(load_config(None, json.loads(sys.argv[1])))
np.savez(sys.argv[2], iterations=int(model.optimizer.iterations.numpy()), *model.get_weights())
"""


def test_two_workers_end_identical_and_only_the_chief_writes(tmp_path):
    run = tmp_path / "run"
    config = {
        "dataset": "sprites", "architecture": "mlp", "latent_dim": 2, "model_options": {"hidden_units": [8]},
        "epochs": 2, "steps_per_epoch": 3, "validation_steps": 1, "batch_size": 8, "strategy": "multi_worker",
        "run_dir": str(run), "backup_every_steps": 2, "image_grid_size": 4, "verbose": 0, "seed": 1,
    }
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(config), str(tmp_path / f"weights{index}.npz")],
            cwd=ROOT, env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=TIMEOUT)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-3000:]

    chief, other = (np.load(tmp_path / f"weights{i}.npz") for i in range(2))
    assert int(chief["iterations"]) == int(other["iterations"]) == 6
    names = [k for k in chief.files if k != "iterations"]
    assert names and sorted(names) == sorted(k for k in other.files if k != "iterations")
    for name in names:
        np.testing.assert_array_equal(chief[name], other[name])

    for name in ("config.yaml", "model.keras", "best.keras", "metrics.json", "backup/latest.keras"):
        assert (run / name).exists(), name
    assert _history_epochs(run) == [0, 1]  # one writer: no duplicated rows
    event_files = glob.glob(str(run / "logs" / "**" / "events.out.tfevents.*"), recursive=True)
    writer_pids = {int(os.path.basename(p).split(".")[-3]) for p in event_files}  # ...<host>.<pid>.<n>.v2
    assert writer_pids == {procs[0].pid}


# ------------------------------------------------------------------------------------------ issue 12
def _start(run_dir, log, *extra):
    return subprocess.Popen(_train_command(run_dir, "--epochs", "3", "--steps-per-epoch", "12",
                                           "--backup-every-steps", "1", *extra),
                            cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)


def _writing(folder):
    """Whether an atomic write is under way in ``folder`` (its temp file exists)."""
    try:
        return any(name.startswith(".tmp-") for name in os.listdir(folder))
    except OSError:
        return False


def _generation(run):
    try:
        return json.loads((run / "backup" / "training_metadata.json").read_text()).get("generation", 0)
    except (OSError, ValueError):
        return 0


def _kill_when(proc, condition, timeout=TIMEOUT):
    """SIGKILLs ``proc`` as soon as ``condition()`` holds; False when the run ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            return True
        time.sleep(0.002)
    return False


def test_sigkill_at_many_points_across_backup_writes_always_resumes(tmp_path):
    """Kills land while a backup is being written, while an epoch's records are written, and between writes;
    every restart must load a backup (none is left unloadable) and the history must end without gaps."""
    run = tmp_path / "run"
    log_path = tmp_path / "log.txt"
    points = [
        ("backup write", lambda: _writing(run / "backup")),
        ("record write", lambda: _writing(run)),
        ("backup write", lambda: _generation(run) >= 3 and _writing(run / "backup")),
        ("between writes", lambda: _generation(run) >= 5),
        ("backup write", lambda: _writing(run / "backup")),
        ("record write", lambda: _writing(run)),
    ]
    kills = []
    for name, condition in points:
        with open(log_path, "a") as log:
            proc = _start(run, log)
            try:
                killed = _kill_when(proc, condition)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        output = log_path.read_text()
        assert killed or proc.returncode == 0, output[-3000:]  # never fails by itself, e.g. on a bad backup
        assert "Traceback" not in output, output[-3000:]
        kills.append((name, killed))
    assert sum(killed for _, killed in kills) >= 4, kills
    finished = subprocess.run(_train_command(run, "--epochs", "3", "--steps-per-epoch", "12",
                                             "--backup-every-steps", "1"),
                              cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-3000:]
    assert _history_epochs(run) == [0, 1, 2]  # every epoch once: none lost, none duplicated
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and np.isfinite(metrics["best_val_elbo"])
    assert not [p for p in glob.glob(str(run / "**" / ".tmp-*"), recursive=True)]


@pytest.fixture
def small_disk(tmp_path):
    """A 48 MB tmpfs mounted for the test (needs root); skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder):
    """Writes a filler file until the file system is full."""
    with open(folder / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 16))
                f.flush()
        except OSError:
            pass


def test_disk_full_gives_a_clear_error_keeps_good_files_and_resumes(small_disk):
    import zipfile

    run = small_disk / "run"
    log_path = small_disk.parent / "log.txt"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(_train_command(run, "--epochs", "6", "--steps-per-epoch", "12",
                                               "--backup-every-steps", "2"),
                                cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline and proc.poll() is None and len(_history_epochs_or_none(run)) < 1:
                time.sleep(0.05)
            assert proc.poll() is None, log_path.read_text()[-3000:]
            _fill(small_disk)
            proc.wait(timeout=TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = log_path.read_text()
    assert proc.returncode == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert "keras-vae train: error: Could not write" in output and "No space left on device" in output
    assert str(run) in output  # names the run directory
    # The previous good files stay: a valid best.keras, the history rows, the config and a loadable backup.
    assert zipfile.is_zipfile(run / "best.keras")
    assert len(_history_epochs(run)) >= 1 and (run / "config.yaml").read_text().startswith("dataset:")
    os.remove(small_disk / "filler")
    resumed = subprocess.run(_train_command(run, "--epochs", "6", "--steps-per-epoch", "12",
                                            "--backup-every-steps", "2"),
                             cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert _history_epochs(run) == list(range(6))


def _history_epochs_or_none(run_dir):
    try:
        return _history_epochs(run_dir)
    except OSError:
        return []


@pytest.mark.parametrize("free_kib", [0, 8, 24, 56, 120, 200])
def test_a_backup_that_meets_a_full_disk_fails_cleanly_at_any_point(small_disk, capfd, free_kib):
    """Wherever the model file meets the full disk, the write is one RunWriteError with ENOSPC, nothing
    half-written stays, the old file is intact and no traceback reaches stderr."""
    import errno

    import keras

    from keras_vae.training.run_dir import RunWriteError, atomic_write

    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(512), keras.layers.Dense(64)])  # a ~270 KB file
    target = small_disk / "latest.keras"
    atomic_write(target, model.save)
    before = target.read_bytes()
    stats = os.statvfs(small_disk)
    with open(small_disk / "filler", "wb") as f:
        f.write(b"\0" * max(0, stats.f_bavail * stats.f_frsize - free_kib * 1024))
    capfd.readouterr()
    with pytest.raises(RunWriteError) as caught:
        atomic_write(target, model.save)
    assert caught.value.errno == errno.ENOSPC and "No space left on device" in str(caught.value)
    assert target.read_bytes() == before
    assert sorted(os.listdir(small_disk)) == ["filler", "latest.keras"]
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception ignored" not in err, err


def test_hdf5_files_are_not_written_in_place(tmp_path):
    """h5py meeting a full disk can crash the process, so no run file is an HDF5 file written by h5py."""
    import keras

    from keras_vae.training.run_dir import atomic_write

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="HDF5 files are not written through atomic_write"):
        atomic_write(tmp_path / "latest.weights.h5", model.save_weights)
    assert os.listdir(tmp_path) == []
