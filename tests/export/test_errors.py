"""Export and sample failures give one clear error (through the CLI: exit status 2, no traceback) and leave
no half-written files behind (issue 12)."""

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import keras_vae
from keras_vae.cli import main
from keras_vae.export import layout
from keras_vae.export.saved_model import export_model


def cli_error(capsys, *argv):
    """Runs the CLI, asserts it failed cleanly (status 2, one error line, no traceback), returns the message."""
    capsys.readouterr()
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"keras-vae {argv[0]}: error:" in err, err
    return err


@pytest.fixture
def plain_keras_file(tmp_path):
    model = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(), keras.layers.Dense(4)])
    path = tmp_path / "plain" / "model.keras"
    path.parent.mkdir()
    model.save(path)
    return path


def test_a_plain_keras_model_is_refused_by_export_and_sample(plain_keras_file, tmp_path, capsys):
    for folder_or_file in (plain_keras_file, plain_keras_file.parent):
        message = cli_error(capsys, "export", str(folder_or_file), "--name", "m", "--base-dir", str(tmp_path / "out"))
        assert "is a Sequential, not a keras_vae VAE" in message and str(plain_keras_file.parent) in message
        message = cli_error(capsys, "sample", str(folder_or_file), "--out", str(tmp_path / "grid.png"))
        assert "not a keras_vae VAE" in message
    with pytest.raises(ValueError, match="The model given is a Sequential, not a keras_vae VAE"):
        export_model(keras.models.load_model(plain_keras_file), base_dir=tmp_path / "out", name="m")
    assert not os.path.exists(tmp_path / "out") and not os.path.exists(tmp_path / "grid.png")


@contextlib.contextmanager
def mounted_tmpfs(path, options):
    """A tmpfs at ``path`` (needs root; skips otherwise): a real read-only or full file system."""
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("mount -t tmpfs is not permitted here")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def read_only_dir(tmp_path):
    if os.geteuid() != 0:  # permissions bind everyone but root
        path = tmp_path / "ro"
        path.mkdir()
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    with mounted_tmpfs(tmp_path / "ro", "ro,size=1m") as path:
        yield path


def test_a_read_only_base_dir_gives_a_clear_error_naming_it(run_dir, read_only_dir, capsys):
    message = cli_error(capsys, "export", run_dir, "--name", "m", "--base-dir", str(read_only_dir))
    assert f"Could not write the export into {str(read_only_dir / 'm')!r}" in message
    assert "Read-only file system" in message or "Permission denied" in message
    assert os.listdir(read_only_dir) == []


def test_a_full_base_dir_gives_a_clear_error_and_stays_clean(run_dir, tmp_path, capsys):
    with mounted_tmpfs(tmp_path / "full", "size=64k") as full:
        for flags in ([], ["--tflite"]):
            message = cli_error(capsys, "export", run_dir, "--name", "m", "--base-dir", str(full), *flags)
            assert f"Could not write the export into {str(full / 'm')!r}: No space left on device." in message
            assert os.listdir(full) == []  # no half version, no staging folder, no empty model folder


def test_a_full_disk_after_earlier_versions_keeps_them(vae, tmp_path, monkeypatch):
    import keras_vae.export.saved_model as saved_model_module

    export_model(vae, base_dir=tmp_path, name="m")

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(saved_model_module, "write_archive", full)
    with pytest.raises(layout.ExportError, match="No space left on device"):
        export_model(vae, base_dir=tmp_path, name="m")
    assert sorted(os.listdir(tmp_path / "m")) == ["1", "batching_parameters.txt", "models.config"]


EXPORT_UNTIL_KILLED = """
import sys, keras_vae
from keras_vae.export.saved_model import export_model
export_model(sys.argv[1], base_dir=sys.argv[2], name="m", tflite=True)
"""


def test_staging_folders_of_a_killed_export_are_removed_by_the_next(run_dir, vae, tmp_path):
    script = tmp_path / "export.py"
    script.write_text(EXPORT_UNTIL_KILLED)
    base = tmp_path / "models"
    process = subprocess.Popen([sys.executable, str(script), run_dir, str(base)], stderr=subprocess.DEVNULL)
    tflite_root = base / "m" / layout.TFLITE_DIR
    deadline = time.time() + 300
    def converting():  # both staging folders exist while the TFLite files are converted
        return tflite_root.is_dir() and any(e.startswith(".tmp-") for e in os.listdir(tflite_root))

    while time.time() < deadline and not converting():
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    staged = [p for p in (base / "m", tflite_root) for e in os.listdir(p) if e.startswith(".tmp-")]
    assert len(staged) == 2, os.listdir(base / "m")
    alive = base / "m" / f".tmp-{os.getpid()}-running"  # an export still running in this process: kept
    alive.mkdir()
    export_model(vae, base_dir=base, name="m")
    assert sorted(e for e in os.listdir(base / "m") if e.startswith(".")) == [alive.name]
    assert os.listdir(tflite_root) == []


