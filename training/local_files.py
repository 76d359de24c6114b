"""A dataset's canonical release files in a local folder (``data_dir``): where they are, which splits they
serve, and a split read from them (MNIST's IDX files; binarized MNIST's ``.amat`` files).

Example:

>>> folder = canonical_folder("mnist", "idx", "../shared/data")        # data_dir itself or data_dir/mnist
>>> images, labels = read_split("mnist", "idx", folder, "valid", (28, 28, 1))   # uint8 [10000, 28, 28, 1]
"""

import os

import numpy as np

from keras_vae.training import canonical_files
from keras_vae.training.names import SPLITS


class DataUnavailableError(FileNotFoundError):
    """The dataset cannot be read: not downloadable here and not found in ``data_dir``."""


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "valid": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_MNIST_TRAIN = 50_000


def find(folder, stem):
    for candidate in (stem, stem + ".gz"):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def expected_files(fmt, split):
    if fmt == "idx":
        return [f + "[.gz]" for f in _IDX_FILES[split]]
    return [f"binarized_mnist_{split}.amat"]


def canonical_folder(name, fmt, data_dir):
    """The folder holding ``name``'s canonical files: ``data_dir`` itself or ``data_dir/name``; else None."""
    for folder in (data_dir, os.path.join(data_dir, name)):
        if not os.path.isdir(folder):
            continue
        entries = os.listdir(folder)
        if fmt == "idx" and any("-idx" in e and "-ubyte" in e for e in entries):
            return folder
        if fmt == "amat" and any(e.startswith("binarized_mnist_") and e.endswith(".amat") for e in entries):
            return folder
    return None


def served_splits(fmt, folder):
    if fmt == "idx":
        return [s for s in SPLITS if all(find(folder, f) for f in _IDX_FILES[s])]
    return [s for s in SPLITS if find(folder, f"binarized_mnist_{s}.amat")]


def read_split(name, fmt, folder, split, image_shape):
    """(images uint8 [n, H, W, 1], labels or None) from canonical files, raising if the split's files are missing."""
    needed = _IDX_FILES[split] if fmt == "idx" else (f"binarized_mnist_{split}.amat",)
    paths = [find(folder, f) for f in needed]
    if None in paths:
        served = served_splits(fmt, folder)
        raise DataUnavailableError(
            f"No {' and '.join(expected_files(fmt, split))} in {folder!r} for the {split!r} split of {name!r}; "
            f"this folder serves the splits: {', '.join(served) or 'none'}."
        )
    if fmt == "amat":
        return canonical_files.read_amat(paths[0])[..., np.newaxis], None
    images, labels = (canonical_files.read_idx(p) for p in paths)
    if images.ndim != 3 or labels.ndim != 1:
        raise ValueError(f"{paths[0]!r} / {paths[1]!r}: expected images (n, H, W) and labels (n,), got "
                         f"{images.shape} and {labels.shape}.")
    if len(images) != len(labels):
        raise ValueError(f"{paths[0]!r} holds {len(images)} images but {paths[1]!r} holds {len(labels)} labels.")
    expected = tuple(image_shape[:2])
    if images.shape[1:] != expected:  # caught here, not inside TensorFlow's shape checks
        raise ValueError(f"{paths[0]!r} holds {images.shape[1]}x{images.shape[2]} images; dataset {name!r} has "
                         f"{expected[0]}x{expected[1]} images. Is this the right file (or the right --dataset)?")
    if split != "test":
        if len(images) <= _MNIST_TRAIN:
            raise ValueError(f"{paths[0]!r} holds {len(images)} images; the train/valid split needs more than "
                             f"{_MNIST_TRAIN}.")
        part = slice(None, _MNIST_TRAIN) if split == "train" else slice(_MNIST_TRAIN, None)
        images, labels = images[part], labels[part]
    return images[..., np.newaxis], labels.astype(np.int32)
