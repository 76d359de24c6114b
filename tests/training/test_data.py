"""Datasets: canonical-file parsing (good, truncated, corrupt), the shared data, tfds mocks, sprites."""

import gzip
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_vae.training import canonical_files, data, sprites


def _idx_bytes(array):
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def _write_mnist(folder, n_train=50_010, n_test=7, gz=True):
    rng = np.random.RandomState(0)
    files = {
        "train-images-idx3-ubyte": rng.randint(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.randint(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) + 3) % 10,
    }
    os.makedirs(folder, exist_ok=True)
    for name, array in files.items():
        raw = _idx_bytes(array)
        if gz:
            with gzip.open(os.path.join(folder, name + ".gz"), "wb") as f:
                f.write(raw)
        else:
            with open(os.path.join(folder, name), "wb") as f:
                f.write(raw)
    return files


def _amat_text(images):
    return "".join(" ".join(str(int(v)) for v in image.reshape(-1)) + "\n" for image in images)


# ------------------------------------------------------------------------------------------ IDX
def test_idx_round_trip_plain_and_gzip(tmp_path):
    images = np.random.RandomState(1).randint(0, 256, (5, 28, 28)).astype(np.uint8)
    (tmp_path / "a-idx3-ubyte").write_bytes(_idx_bytes(images))
    with gzip.open(tmp_path / "b-idx3-ubyte.gz", "wb") as f:
        f.write(_idx_bytes(images))
    np.testing.assert_array_equal(canonical_files.read_idx(tmp_path / "a-idx3-ubyte"), images)
    np.testing.assert_array_equal(canonical_files.read_idx(tmp_path / "b-idx3-ubyte.gz"), images)


def test_idx_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(_idx_bytes(np.zeros((4, 28, 28)))[:-100])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*truncated.*\(4, 28, 28\)"):
        canonical_files.read_idx(path)


def test_idx_bad_magic_and_short_header(tmp_path):
    bad = tmp_path / "bad-idx1-ubyte"
    bad.write_bytes(b"\x00\x00\x0d\x01" + (3).to_bytes(4, "big") + b"abc")  # float dtype code
    with pytest.raises(ValueError, match="bad-idx1-ubyte.*magic number"):
        canonical_files.read_idx(bad)
    short = tmp_path / "short-idx3-ubyte"
    short.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(ValueError, match="short-idx3-ubyte.*header is cut short"):
        canonical_files.read_idx(short)


def test_idx_truncated_gzip_names_the_file(tmp_path):
    raw = gzip.compress(_idx_bytes(np.zeros((100, 28, 28))))
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz.*gzip"):
        canonical_files.read_idx(path)


# ------------------------------------------------------------------------------------------ amat
def test_amat_round_trip(tmp_path):
    images = (np.random.RandomState(2).rand(3, 28, 28) > 0.5).astype(np.uint8)
    path = tmp_path / "binarized_mnist_valid.amat"
    path.write_text(_amat_text(images))
    np.testing.assert_array_equal(canonical_files.read_amat(path), images)


def test_amat_truncated_and_corrupt(tmp_path):
    images = np.ones((2, 28, 28), np.uint8)
    text = _amat_text(images)
    truncated = tmp_path / "binarized_mnist_train.amat"
    truncated.write_text(text[:-301])
    with pytest.raises(ValueError, match=r"binarized_mnist_train.amat.*line 2 has 634 values.*truncated"):
        canonical_files.read_amat(truncated)
    corrupt = tmp_path / "binarized_mnist_test.amat"
    corrupt.write_text(text.replace("1", "x", 1))
    with pytest.raises(ValueError, match=r"binarized_mnist_test.amat.*corrupt.*line 1"):
        canonical_files.read_amat(corrupt)
    glued = tmp_path / "binarized_mnist_valid.amat"
    glued.write_text(text.replace("1 1", "11", 1))
    with pytest.raises(ValueError, match=r"line 1 has a value that is not 0 or 1"):
        canonical_files.read_amat(glued)


# ------------------------------------------------------------------------------------------ local folders
def test_idx_folder_splits_and_labels(tmp_path):
    files = _write_mnist(tmp_path / "mnist", gz=False)
    # data_dir may be the folder or its parent
    for data_dir in (tmp_path / "mnist", tmp_path):
        test = list(data.get_dataset("mnist", "test", data_dir=str(data_dir), with_labels=True))
        assert len(test) == 7
        np.testing.assert_allclose(test[0][0].numpy()[..., 0], files["t10k-images-idx3-ubyte"][0] / 255.0, rtol=1e-6)
        assert [int(y) for _, y in test] == [3, 4, 5, 6, 7, 8, 9]
    valid = data.get_dataset("fashion_mnist", "valid", data_dir=str(tmp_path / "mnist"), batch_size=4,
                             with_labels=True)
    labels = np.concatenate([y.numpy() for _, y in valid])
    assert labels.tolist() == [i % 10 for i in range(50_000, 50_010)]  # the last 10 of train
    train = data.get_dataset("mnist", "train", data_dir=str(tmp_path), batch_size=10_000)
    assert sum(int(b.shape[0]) for b in train) == 50_000


