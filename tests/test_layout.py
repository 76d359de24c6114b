"""The package layout: one installed namespace, and imports that point one way without cycles.

- The wheel adds only ``keras_vae`` (and its dist-info) to site-packages.
- A user folder with its own ``export.py`` and ``training.py`` does not shadow the package.
- Imports, read with `ast` (function-level ones too): the CLI -> training / export -> the model library;
  the library imports none of them, training and export not each other, and no module cycles.
"""

import ast
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# Source folder -> installed package name (setup.cfg package_dir).
SOURCE_PACKAGES = {"keras_vae": "keras_vae", "training": "keras_vae.training", "export": "keras_vae.export",
                   "configs": "keras_vae.configs"}
# Which layers each layer may import.
ALLOWED = {
    "cli": {"cli", "training", "export", "library"},
    "training": {"training", "library"},
    "export": {"export", "library"},
    "library": {"library"},
}


# ------------------------------------------------------------------------------------------ wheel
def _copy_sources(target):
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), target)
    for folder in SOURCE_PACKAGES:
        shutil.copytree(os.path.join(ROOT, folder), os.path.join(target, folder),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def wheel_top_level_names(wheel_path):
    """The first path component of every file in a wheel."""
    with zipfile.ZipFile(wheel_path) as wheel:
        return {name.split("/", 1)[0] for name in wheel.namelist()}


def check_top_level_names(names):
    """The names a wheel may put in site-packages: ``keras_vae`` and its dist-info; returns the others."""
    return sorted(n for n in names if n != "keras_vae" and not (n.startswith("keras_vae-") and n.endswith(".dist-info")))


def test_top_level_name_check_catches_extra_packages():
    assert check_top_level_names({"keras_vae", "keras_vae-0.1.0.dist-info"}) == []
    assert check_top_level_names({"keras_vae", "training", "export", "keras_vae-0.1.0.dist-info"}) == [
        "export", "training"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built from a copy of the sources (building leaves build/ and egg-info folders behind)."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    source = tmp_path / "source"
    source.mkdir()
    _copy_sources(source)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
         str(source)], capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    (wheel_path,) = (tmp_path / "dist").glob("keras_vae-*.whl")
    return wheel_path


def test_the_wheel_installs_only_the_keras_vae_namespace(wheel):
    names = wheel_top_level_names(wheel)
    assert check_top_level_names(names) == [], names
    with zipfile.ZipFile(wheel) as archive:
        files = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in files if n.endswith("entry_points.txt"))
    for module in ("keras_vae/training/train.py", "keras_vae/export/__init__.py", "keras_vae/cli/__init__.py",
                   "keras_vae/cli/train.py", "keras_vae/names.py", "keras_vae/configs/sprites_quick.yaml",
                   "keras_vae/export/studio/static/index.html", "keras_vae/__main__.py"):
        assert module in files, module
    assert "keras-vae = keras_vae.cli:main" in entry_points


