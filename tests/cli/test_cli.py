"""The `keras-vae` command line: its subcommands, and bad input reported in one line, never a traceback."""

import os
import subprocess
import sys

import numpy as np
import pytest

import keras_vae.cli as cli
from keras_vae.cli import main

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TINY = ["--dataset", "sprites", "--architecture", "mlp", "--latent-dim", "2", "--epochs", "1", "--steps-per-epoch", "2",
        "--validation-steps", "1", "--batch-size", "8", "--strategy", "default", "--set", "image_grid_size=4",
        "--set", "verbose=0"]


def test_every_command_is_registered():
    subparsers = next(a for a in cli.build_parser()._actions if a.dest == "command")
    assert set(subparsers.choices) == {"train", "evaluate", "plot", "score", "export", "serve", "sample", "studio",
                                       "fit-sampler", "configs", "variants"}


def test_a_missing_command_module_is_an_error(monkeypatch):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("keras_vae.cli.train", "keras_vae.cli.not_written_yet"))
    with pytest.raises(ModuleNotFoundError, match="not_written_yet"):
        cli.build_parser()


def test_an_os_error_names_its_file():
    assert cli.error_message(PermissionError(13, "Permission denied", "/x/best.keras")) == \
        "Permission denied: '/x/best.keras'"
    assert cli.error_message(FileNotFoundError("No model at 'm'.")) == "No model at 'm'."


def _run_cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", "keras_vae.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_malformed_yaml_in_set_is_one_line_without_a_traceback(tmp_path):
    done = _run_cli("train", "--run-dir", str(tmp_path / "run"), "--set", "model_options={hidden_units: [8}")
    assert done.returncode == 2
    assert "keras-vae train: error: --set model_options: the value '{hidden_units: [8}' is not valid YAML" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("assignment, key", [("beta=.nan", "beta"), ("free_bits=.inf", "free_bits"),
                                             ("kl_warmup_steps=.nan", "kl_warmup_steps")])
def test_nan_and_inf_options_are_refused_naming_the_key(tmp_path, capsys, assignment, key):
    assert main(["train", *TINY, "--run-dir", str(tmp_path / "run"), "--set", assignment]) == 2
    assert f"keras-vae train: error: model.{key} must be" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_failed_start_leaves_the_run_directory_as_it_was_and_the_corrected_command_runs(tmp_path, capsys):
    run = tmp_path / "run"
    # Refused by the config check (an unknown option), and by the model itself while building (a bad size):
    for options in ("model_options={hidden_unit: [8]}", "model_options={hidden_units: [-3]}"):
        assert main(["train", *TINY, "--run-dir", str(run), "--set", options]) == 2
        assert "keras-vae train: error:" in capsys.readouterr().err
        assert not (run / "config.yaml").exists() and not (run / "backup").exists()
    assert main(["train", *TINY, "--run-dir", str(run), "--set", "model_options={hidden_units: [8]}"]) == 0
    assert (run / "config.yaml").exists() and (run / "model.keras").exists()


def test_an_unwritable_run_directory_is_reported_naming_it(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert main(["train", *TINY, "--run-dir", str(blocker / "run"), "--set", "model_options={hidden_units: [8]}"]) == 2
    err = capsys.readouterr().err
    assert "keras-vae train: error: Not a directory" in err and str(blocker) in err


def _idx_bytes(array):
    array = np.asarray(array, np.uint8)
    return bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape) + array.tobytes()


def test_idx_images_of_the_wrong_size_are_reported_naming_the_file(tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    files = {"train-images-idx3-ubyte": np.zeros((50_010, 32, 32)), "train-labels-idx1-ubyte": np.arange(50_010) % 10}
    for name, array in files.items():
        (folder / name).write_bytes(_idx_bytes(array))
    run = tmp_path / "run"
    args = ["train", "--dataset", "mnist", "--data-dir", str(folder), "--architecture", "mlp", "--run-dir", str(run),
            "--set", "model_options={hidden_units: [8]}", "--epochs", "1", "--strategy", "default"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte' holds 32x32 images; dataset 'mnist' has 28x28" in err
    assert not (run / "config.yaml").exists()