def test_folder_with_some_splits_serves_those(tmp_path):
    _write_mnist(tmp_path, n_test=3)
    for suffix in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        os.remove(tmp_path / suffix)
    assert len(list(data.get_dataset("mnist", "test", data_dir=str(tmp_path)))) == 3
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\[\.gz\].*serves the splits: test"):
        data.get_dataset("mnist", "train", data_dir=str(tmp_path))


def test_corrupt_file_in_folder_raises_naming_it(tmp_path):
    _write_mnist(tmp_path, n_test=3)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_bytes(np.arange(2))))  # 2 labels for 3 images
    with pytest.raises(ValueError, match="t10k-images.*3 images.*t10k-labels.*2 labels"):
        data.get_dataset("mnist", "test", data_dir=str(tmp_path))


def test_amat_folder(tmp_path):
    images = (np.random.RandomState(3).rand(5, 28, 28) > 0.5).astype(np.uint8)
    (tmp_path / "binarized_mnist_valid.amat").write_text(_amat_text(images))
    got = np.concatenate(list(data.get_dataset("binarized_mnist", "valid", data_dir=str(tmp_path), batch_size=2)))
    np.testing.assert_array_equal(got[..., 0], images.astype(np.float32))
    with pytest.raises(ValueError, match="has no labels"):
        data.get_dataset("binarized_mnist", "valid", data_dir=str(tmp_path), with_labels=True)
    with pytest.raises(FileNotFoundError, match="binarized_mnist_test.amat"):
        data.get_dataset("binarized_mnist", "test", data_dir=str(tmp_path))


def test_shared_mnist_and_binarized_mnist(shared_data_dir):
    images, labels = next(iter(data.get_dataset("mnist", "test", data_dir=shared_data_dir, batch_size=10_000,
                                                with_labels=True)))
    assert images.shape == (10_000, 28, 28, 1) and images.dtype == tf.float32
    assert 0.0 == float(tf.reduce_min(images)) and float(tf.reduce_max(images)) == 1.0
    assert labels[:10].numpy().tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the canonical first test labels
    valid = next(iter(data.get_dataset("binarized_mnist", "valid", data_dir=shared_data_dir, batch_size=10_000)))
    assert valid.shape == (10_000, 28, 28, 1)
    assert set(np.unique(valid.numpy())) == {0.0, 1.0}
    assert 0.1 < float(tf.reduce_mean(valid)) < 0.2  # MNIST ink density


def test_dynamic_binarization_is_seeded_and_fresh_each_epoch(tmp_path):
    _write_mnist(tmp_path, n_test=64)

    def epochs(seed):
        ds = data.get_dataset("mnist", "test", data_dir=str(tmp_path), batch_size=64, shuffle=True, seed=seed,
                              dynamic_binarization=True)
        return [next(iter(ds)).numpy() for _ in range(2)]

    first, second = epochs(5)
    assert set(np.unique(first)) == {0.0, 1.0}
    assert not np.array_equal(first, second)  # a fresh draw (and order) every epoch
    again = epochs(5)
    np.testing.assert_array_equal(first, again[0])
    np.testing.assert_array_equal(second, again[1])


# ------------------------------------------------------------------------------------------ tfds
@pytest.mark.parametrize(
    "name, shape, label_shape",
    [
        ("mnist", (28, 28, 1), ()),
        ("fashion_mnist", (28, 28, 1), ()),
        ("binarized_mnist", (28, 28, 1), None),
        ("cifar10", (32, 32, 3), ()),
        ("celeb_a", (64, 64, 3), (40,)),
        ("dsprites", (64, 64, 1), (5,)),
    ],
)
def test_tfds_sources_with_mock_data(name, shape, label_shape, monkeypatch):
    # mock_data stands in for the download, so the network probe must let the download be tried.
    from keras_vae.training import tfds_source

    monkeypatch.setattr(tfds_source, "network_reachable", lambda timeout=None: True)
    # dsprites splits by a fixed permutation of the grid index: enough mock examples land in each split
    with tfds.testing.mock_data(num_examples=400 if name == "dsprites" else 12):
        for split in ("train", "valid", "test"):
            ds = data.get_dataset(name, split, batch_size=4, with_labels=label_shape is not None)
            batch = next(iter(ds))
            images, labels = batch if label_shape is not None else (batch, None)
            assert tuple(images.shape[1:]) == shape and images.dtype == tf.float32
            assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
            if labels is not None:
                assert tuple(labels.shape[1:]) == label_shape and labels.dtype == tf.int32
    info = data.dataset_info(name)
    assert info.image_shape == shape


def test_tfds_unavailable_names_data_dir(tmp_path):
    with pytest.raises(data.DataUnavailableError, match="--data-dir"):
        data.get_dataset("cifar10", "train", data_dir=str(tmp_path))
    with pytest.raises(data.DataUnavailableError, match="not a directory"):
        data.get_dataset("mnist", "train", data_dir=str(tmp_path / "missing"))


