"""Every subcommand's error paths, in real `python -m keras_vae` processes: exit status != 0, a message naming
the flag (or config key) and the value, and never a traceback.

Bad flag values are refused by the flags' argparse types (keras_vae.cli.common) while parsing, before TensorFlow
loads, so that table runs fast; the errors found after loading a model or reading a config are grouped apart.
A walk over every subcommand's parser checks that each numeric flag has a validating type, so a flag added
without one fails here.
"""

import argparse
import os
import subprocess
import sys

import pytest

import keras_vae
from keras_vae.atomic_files import TEMP_PREFIX
from keras_vae.cli import build_parser, common, main

HUGE = str(2**70)
pytestmark = pytest.mark.timeout(300)


def run_cli(*argv, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", "keras_vae", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=240)


def assert_clean_failure(done, *fragments):
    assert done.returncode not in (0, None), done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert ": error: " in last, done.stderr
    for fragment in fragments:
        assert fragment in last, last


# (argv, fragments of the one-line error): refused while the arguments are parsed.
PARSE_ERRORS = [
    (["train", "--epochs", "0"], ["argument --epochs", "must be >= 1, got 0"]),
    (["train", "--latent-dim", "2.5"], ["argument --latent-dim", "must be an integer, got '2.5'"]),
    (["train", "--batch-size", "-3"], ["argument --batch-size", "got -3"]),
    (["train", "--steps-per-epoch", "1e3"], ["argument --steps-per-epoch", "'1e3'"]),
    (["train", "--learning-rate", "nan"], ["argument --learning-rate", "finite", "'nan'"]),
    (["train", "--learning-rate", "0"], ["argument --learning-rate", "must be > 0, got 0"]),
    (["train", "--seed", HUGE], ["argument --seed", "0 to 2147483647", "NumPy", "int32", HUGE]),
    (["train", "--seed", str(2**31)], ["argument --seed", "0 to 2147483647", str(2**31)]),
    (["train", "--seed", "2**70"], ["argument --seed", "'2**70'"]),
    (["train", "--eval-iw-samples", "-1"], ["argument --eval-iw-samples", "must be >= 0, got -1"]),
    (["train", "--backup-every-steps", "0"], ["argument --backup-every-steps", "got 0"]),
    (["train", "--channels", "2"], ["argument --channels", "must be one of 1, 3, got 2"]),
    (["train", "--valid-fraction", "1"], ["argument --valid-fraction", "got 1"]),
    (["evaluate", "m", "--iw-samples", "0"], ["argument --iw-samples", "got 0"]),
    (["evaluate", "m", "--refine-learning-rate", "inf"], ["argument --refine-learning-rate", "finite", "'inf'"]),
    (["evaluate", "m", "--refine-steps", "-2"], ["argument --refine-steps", "got -2"]),
    (["evaluate", "m", "--seed", "-1"], ["argument --seed", "got -1"]),
    (["evaluate", "m", "--out", "missing/e.json"], ["argument --out", "missing/e.json", "does not exist"]),
    (["plot", "m", "--kind", "samples", "--out", "grid.xyz"], ["argument --out", "grid.xyz", ".png"]),
    (["plot", "m", "--kind", "samples", "--out", "g.png", "--num", "0"], ["argument --num", "got 0"]),
    (["plot", "m", "--kind", "traversal", "--out", "g.png", "--span", "-1"], ["argument --span", "got -1"]),
    (["plot", "m", "--kind", "traversal", "--out", "g.png", "--dims", "0", "-1"], ["argument --dims", "got -1"]),
    (["plot", "m", "--kind", "traversal", "--out", "g.png", "--index", "-1"], ["argument --index", "got -1"]),
    (["plot", "m", "--kind", "blend", "--out", "g.png", "--weights", "1", "nan"], ["argument --weights", "'nan'"]),
    (["plot", "m", "--kind", "samples", "--out", "g.png", "--temperature", "nan"], ["argument --temperature", "'nan'"]),
    (["score", "m", "--out", "scores.txt"], ["argument --out", "scores.txt", ".csv, .json"]),
    (["score", "m", "--out", "s.csv", "--quantile", "1.5"], ["argument --quantile", "< 1", "1.5"]),
    (["score", "m", "--out", "s.csv", "--threshold", "inf"], ["argument --threshold", "'inf'"]),
    (["score", "m", "--out", "s.csv", "--limit", "0"], ["argument --limit", "got 0"]),
    (["score", "m", "--out", "s.csv", "--threshold-examples", "-5"], ["argument --threshold-examples", "got -5"]),
    (["export", "m", "--name", "v", "--version", "-1"], ["argument --version", "got -1"]),
    (["export", "m", "--name", "v", "--version", "one"], ["argument --version", "'one'"]),
    (["serve", "m", "--port", "70000"], ["argument --port", "0 to 65535", "70000"]),
    (["serve", "m", "--host", "999.1.1.1"], ["argument --host", "'999.1.1.1'", "not an IP address"]),
    (["serve", "m", "--max-batch-size", "0"], ["argument --max-batch-size", "got 0"]),
    (["serve", "m", "--max-request-bytes", "-1"], ["argument --max-request-bytes", "got -1"]),
    (["serve", "m", "--poll-seconds", "0"], ["argument --poll-seconds", "got 0"]),
    (["sample", "m", "--out", "g.png", "--seed", HUGE], ["argument --seed", HUGE]),
    (["sample", "m", "--out", "grid.xyz"], ["argument --out", "grid.xyz", ".png"]),
    (["sample", "m", "--out", "g.png", "--columns", "0"], ["argument --columns", "must be >= 1, got 0"]),
    (["sample", "m", "--out", "g.png", "-n", "0"], ["argument -n/--num-samples", "got 0"]),
    (["sample", "m", "--out", "g.png", "-n", "5000"], ["argument -n/--num-samples", "1 to 1024", "5000"]),
    (["sample", "m", "--out", "g.png", "--temperature", "nan"], ["argument --temperature", "'nan'"]),
    (["sample", "m", "--out", "g.png", "--temperature", "-1"], ["argument --temperature", "got -1"]),
    (["sample", "m", "--out", "a_file/g.png"], ["argument --out", "a_file", "is a file, not a folder"]),
    (["studio", "m", "--port", "-1"], ["argument --port", "got -1"]),
    (["studio", "m", "--host", "no such host.invalid"], ["argument --host", "'no such host.invalid'"]),
    (["studio", "m", "--examples", "1"], ["argument --examples", "must be >= 2, got 1"]),
    (["fit-sampler", "m", "--examples", "0"], ["argument --examples", "got 0"]),
    (["fit-sampler", "m", "--num-components", "0"], ["argument --num-components", "got 0"]),
    (["fit-sampler", "m", "--kind", "two_stage", "--epochs", "-1"], ["argument --epochs", "got -1"]),
    (["fit-sampler", "m", "--seed", HUGE], ["argument --seed", HUGE]),
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("errors")
    (folder / "a_file").write_text("not a folder")
    return folder


@pytest.mark.parametrize("argv, fragments", PARSE_ERRORS, ids=[" ".join(argv) for argv, _ in PARSE_ERRORS])
def test_a_bad_flag_value_is_one_line_naming_flag_and_value(argv, fragments, workdir):
    done = run_cli(*argv, cwd=workdir)
    assert done.returncode == 2
    assert_clean_failure(done, f"keras-vae {argv[0]}: error: ", *fragments)


# ------------------------------------------------------------------------------------------ every flag typed
_FLAG_ACTIONS = (argparse._StoreAction, argparse._AppendAction)


def numeric_flags():
    """``(command, action)`` of every option that stores a value and takes or defaults to a number."""
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command, parser in subparsers.choices.items():
        for action in parser._actions:
            if not isinstance(action, _FLAG_ACTIONS):
                continue
            defaults = action.default if isinstance(action.default, list) else [action.default]
            numeric = any(isinstance(d, (int, float)) and not isinstance(d, bool) for d in defaults)
            if numeric or action.type in (int, float) or getattr(action.type, "__module__", "") == common.__name__:
                yield command, action


def test_every_numeric_flag_of_every_command_has_a_validating_type():
    flags = list(numeric_flags())
    untyped = [f"{command} {'/'.join(action.option_strings) or action.dest}" for command, action in flags
               if action.type in (int, float, None) or getattr(action.type, "__module__", "") != common.__name__]
    assert untyped == [], f"numeric flags without a range-checking type from keras_vae.cli.common: {untyped}"
    assert len(flags) >= 45  # the walk sees the flags (a walk that finds nothing would pass)


def test_the_value_types_accept_what_they_should():
    assert common.seed("0") == 0 and common.seed(str(2**31 - 1)) == 2**31 - 1
    assert common.port("0") == 0 and common.port("65535") == 65535
    assert common.positive_float("1e-3") == 0.001 and common.any_float("-2.5") == -2.5
    assert common.fraction("0.99") == 0.99
    assert common.host("127.0.0.1") == "127.0.0.1" and common.host("localhost") == "localhost"
    assert common.host("::1") == "::1"
    assert common.output_path((".png",))("G.PNG") == "G.PNG"
    for parse, text in [(common.seed, str(2**31)), (common.port, "65536"), (common.fraction, "0"),
                        (common.positive_int, "1.0"), (common.non_negative_int, "-1"), (common.any_float, "-inf")]:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_every_image_extension_sample_accepts_is_one_it_writes(tmp_path):
    import keras
    import numpy as np
    from PIL import Image

    for extension in common.IMAGE_FORMATS:
        for channels in (1, 3):
            path = str(tmp_path / f"grid{channels}{extension}")
            path = common.output_path(common.IMAGE_FORMATS)(path)
            keras.utils.save_img(path, np.full((4, 6, channels), 255, np.uint8), scale=False)
            assert Image.open(path).size == (6, 4)


# ------------------------------------------------------------------------------------------ after parsing
def test_config_keys_are_checked_naming_the_key(tmp_path, capsys):
    run = tmp_path / "run"
    for assignment, fragment in [("latent_dim=2.5", "model.latent_dim must be an integer, got 2.5"),
                                 ("model.latent_dim=2.5", "model.latent_dim must be an integer, got 2.5"),
                                 (f"seed={HUGE}", "seed must be an integer from 0 to 2147483647"),
                                 ("seed=-1", "seed must be an integer from 0 to 2147483647"),
                                 (f"model.seed={HUGE}", "model.seed must be an integer from 0"),
                                 ("epochs=2.0", "epochs must be an integer, got 2.0"),
                                 ("learning_rate=.nan", "learning_rate must be a finite number"),
                                 ("batch_size=true", "batch_size must be an integer, got True"),
                                 ("verbose=7", "verbose must be 0, 1 or 2, got 7"),
                                 ("reduce_lr_factor=.inf", "reduce_lr_factor must be a finite number")]:
        assert main(["train", "--run-dir", str(run), "--set", assignment]) == 2, assignment
        err = capsys.readouterr().err
        assert f"keras-vae train: error: {fragment}" in err and "Traceback" not in err, (assignment, err)
    assert not run.exists()


@pytest.fixture(scope="module")
def sprites_run(tmp_path_factory):
    """A run directory of a real (untrained) model for 64x64 sprites: model.keras and config.yaml."""
    run = tmp_path_factory.mktemp("runs") / "sprites"
    run.mkdir()
    model = keras_vae.build_vae((64, 64, 1), 2, architecture="mlp", hidden_units=(8,), seed=0)
    model.save(str(run / "model.keras"))
    (run / "config.yaml").write_text("dataset: sprites\nimage_shape: [64, 64, 1]\n")
    return run


def test_errors_found_after_loading_are_one_line_too(sprites_run, tmp_path, capsys, monkeypatch):
    """Problems found once TensorFlow is loaded, in this process (where it already is): a process each would spend
    most of its time starting TensorFlow. An exception other than the one-line error fails the test here."""
    monkeypatch.chdir(tmp_path)
    cases = [
        # 10**12 examples: capped at the split's 663552 sprites with a note, then refused above the memory budget.
        (["fit-sampler", str(sprites_run), "--examples", str(10**12)],
         ["keras-vae fit-sampler: error: --examples=663552 needs 10.1 GiB", "limit of 2.0 GiB", "131072 fit"]),
        (["sample", str(tmp_path / "nothing"), "--out", "g.png"], ["keras-vae sample: error:", "nothing"]),
        (["serve", str(tmp_path / "nothing"), "--port", "0"], ["keras-vae serve: error:", "nothing"]),
        (["train", "--config", "no_such_config.yaml"], ["keras-vae train: error:", "no_such_config.yaml"]),
    ]
    stderr = []
    for argv, fragments in cases:
        status = main(argv)
        done = subprocess.CompletedProcess(argv, status, "", capsys.readouterr().err)
        assert_clean_failure(done, *fragments)
        assert done.returncode == 2
        stderr.append(done.stderr)
    assert f"--examples {10**12} is more than the 663552 examples of 'sprites' train: using 663552." in stderr[0]
    assert not any(name.startswith(TEMP_PREFIX) for name in os.listdir(sprites_run))
