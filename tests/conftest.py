"""Shared test setup: two logical CPUs (for MirroredStrategy tests) and small image fixtures."""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

# Must run before TensorFlow initializes its devices; every test process imports conftest first.
_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
except RuntimeError:  # already initialized (e.g. by a plugin); mirrored tests then skip
    pass


@pytest.fixture(autouse=True)
def fresh_collective_keys():
    """Each test's MirroredStrategy gets collective keys no earlier test in this worker used: TF caches
    all-reduces by key for the whole process (keras_vae.training.strategies.mirrored_strategy does the same)."""
    tf.distribute.MirroredStrategy._collective_key_base += 100_000
    yield


@pytest.fixture(scope="session", autouse=True)
def contained_temp_files(tmp_path_factory):
    """Temp files that TF, tfds and test subprocesses leave behind go under pytest's own temp root,
    which pytest prunes, instead of piling up in /tmp."""
    root = str(tmp_path_factory.mktemp("tempfiles"))
    saved_env, saved_tempdir = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"], tempfile.tempdir = root, root
    yield root
    tempfile.tempdir = saved_tempdir
    if saved_env is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved_env


def rectangles(n, size=28, seed=0):
    """``n`` binary images, each a random filled axis-aligned rectangle: learnable structure."""
    rng = np.random.RandomState(seed)
    images = np.zeros((n, size, size, 1), np.float32)
    for i in range(n):
        top, left = rng.randint(0, size // 2, size=2)
        height, width = rng.randint(size // 4, size // 2, size=2)
        images[i, top : top + height, left : left + width] = 1.0
    return images


@pytest.fixture
def binary_images():
    return rectangles(64)


@pytest.fixture
def shared_data_dir():
    """../shared/data, or a skip when this checkout has no shared data beside it."""
    root = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
    if not os.path.isdir(root):
        pytest.skip(f"shared datasets not found at {os.path.abspath(root)}")
    return os.path.abspath(root)