def test_non_finite_weights_are_refused_naming_how_many(tmp_path, capsys, make_run_dir):
    model = keras_vae.build_vae((16, 16, 1), 4, architecture="mlp", hidden_units=(8,), seed=0)
    kernel = model.decoder.trainable_weights[0]
    values = kernel.numpy()
    values.flat[:3] = [np.nan, np.inf, -np.inf]
    kernel.assign(values)
    with pytest.raises(ValueError, match="has 3 non-finite weights"):
        export_model(model, base_dir=tmp_path / "out", name="m")
    run = make_run_dir(str(tmp_path / "run"), model, "bars")
    assert "has 3 non-finite weights (NaN or Inf)" in cli_error(
        capsys, "export", run, "--name", "m", "--base-dir", str(tmp_path / "out")
    )
    assert not os.path.exists(tmp_path / "out")


def test_a_model_that_does_not_match_its_run_config_is_refused(vae, tmp_path, capsys):
    run = tmp_path / "sprites"
    run.mkdir()
    vae.save(run / "model.keras")
    (run / "config.yaml").write_text("dataset: sprites\nimage_shape: [64, 64, 3]\nlatent_dim: 4\n")
    message = cli_error(capsys, "export", str(run), "--name", "m", "--base-dir", str(tmp_path / "out"))
    assert "does not match its run's config.yaml (dataset 'sprites')" in message
    assert "image_shape [16, 16, 1] (config.yaml: [64, 64, 3])" in message
    assert not os.path.exists(tmp_path / "out")
    # An explicit dataset is the caller's statement: the run's config is not consulted then.
    result = export_model(str(run), base_dir=tmp_path / "out", name="m", dataset="bars")
    assert result.version == 1


def test_a_truncated_saved_model_pb_is_named(exported, tmp_path, capsys):
    copy = shutil.copytree(exported.saved_model_dir, tmp_path / "1")
    pb = copy / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[: pb.stat().st_size // 2])
    message = cli_error(capsys, "sample", str(copy), "--out", str(tmp_path / "grid.png"))
    assert f"Could not load the SavedModel {str(pb)!r} (truncated or corrupt?)" in message
    assert not os.path.exists(tmp_path / "grid.png")


@pytest.mark.parametrize("kind", ["run", "saved_model", "tflite"])
def test_a_million_samples_are_refused_before_any_allocation(kind, run_dir, exported, tmp_path, capsys):
    source = {"run": run_dir, "saved_model": exported.saved_model_dir, "tflite": exported.tflite_paths["int8"]}[kind]
    started = time.time()
    message = cli_error(capsys, "sample", source, "-n", "1000000", "--out", str(tmp_path / "grid.png"))
    assert "argument -n/--num-samples: must be an integer from 1 to 1024, got 1000000" in message
    assert time.time() - started < 5  # refused up front, before loading anything


@pytest.mark.parametrize("kind", ["run", "saved_model", "tflite"])
@pytest.mark.parametrize("temperature", ["-1", "0", "nan"])
def test_every_sampling_path_checks_the_temperature(kind, temperature, run_dir, exported, tmp_path, capsys):
    source = {"run": run_dir, "saved_model": exported.saved_model_dir, "tflite": exported.tflite_paths["float32"]}[kind]
    out = tmp_path / "grid.png"
    message = cli_error(capsys, "sample", source, "--temperature", temperature, "--out", str(out))
    assert "argument --temperature: must be" in message and temperature in message and not out.exists()


def test_a_half_written_metadata_json_is_named(exported, tmp_path):
    from keras_vae.export.metadata import read_metadata

    folder = shutil.copytree(os.path.dirname(exported.tflite_paths["float32"]), tmp_path / "tflite")
    metadata = folder / "metadata.json"
    metadata.write_text(metadata.read_text()[:40])
    with pytest.raises(ValueError) as raised:
        read_metadata(str(folder))
    assert f"{str(metadata)!r} is not valid JSON (truncated or corrupt?)" in str(raised.value)
