"""A user's first hour: the version, python -m, built-in configs, quiet start-up and progress on a terminal."""

import os
import pty
import select
import subprocess
import sys
import time

import numpy as np
import yaml

import keras_vae
from keras_vae import configs
from keras_vae.run_config import is_legacy
from keras_vae.cli import main
from tests.conftest import rectangles

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KERAS_VAE = os.path.join(os.path.dirname(sys.executable), "keras-vae")
STARTUP_MARKERS = ("absl::InitializeLog", "cudart_stub", "cpu_feature_guard", "cuda_platform", "oneDNN")


def _clean_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP") and k != "TF_ENABLE_ONEDNN_OPTS"}
    return env


def test_version_and_python_dash_m_run_the_same_cli(tmp_path):
    for command in ([KERAS_VAE, "--version"], [sys.executable, "-m", "keras_vae", "--version"]):
        done = subprocess.run(command, cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == f"keras-vae {keras_vae.__version__}"


def test_tensorflow_start_up_lines_are_hidden_by_default_and_shown_with_verbose(tmp_path):
    # `evaluate` imports TensorFlow before it finds that the model is missing
    command = [KERAS_VAE, "evaluate", str(tmp_path / "missing")]
    quiet = subprocess.run(command, cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 2 and "keras-vae evaluate: error:" in quiet.stderr, quiet.stderr[-2000:]
    assert not [line for line in quiet.stderr.splitlines() if any(m in line for m in STARTUP_MARKERS)], quiet.stderr
    verbose = subprocess.run([KERAS_VAE, "--verbose", *command[1:]], cwd=tmp_path, env=_clean_env(),
                             capture_output=True, text=True, timeout=300)
    assert [line for line in verbose.stderr.splitlines() if any(m in line for m in STARTUP_MARKERS)], verbose.stderr
    # A user's own program is left alone: importing the package does not touch TensorFlow's logging.
    own = subprocess.run([sys.executable, "-c", "import os, keras_vae; print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'), "
                          "os.environ.get('TF_ENABLE_ONEDNN_OPTS'))"],
                         cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert own.stdout.strip() == "None None"


def test_the_command_line_turns_on_onednn_cpu_kernels_unless_the_environment_says(monkeypatch):
    from keras_vae._startup import command_line_cpu_kernels

    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    command_line_cpu_kernels(["/usr/bin/python", "train.py"])
    assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ
    command_line_cpu_kernels([KERAS_VAE, "train"])
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1"
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    command_line_cpu_kernels(["-m", "train"])
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"


def test_configs_lists_and_prints_the_built_in_configs(capsys):
    assert "sprites_quick" in configs.names()
    assert main(["configs"]) == 0
    assert "sprites_quick" in capsys.readouterr().out
    for name in configs.names():  # every built-in config in the current layout: the model in one section
        assert main(["configs", name]) == 0
        printed = yaml.safe_load(capsys.readouterr().out)
        assert "model_options" not in printed and not is_legacy(printed) and "latent_dim" in printed["model"], name
    assert main(["configs", "sprites_quick"]) == 0
    assert "dataset: sprites" in capsys.readouterr().out
    assert main(["configs", "nope"]) == 2
    assert "No built-in config 'nope'" in capsys.readouterr().err


def _read_all(fd, proc, timeout):
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks).decode(errors="replace")


def _score_command(tmp_path):
    vae = keras_vae.build_vae((28, 28, 1), 2, architecture="mlp", hidden_units=(16,))
    path = tmp_path / "vae.keras"
    vae.save(path)
    images = rectangles(300)
    np.save(tmp_path / "images.npy", images)
    code = ("import numpy as np, keras_vae; m = keras_vae.load_vae(%r); "
            "keras_vae.anomaly_scores(m, np.load(%r), batch_size=50, num_samples=2); print('scored')"
            % (str(path), str(tmp_path / "images.npy")))
    return [sys.executable, "-c", code]


def test_a_progress_bar_shows_on_a_terminal_and_not_in_a_pipe(tmp_path):
    command = _score_command(tmp_path)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(command, cwd=tmp_path, env=_clean_env(), stdout=follower, stderr=subprocess.DEVNULL)
    os.close(follower)
    try:
        on_terminal = _read_all(leader, proc, timeout=300)
        proc.wait(timeout=60)
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    assert "scored" in on_terminal
    assert "300/300" in on_terminal and "image" in on_terminal, on_terminal[-2000:]
    piped = subprocess.run(command, cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert piped.returncode == 0 and "scored" in piped.stdout
    assert "300/300" not in piped.stdout


def test_quiet_silences_the_bars(monkeypatch):
    from keras_vae import progress

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    assert progress.enabled()
    progress.set_quiet(True)
    try:
        assert not progress.enabled()
        assert type(progress.progress_bar(10)).__name__ == "_Silent"
    finally:
        progress.set_quiet(False)
