"""A command line that starts at once: the names, the package and the CLI's parser import no TensorFlow.

Each check runs in a fresh interpreter, since the test process itself has TensorFlow loaded (conftest).
"""

import json
import os
import subprocess
import sys
import time

import pytest

import keras_vae
from keras_vae._startup import running_the_command_line
from keras_vae.cli import build_parser

KERAS_VAE = os.path.join(os.path.dirname(sys.executable), "keras-vae")
HEAVY = ("tensorflow", "keras", "numpy", "tensorflow_probability")
HELP_SECONDS = 0.5

# Prints, as JSON, the heavy modules loaded after each step (and what the lazy names resolve to).
PROBE = f"""
import json, sys
heavy = lambda: sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
found = {{}}
import keras_vae.names
found["names"] = heavy()
import keras_vae, keras_vae.training, keras_vae.export, keras_vae.configs, keras_vae.progress
found["package"] = heavy()
from keras_vae.cli import build_parser, main
build_parser()
for argv in (["--help"], ["train", "--help"]):
    try:
        main(argv)
    except SystemExit:
        pass
found["cli"] = heavy()
import keras_vae.factory
found["build_vae_is_factorys"] = keras_vae.build_vae is keras_vae.factory.build_vae
found["unresolved"] = [name for name in keras_vae.__all__ if getattr(keras_vae, name, None) is None]
found["not_in_dir"] = sorted(set(keras_vae.__all__) - set(dir(keras_vae)))
found["priors_submodule"] = keras_vae.priors.__name__
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path_factory.mktemp("probe"), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_importing_the_names_loads_no_tensorflow(probe):
    assert probe["names"] == []


def test_importing_the_package_and_its_subpackages_loads_no_tensorflow(probe):
    assert probe["package"] == []


def test_building_the_parser_and_asking_for_help_loads_no_tensorflow(probe):
    assert probe["cli"] == []


def test_public_names_and_submodules_resolve_on_first_use(probe):
    assert probe["build_vae_is_factorys"] is True
    assert probe["unresolved"] == [] and probe["not_in_dir"] == []
    assert probe["priors_submodule"] == "keras_vae.priors"


def test_an_unknown_name_raises_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="'keras_vae' has no attribute 'nope'"):
        keras_vae.nope  # noqa: B018
    with pytest.raises(ImportError, match="nope"):
        from keras_vae import nope  # noqa: F401


def test_python_dash_m_runs_under_the_command_lines_start_up():
    package = os.path.dirname(keras_vae.__file__)
    for main_file in (os.path.join(package, "__main__.py"), os.path.join(package, "cli", "__main__.py")):
        assert running_the_command_line([main_file, "train"])
    assert running_the_command_line([KERAS_VAE, "train"]) and running_the_command_line(["-m", "train"])
    assert not running_the_command_line(["/usr/bin/python", "train.py"])
    assert not running_the_command_line([os.path.join(os.path.dirname(package), "__main__.py")])


LOAD_IN_A_FRESH_PROCESS = {  # each leaves the library's registered classes for Keras to find
    "load_vae": "import keras_vae; print(type(keras_vae.load_vae({path!r})).__name__)",
    "keras first": "import keras, keras_vae; print(type(keras.saving.load_model({path!r})).__name__)",
}


def test_a_saved_model_loads_in_a_fresh_process(tmp_path):
    vae = keras_vae.build_vae((8, 8, 1), 2, architecture="mlp", hidden_units=(8,), prior="vamp", seed=0)
    vae.compile(optimizer=keras_vae.FusedAdam())
    path = str(tmp_path / "vae.keras")
    vae.save(path)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    for how, code in LOAD_IN_A_FRESH_PROCESS.items():
        done = subprocess.run([sys.executable, "-c", code.format(path=path)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 and done.stdout.split()[-1] == "VAE", (how, done.stderr[-3000:])


def _command_names():
    (subparsers,) = [action for action in build_parser()._actions if action.dest == "command"]
    return sorted(subparsers.choices)


def _best_wall_time(argv, env, runs=3):
    """The shortest of ``runs`` wall times of ``argv`` (the machine is shared: the best run is the command's own)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        times.append(time.perf_counter() - start)
        assert done.returncode == 0 and "usage: keras-vae" in done.stdout, done.stderr[-2000:]
    return min(times)


def test_help_answers_at_once(tmp_path):
    assert "train" in _command_names() and "configs" in _command_names()
    # As an installed package runs, from bytecode (pip compiles a wheel's modules), kept out of the source tree;
    # a first, uncounted run writes it.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pycache")
    subprocess.run([KERAS_VAE, "--help"], env=env, capture_output=True, timeout=120)
    slow = {}
    for argv in [[KERAS_VAE, "--help"]] + [[KERAS_VAE, name, "--help"] for name in _command_names()]:
        seconds = _best_wall_time(argv, env)
        if seconds >= HELP_SECONDS:
            slow[" ".join(argv[1:])] = round(seconds, 2)
    assert slow == {}, f"--help took {HELP_SECONDS} s or more: {slow}"
