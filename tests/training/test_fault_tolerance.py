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
        sys.executable, "-m", "keras_vae.training.cli", "train", "--dataset", "sprites", "--architecture", "mlp",
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

    for name in ("config.yaml", "model.keras", "best.keras", "metrics.json", "backup/latest.weights.h5"):
        assert (run / name).exists(), name
    assert _history_epochs(run) == [0, 1]  # one writer: no duplicated rows
    event_files = glob.glob(str(run / "logs" / "**" / "events.out.tfevents.*"), recursive=True)
    writer_pids = {int(os.path.basename(p).split(".")[-3]) for p in event_files}  # ...<host>.<pid>.<n>.v2
    assert writer_pids == {procs[0].pid}