def test_idx_images_of_another_size_name_the_file(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name, array in {"t10k-images-idx3-ubyte": np.zeros((3, 32, 32)), "t10k-labels-idx1-ubyte": np.arange(3)}.items():
        (folder / name).write_bytes(_idx_bytes(array))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte' holds 32x32 images; dataset 'mnist' has 28x28"):
        data.get_dataset("mnist", "test", data_dir=str(tmp_path))


class _PreparedMnist(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A few MNIST-shaped examples written in the real `mnist` builder's name, version and features, so that
    `tfds.builder("mnist")` finds them prepared in the data dir (no download, no mock)."""

    name = "mnist"

    def __init__(self, real, **kwargs):
        self.VERSION = real.version
        self._real_features = real.info.features
        super().__init__(**kwargs)

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=self._real_features, supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(3, 0), "test": self._generate_examples(5, 1)}

    def _generate_examples(self, count, seed):
        rng = np.random.RandomState(seed)
        for i in range(count):
            yield i, {"image": rng.randint(0, 256, (28, 28, 1)).astype(np.uint8), "label": i % 10}


def test_the_real_tfds_builder_reads_a_dataset_prepared_in_a_local_data_dir(tmp_path):
    # The real builder class (its module and dependencies imported, e.g. importlib_resources), not a mock.
    real = tfds.builder("mnist", data_dir=str(tmp_path))
    assert type(real).__name__ == "MNIST" and real.info.features["image"].shape == (28, 28, 1)
    assert not real.is_prepared()
    _PreparedMnist(real, data_dir=str(tmp_path)).download_and_prepare()
    prepared = tfds.builder("mnist", data_dir=str(tmp_path))
    assert type(prepared).__name__ == "MNIST" and prepared.is_prepared()
    images, labels = next(iter(data.get_dataset("mnist", "test", data_dir=str(tmp_path), batch_size=8,
                                                with_labels=True)))
    assert images.shape == (5, 28, 28, 1) and sorted(labels.numpy().tolist()) == [0, 1, 2, 3, 4]
    assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0


def test_unknown_dataset_and_split():
    with pytest.raises(ValueError, match="Unknown dataset 'imagenet'.*sprites"):
        data.get_dataset("imagenet", "train")
    with pytest.raises(ValueError, match="Unknown split 'validation'"):
        data.get_dataset("sprites", "validation")


# ------------------------------------------------------------------------------------------ sprites
def test_sprites_info_and_split_sizes():
    info = data.dataset_info("sprites")
    assert info.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert info.factor_sizes == (3, 6, 40, 32, 32)
    assert info.label_kind == "factors" and info.num_classes is None and info.image_shape == (64, 64, 1)
    assert sum(info.split_sizes.values()) == 3 * 6 * 40 * 32 * 32
    splits = data.grid_split_indices()
    assert {k: len(v) for k, v in splits.items()} == info.split_sizes
    assert len(np.intersect1d(splits["train"], splits["valid"])) == 0
    assert len(np.intersect1d(splits["valid"], splits["test"])) == 0


def test_sprites_labels_render_their_images_deterministically():
    ds = data.get_dataset("sprites", "valid", batch_size=16, shuffle=True, seed=3, with_labels=True)
    images, factors = next(iter(ds))
    assert images.shape == (16, 64, 64, 1) and factors.shape == (16, 5) and factors.dtype == tf.int32
    assert np.all(factors.numpy() < np.array(sprites.FACTOR_SIZES)) and np.all(factors.numpy() >= 0)
    np.testing.assert_array_equal(data.render_sprites(factors).numpy(), images.numpy())
    again_images, again_factors = next(iter(data.get_dataset("sprites", "valid", batch_size=16, shuffle=True,
                                                             seed=3, with_labels=True)))
    np.testing.assert_array_equal(again_factors, factors)
    indices = sprites.index_from_factors(factors).numpy()
    assert set(indices) <= set(data.grid_split_indices()["valid"])


def test_render_sprites_factors_change_the_image():
    base = [1, 3, 7, 10, 20]
    images = data.render_sprites([base] + [[*base[:i], (base[i] + 1) % s, *base[i + 1:]]
                                           for i, s in enumerate(sprites.FACTOR_SIZES)]).numpy()
    assert set(np.unique(images)) == {0.0, 1.0}
    for changed in images[1:]:
        assert not np.array_equal(changed, images[0])
    # a larger scale draws more pixels; a shift right moves the centre of mass right
    small, large = data.render_sprites([[2, 0, 0, 16, 16], [2, 5, 0, 16, 16]]).numpy()
    assert large.sum() > 2 * small.sum()
    left, right = data.render_sprites([[0, 3, 0, 0, 16], [0, 3, 0, 31, 16]]).numpy()
    columns = np.arange(64)
    assert (right.sum(axis=(0, 2)) * columns).sum() / right.sum() > (left.sum(axis=(0, 2)) * columns).sum() / left.sum() + 20


def test_render_sprites_rejects_bad_factors():
    with pytest.raises(ValueError, match="orientation = 40"):
        data.render_sprites([[0, 0, 40, 0, 0]])
    with pytest.raises(ValueError, match=r"shape \(n, 5\)"):
        data.render_sprites([0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="integers"):
        data.render_sprites([[0.0, 0.0, 0.0, 0.0, 0.0]])
