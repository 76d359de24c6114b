"""The training configs that ship with keras-vae (``keras-vae configs`` lists them).

The YAML files beside this module are package data, so ``keras-vae train --config sprites_quick`` works from
an installed wheel; a path to a file of your own works too.

Example:

>>> from keras_vae import configs
>>> configs.names()[:2]
['binarized_mnist_ladder_vamp', 'binarized_mnist_ladder_vamp_dropout']
>>> configs.path("sprites_quick")            # .../keras_vae/configs/sprites_quick.yaml
"""

import importlib.resources
import os

SUFFIX = ".yaml"


def _folder():
    return importlib.resources.files(__name__)


def names():
    """The built-in config names (file names without ``.yaml``), sorted."""
    return sorted(entry.name[: -len(SUFFIX)] for entry in _folder().iterdir() if entry.name.endswith(SUFFIX))


def path(name):
    """The file of built-in config ``name`` (with or without ``.yaml``), or None when there is none."""
    stem = os.path.basename(name)
    stem = stem[: -len(SUFFIX)] if stem.endswith(SUFFIX) else stem
    if stem not in names() or os.path.dirname(name) not in ("", "configs"):
        return None
    return os.fspath(_folder() / f"{stem}{SUFFIX}")


def first_line(name):
    """The config's first comment line: what it is for."""
    with open(path(name)) as f:
        line = f.readline().strip()
    return line.lstrip("# ") if line.startswith("#") else ""