def test_the_wheel_supports_every_python_the_pinned_stack_has_wheels_for(wheel):
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(archive.read(n).decode() for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    (requires,) = [line for line in metadata.splitlines() if line.startswith("Requires-Python:")]
    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(requires.split(":", 1)[1].strip())
    assert all(version in spec for version in ("3.11", "3.12", "3.13")), requires
    assert "3.10" not in spec and "3.14" not in spec, requires  # no wheels of TensorFlow 2.21 there


def test_a_built_in_config_is_found_from_an_installed_wheel_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                           str(wheel)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    code = ("import keras_vae, keras_vae.configs as c; from keras_vae.training.config import load_config; "
            "print(keras_vae.__file__); print(c.path('sprites_quick')); print(load_config('sprites_quick').dataset)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)  # the installed copy comes first, before the editable checkout
    done = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    package_file, config_path, dataset = done.stdout.split()[-3:]
    assert package_file.startswith(str(target)) and config_path.startswith(str(target))
    assert dataset == "sprites"


SHADOWED_IMPORT = "from keras_vae.export import export_model; import keras_vae.training.config; print('imported')"


def test_user_modules_named_export_and_training_do_not_shadow_the_package(tmp_path):
    for name in ("export", "training"):
        (tmp_path / f"{name}.py").write_text(f"raise ImportError('the user module {name}.py was imported')\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("PYTHONPATH", None)
    done = subprocess.run([sys.executable, "-c", SHADOWED_IMPORT], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and "imported" in done.stdout, done.stderr[-3000:]
    # ...and the user's own modules still import from there.
    done = subprocess.run([sys.executable, "-c", "import export"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert "the user module export.py was imported" in done.stderr


# ------------------------------------------------------------------------------------------ imports
def module_files(root=ROOT):
    """``{installed module name: path}`` for every Python file of the packages in `SOURCE_PACKAGES`."""
    modules = {}
    for folder, package in SOURCE_PACKAGES.items():
        for directory, _, filenames in os.walk(os.path.join(root, folder)):
            relative = os.path.relpath(directory, os.path.join(root, folder))
            parts = [package] + ([] if relative == "." else relative.split(os.sep))
            for filename in filenames:
                if filename.endswith(".py"):
                    name = ".".join(parts + ([] if filename == "__init__.py" else [filename[:-3]]))
                    modules[name] = os.path.join(directory, filename)
    return modules


def imports_of(source, module, is_package, known):
    """Internal modules ``source`` imports anywhere (module level or inside functions)."""
    found = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import keras_vae.x.y` where y is a name in x
                target = target.rpartition(".")[0]
            if target:
                found.add(target)
    return found - {module}


def import_graph(root=ROOT):
    """``{module: set of internal modules it imports}`` of the whole source tree."""
    files = module_files(root)
    graph = {}
    for module, path in files.items():
        with open(path) as f:
            graph[module] = imports_of(f.read(), module, path.endswith("__init__.py"), files)
    return graph


def layer(module):
    """``cli``, ``training``, ``export`` or ``library`` (every other ``keras_vae`` module)."""
    if module == "keras_vae.__main__" or module.startswith("keras_vae.cli"):
        return "cli"
    for name in ("training", "export"):
        if module == f"keras_vae.{name}" or module.startswith(f"keras_vae.{name}."):
            return name
    return "library"


def layer_violations(graph):
    """``(importer, imported)`` pairs that break the dependency direction."""
    return sorted((a, b) for a, targets in graph.items() for b in targets if layer(b) not in ALLOWED[layer(a)])


def import_cycles(graph):
    """Every import cycle (as a list of modules, first repeated last), found by depth-first search."""
    cycles, state = [], {}

    def visit(node, path):
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles


def test_the_checkers_find_bad_imports_in_a_synthetic_tree(tmp_path):
    for folder, files in {
        "keras_vae": {"__init__.py": "", "model.py": "def f():\n    from keras_vae.training import train\n",
                      "cli/__init__.py": "import keras_vae.training.train\n"},
        "training": {"__init__.py": "", "train.py": "from . import data\n", "data.py": "from .train import run\n",
                     "uses_export.py": "def g():\n    import keras_vae.export.tool\n"},
        "export": {"__init__.py": "", "tool.py": "from keras_vae.training.data import x\n"},
    }.items():
        for name, text in files.items():
            path = tmp_path / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    graph = import_graph(str(tmp_path))
    assert graph["keras_vae.training.train"] == {"keras_vae.training.data"}  # relative imports resolved
    assert layer_violations(graph) == [
        ("keras_vae.export.tool", "keras_vae.training.data"),
        ("keras_vae.model", "keras_vae.training.train"),  # a function-level import counts
        ("keras_vae.training.uses_export", "keras_vae.export.tool"),
    ]
    assert [set(cycle) for cycle in import_cycles(graph)] == [{"keras_vae.training.data", "keras_vae.training.train"}]


def test_imports_point_from_the_cli_to_training_and_export_to_the_library():
    graph = import_graph()
    assert "keras_vae.cli" in graph and "keras_vae.training.train" in graph and "keras_vae.export" in graph
    assert layer_violations(graph) == []


def test_no_import_cycles():
    assert import_cycles(import_graph()) == []


# ------------------------------------------------------------------------------------------ module size
MAX_MODULE_LINES = 450


def test_every_module_is_short_enough_to_read():
    long = {}
    for path in module_files().values():
        with open(path) as f:
            lines = sum(1 for _ in f)
        if lines > MAX_MODULE_LINES:
            long[os.path.relpath(path, ROOT)] = lines
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines (split by concern): {long}"
