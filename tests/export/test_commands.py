"""`keras-vae export` and `keras-vae sample` through the real command line entry point (keras_vae.cli)."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import keras_vae
from keras_vae.cli import main


def read_png(path):
    return np.asarray(Image.open(path))


def test_export_command_writes_versions_and_refuses_to_overwrite(run_dir, tmp_path, capsys):
    base = str(tmp_path / "models")
    assert main(["export", run_dir, "--name", "bars", "--base-dir", base]) == 0
    out = capsys.readouterr().out
    assert f"SavedModel (version 1): {os.path.join(base, 'bars', '1')}" in out
    assert os.path.isfile(os.path.join(base, "bars", "1", "saved_model.pb"))
    assert main(["export", run_dir, "--name", "bars", "--base-dir", base, "--with-encoder"]) == 0
    assert "SavedModel (version 2)" in capsys.readouterr().out
    assert "score" in tf.saved_model.load(os.path.join(base, "bars", "2")).signatures
    assert main(["export", run_dir, "--name", "bars", "--base-dir", base, "--version", "1"]) == 2
    assert "Version 1 already exists" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing"), "--name", "bars", "--base-dir", base]) == 2
    assert "No model file or run directory" in capsys.readouterr().err


def test_sample_command_from_every_kind_of_source(run_dir, exported, tmp_path, capsys):
    sources = {
        "run": run_dir,
        "keras": os.path.join(run_dir, "model.keras"),
        "base": exported.model_dir,
        "version": exported.saved_model_dir,
    }
    grids = {}
    for tag, source in sources.items():
        out = str(tmp_path / tag / "grid.png")  # the parent folder does not exist yet
        assert main(["sample", source, "-n", "6", "--out", out, "--seed", "3"]) == 0, capsys.readouterr().err
        grids[tag] = read_png(out)
        assert grids[tag].shape == (2 * 16 + 1, 3 * 16 + 2)  # 6 images: 3 columns x 2 rows, 1-pixel padding
    np.testing.assert_array_equal(grids["run"], grids["keras"])
    np.testing.assert_array_equal(grids["base"], grids["version"])
    # The PNG is the image grid of the SavedModel's seeded samples.
    sample = tf.saved_model.load(exported.saved_model_dir).signatures["sample"]
    images = sample(num_samples=tf.constant(6), temperature=tf.constant(1.0), seed=tf.constant(3, tf.int64))["images"]
    np.testing.assert_array_equal(grids["version"], keras_vae.image_grid(images.numpy())[..., 0])
    other = str(tmp_path / "other.png")
    assert main(["sample", exported.saved_model_dir, "-n", "6", "--out", other, "--seed", "4"]) == 0
    assert not np.array_equal(read_png(other), grids["version"])

    tflite = str(tmp_path / "tflite.png")
    assert main(["sample", exported.tflite_paths["int8"], "-n", "4", "--out", tflite, "--columns", "4"]) == 0
    assert read_png(tflite).shape == (16, 4 * 16 + 3)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["-n", "0"], "argument -n/--num-samples: must be an integer from 1 to 1024, got 0"),
        (["--label", "1"], "not conditional"),
    ],
)
def test_sample_command_errors(exported, tmp_path, capsys, arguments, message):
    source = exported.saved_model_dir
    out = str(tmp_path / "grid.png")
    assert main(["sample", source, "--out", out, *arguments]) == 2
    assert message in capsys.readouterr().err and not os.path.exists(out)


def test_seeded_tflite_samples_repeat_and_match_the_saved_model(exported, tmp_path):
    source = exported.tflite_paths["float32"]
    paths = [str(tmp_path / f"{i}.png") for i in range(3)]
    for path, seed in zip(paths, ["3", "3", "4"]):
        assert main(["sample", source, "-n", "4", "--out", path, "--seed", seed, "--temperature", "0.7"]) == 0
    grids = [read_png(p).astype(int) for p in paths]
    np.testing.assert_array_equal(grids[0], grids[1])
    assert not np.array_equal(grids[0], grids[2])
    # The device draws the codes the SavedModel's `sample` draws for that seed and temperature.
    sample = tf.saved_model.load(exported.saved_model_dir).signatures["sample"]
    served = sample(num_samples=tf.constant(4), temperature=tf.constant(0.7), seed=tf.constant(3, tf.int64))
    expected = keras_vae.image_grid(served["images"].numpy())[..., 0]
    assert np.abs(grids[0] - expected.astype(int)).max() <= 1


def test_sample_command_reports_a_missing_source_and_an_oversized_request(exported, tmp_path, capsys):
    out = str(tmp_path / "grid.png")
    assert main(["sample", str(tmp_path / "nothing"), "--out", out]) == 2
    assert "No model at" in capsys.readouterr().err
    assert main(["sample", exported.saved_model_dir, "-n", "5000", "--out", out]) == 2
    assert "argument -n/--num-samples: must be an integer from 1 to 1024, got 5000" in capsys.readouterr().err


@pytest.mark.parametrize("module, command", [("export", "export"), ("serve", "serve"), ("sample", "sample")])
def test_each_command_module_registers_its_one_subcommand(module, command):
    import argparse
    import importlib

    subparsers = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(f"keras_vae.cli.{module}").add_command(subparsers)
    assert list(subparsers.choices) == [command]


def test_the_command_modules_import_no_tensorflow_heavy_export_code():
    import subprocess
    import sys

    # What must stay lazy is the export code the commands run; the limits are plain numbers the flags check.
    code = (
        "import sys, argparse, keras_vae.cli.export, keras_vae.cli.serve, keras_vae.cli.sample as s; "
        "p = argparse.ArgumentParser().add_subparsers(); [m.add_command(p) for m in "
        "(keras_vae.cli.export, keras_vae.cli.serve, s)]; "
        "heavy = [m for m in sys.modules if m.startswith(('keras_vae.export.', 'ai_edge_litert', 'tensorflow')) "
        "and m != 'keras_vae.export.limits']; "
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    import keras_vae.export as export
    from keras_vae.export.saved_model import export_model

    assert export.export_model is export_model and "export_model" in export.__all__
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        export.nope


@pytest.mark.parametrize("text, label", [("3", 3), ("0,2.5,1", [0.0, 2.5, 1.0]), ("0.5", 0.5)])
def test_label_flag_takes_a_class_index_or_a_vector(text, label):
    from keras_vae.cli.sample import parse_label

    assert parse_label(text) == label
    with pytest.raises(ValueError, match="--label must be"):
        parse_label("seven")
