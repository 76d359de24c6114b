"""training.image_folder through training.data: a folder of images scanned, split, decoded and checked."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_vae.training import data, image_folder
from keras_vae.training.data import image_folder as folder_dataset


def write_images(folder, count=6, size=(16, 16), formats=("png",), seed=0, mode="RGB"):
    """``count`` random images of ``size`` (width, height) in ``folder``, cycling through ``formats``; their paths."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(count):
        fmt = formats[i % len(formats)]
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        path = os.path.join(folder, f"img{seed}_{i:03d}.{fmt}")
        Image.fromarray(pixels).convert(mode).save(path)
        paths.append(path)
    return paths


def truncate(path):
    with open(path, "rb") as f:
        raw = f.read()
    with open(path, "wb") as f:
        f.write(raw[: len(raw) // 2])


def test_classes_formats_recursion_and_ignored_files(tmp_path):
    write_images(tmp_path / "b_dogs", 4, formats=("png", "JPG", "bmp", "gif"))
    write_images(tmp_path / "a_cats" / "indoor", 3, formats=("jpeg",), seed=1)
    (tmp_path / "a_cats" / "notes.txt").write_text("not an image")
    (tmp_path / "b_dogs" / "Thumbs.db").write_bytes(b"\0")
    scan = image_folder.scan_folder(str(tmp_path))
    assert scan.class_names == ("a_cats", "b_dogs")  # sorted as Keras sorts them
    assert len(scan.files) == 7 and scan.ignored == 2
    assert [scan.labels[scan.files.index(f)] for f in ("a_cats/indoor/img1_000.jpeg", "b_dogs/img0_001.JPG")] == [0, 1]
    assert scan.image_shape == (16, 16, 3)
    info = data.dataset_info(str(tmp_path))
    assert info.class_names == ("a_cats", "b_dogs") and info.num_classes == 2 and info.label_kind == "class"
    assert info.split_sizes["train"] + info.split_sizes["valid"] == 7
    assert "2 non-image files ignored" in scan.summary()


def test_the_split_is_stable_when_files_are_added(tmp_path):
    write_images(tmp_path, 60)
    before = image_folder.scan_folder(str(tmp_path), {"valid_fraction": 0.25})
    assert 5 <= sum(before.valid) <= 25  # about a quarter
    write_images(tmp_path, 30, seed=1)
    os.utime(tmp_path)  # a new scan even where the file system's clock is coarse
    after = image_folder.scan_folder(str(tmp_path), {"valid_fraction": 0.25})
    assert len(after.files) == 90
    assert {f: v for f, v in zip(after.files, after.valid) if f in before.files} == dict(zip(before.files, before.valid))
    train, _ = after.split("train")
    valid, _ = after.split("valid")
    assert not set(train) & set(valid) and len(train) + len(valid) == 90
    assert after.split("test") == after.split("valid")


def test_pixels_are_the_files_pixels_in_0_1(tmp_path):
    paths = write_images(tmp_path, 3, formats=("png", "bmp"))
    write_images(tmp_path, 1, seed=1, mode="L")  # grey beside colour: converted to 3 equal channels
    images = np.concatenate([b.numpy() for b in folder_dataset(str(tmp_path), batch_size=2, valid_fraction=0.3,
                                                                 split="train")])
    scan = image_folder.scan_folder(str(tmp_path), {"valid_fraction": 0.3})
    expected = []
    for path in scan.split("train")[0]:
        expected.append(np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0)
    np.testing.assert_allclose(images, np.stack(expected), atol=1e-6)
    grey = [i for i, p in enumerate(scan.split("train")[0]) if os.path.basename(p).startswith("img1")]
    for i in grey:
        assert np.array_equal(images[i, ..., 0], images[i, ..., 2])
    assert len(paths) == 3


def test_channels_and_resize_modes(tmp_path):
    stripes = np.zeros((16, 48, 3), np.uint8)
    stripes[:, :16, 0] = stripes[:, 16:32, 1] = stripes[:, 32:, 2] = 255  # red | green | blue
    Image.fromarray(stripes).save(tmp_path / "a.png")
    Image.fromarray(stripes).save(tmp_path / "b.png")

    def first(**options):
        ds = folder_dataset(str(tmp_path), image_size=8, valid_fraction=0.5, split="train", **options)
        return next(iter(ds)).numpy()

    crop = first()
    assert crop.shape == (8, 8, 3) and np.allclose(crop, [0, 1, 0], atol=1e-3)  # the centre third: green
    stretch = first(resize="stretch")
    assert stretch[4, 0, 0] > 0.9 and stretch[4, 7, 2] > 0.9  # red left, blue right
    pad = first(resize="pad")
    assert np.allclose(pad[:2], 0) and np.allclose(pad[4:], 0) and pad[3, 0, 0] > 0.9  # black bands above and below
    grey = first(channels=1)
    assert grey.shape == (8, 8, 1)
    np.testing.assert_allclose(grey, tf.image.rgb_to_grayscale(crop).numpy(), atol=1e-5)


def test_on_disk_cache(tmp_path):
    write_images(tmp_path / "pics", 12)
    cache = tmp_path / "cache"
    ds = folder_dataset(str(tmp_path / "pics"), batch_size=4, cache_dir=str(cache))
    first = np.concatenate([b.numpy() for b in ds])
    assert any(name.startswith("train-") for name in os.listdir(cache))
    np.testing.assert_array_equal(np.concatenate([b.numpy() for b in ds]), first)


def _folder_case(tmp_path, case):
    """A bad folder of each kind; returns (path, the file or folder the message must name)."""
    root = tmp_path / case
    if case == "missing":
        return str(root), str(root)
    if case == "no images":
        os.makedirs(root)
        (root / "readme.txt").write_text("x")
        return str(root), str(root)
    if case == "truncated":
        paths = write_images(root, 6, formats=("png", "jpg"))
        truncate(paths[3])
        return str(root), paths[3]
    if case == "not an image":
        write_images(root, 4)
        (root / "fake.png").write_text("this is text")
        return str(root), str(root / "fake.png")
    if case == "mixed sizes":
        write_images(root, 4)
        write_images(root, 2, size=(20, 12), seed=1)
        return str(root), str(root)
    if case == "tiny":
        write_images(root, 4)
        Image.new("RGB", (7, 20)).save(root / "tiny.png")
        return str(root), str(root / "tiny.png")
    if case == "loose images":
        write_images(root / "cats", 4)
        write_images(root, 1, seed=2)
        return str(root), str(root)
    raise AssertionError(case)


BAD_CASES = {
    "missing": "no such folder",
    "no images": "holds no images",
    "truncated": "Unreadable image",
    "not an image": "Unreadable image",
    "mixed sizes": "holds images of 2 sizes",
    "tiny": "at least 8 pixels a side",
    "loose images": "beside its class sub-folders",
}


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_folders_are_named(tmp_path, case):
    path, culprit = _folder_case(tmp_path, case)
    with pytest.raises(ValueError, match=BAD_CASES[case]) as raised:
        data.dataset_info(path)
    assert repr(os.path.abspath(culprit))[1:-1] in str(raised.value) or repr(culprit)[1:-1] in str(raised.value)


def test_skip_bad_images_skips_and_counts(tmp_path):
    path, bad = _folder_case(tmp_path, "truncated")
    scan = image_folder.scan_folder(path, {"skip_bad_images": True})
    assert scan.skipped == (os.path.basename(bad),) and len(scan.files) == 5
    assert "1 unreadable images skipped" in scan.summary()
    images = [b.numpy() for b in folder_dataset(path, skip_bad_images=True, split="train")]
    assert len(images) == sum(1 for v in scan.valid if not v)


def test_a_bad_image_met_while_training_is_named(tmp_path, monkeypatch):
    """Folders over DECODE_CHECK_LIMIT are scanned by header only: a decoding error is then traced to its file."""
    monkeypatch.setattr(image_folder, "DECODE_CHECK_LIMIT", 0)
    paths = write_images(tmp_path, 8, formats=("png",))
    with open(paths[2], "r+b") as f:  # the header intact, the pixel data cut
        f.truncate(os.path.getsize(paths[2]) - 40)
    ds = folder_dataset(str(tmp_path), valid_fraction=0.01, batch_size=4)
    with pytest.raises(ValueError, match="Unreadable image") as raised:
        with image_folder.bad_image_named(str(tmp_path)):
            for _ in ds:
                pass
    assert paths[2] in str(raised.value)
    with pytest.raises(tf.errors.InvalidArgumentError):  # no folder: the error passes unchanged
        with image_folder.bad_image_named(None):
            for _ in ds:
                pass


def test_tfds_dataset_at_the_source_options(tmp_path):
    """A tfds: dataset prepared in a local data dir, resized and converted as a folder's images are."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.dataset_builders import adhoc_builder

    features = tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(12, 10, 3)),
                                           "label": tfds.features.ClassLabel(names=["cat", "dog"])})
    rng = np.random.default_rng(0)
    examples = [(i, {"image": rng.integers(0, 256, (12, 10, 3), dtype=np.uint8), "label": i % 2}) for i in range(10)]
    adhoc_builder.store_as_tfds_dataset(name="tiny_folderlike", version="1.0.0", features=features,
                                        split_datasets={"train": examples}, data_dir=str(tmp_path))
    options = {"image_size": [8, 8], "channels": 1, "resize": "stretch", "valid_fraction": 0.2}
    info = data.dataset_info("tfds:tiny_folderlike", str(tmp_path), options)
    assert info.image_shape == (8, 8, 1) and info.class_names == ("cat", "dog") and info.split_sizes["valid"] == 2
    images, labels = data.load_examples("tfds:tiny_folderlike", "valid", str(tmp_path), with_labels=True,
                                        source_options=options)
    assert images.shape == (2, 8, 8, 1) and sorted(labels.tolist()) in ([0, 1], [0, 0], [1, 1])
    expected = {i: np.clip(tf.image.resize(tf.image.rgb_to_grayscale(e["image"].astype(np.float32) / 255), (8, 8),
                                           antialias=True).numpy(), 0, 1) for i, e in examples}
    for image, label in zip(images, labels):  # tfds stores examples in its own order: find each one's source
        match = [i for i, e in expected.items() if np.allclose(image, e, atol=1e-5)]
        assert len(match) == 1 and examples[match[0]][1]["label"] == label
