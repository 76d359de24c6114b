"""Named image datasets as `tf.data` pipelines of float32 images in [0, 1], with splits train/valid/test.

Sources:

- ``sprites`` (default): the dSprites factor grid rendered on the fly (`training.sprites`); no download.
- ``mnist``, ``fashion_mnist``: tensorflow-datasets, or the canonical IDX files in ``data_dir``
  (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``, ``t10k-...``).
- ``binarized_mnist``: tensorflow-datasets, or Larochelle's ``binarized_mnist_{train,valid,test}.amat``.
- ``cifar10``, ``celeb_a`` (centre-cropped to 148x148 and resized to 64x64), ``dsprites``: tensorflow-datasets
  (``data_dir`` is then a tfds data directory holding the prepared dataset).
- a folder of images (`image_folder`; `keras_vae.training.image_folder`), ``tfds:NAME[/CONFIG][:SPLIT]``
  (`keras_vae.training.tfds_source`): with the source options of `source_options_of`.

A folder of canonical files may hold only some splits; ``data_dir`` may be that folder or its parent.
Where the source has no validation split it is carved from train deterministically (the last 10,000
MNIST train images, the last 5,000 CIFAR-10 ones; a fixed index permutation for the sprite grids:
``sprites`` splits come in that permutation's order, ``dsprites`` ones in file order, sorted by factor).

Example:

>>> ds = get_dataset("sprites", "train", batch_size=64, shuffle=True, seed=0)
>>> images = next(iter(ds))                                  # [64, 64, 64, 1] float32
>>> ds = get_dataset("mnist", "test", data_dir="../shared/data", batch_size=100, with_labels=True)
>>> dataset_info("sprites").factor_sizes
(3, 6, 40, 32, 32)
>>> images, labels = load_examples("sprites", "valid", count=100, with_labels=True, shuffle=True)
"""

import dataclasses
import functools
import os

import numpy as np

from keras_vae.limits import check_size
from keras_vae.training import local_files, sprites
from keras_vae.training.local_files import DataUnavailableError  # noqa: F401  (public here)
from keras_vae.training.names import FOLDER_OPTIONS, SOURCE_OPTIONS, SPLITS, TFDS_OPTIONS, TFDS_PREFIX
from keras_vae.training.sprites import render_sprites  # noqa: F401  (public: the metrics render chosen factors)
SPLIT_SEED = 20240613  # fixed: the sprite-grid splits never depend on the run's --seed
SHUFFLE_BUFFER = 20_000  # for streamed (tfds) sources; in-memory sources shuffle fully
CELEB_A_CROP = 148
CELEB_A_SIZE = 64
_GRID_HELD_OUT = 36_864  # 5% of the sprite grid each for valid and test


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a dataset holds: image shape, labels and split sizes.

    ``label_kind`` is ``"class"`` (an int32 scalar in ``[0, num_classes)``), ``"factors"`` (an int32
    vector of factor indices, one per entry of ``factor_names``; ``factor_sizes`` gives their ranges)
    or None (no labels).
    """

    name: str
    image_shape: tuple
    num_classes: int | None
    label_kind: str | None
    factor_names: tuple | None
    factor_sizes: tuple | None
    split_sizes: dict
    binary: bool  # pixels are already 0/1
    class_names: tuple | None = None  # a folder's class sub-folders, a tfds ClassLabel's names


@dataclasses.dataclass(frozen=True)
class _Spec:
    image_shape: tuple
    binary: bool
    label_kind: str | None
    split_sizes: dict
    num_classes: int | None = None
    tfds_splits: dict | None = None  # our split -> tfds split string
    local_format: str | None = None  # "idx" or "amat"


_MNIST_SPLITS = {"train": "train[:50000]", "valid": "train[50000:]", "test": "test"}
_GRID_SIZES = {"train": sprites.NUM_IMAGES - 2 * _GRID_HELD_OUT, "valid": _GRID_HELD_OUT, "test": _GRID_HELD_OUT}
_SPECS = {
    "sprites": _Spec((64, 64, 1), True, "factors", _GRID_SIZES),
    "mnist": _Spec(
        (28, 28, 1), False, "class", {"train": 50_000, "valid": 10_000, "test": 10_000}, 10, _MNIST_SPLITS, "idx"
    ),
    "fashion_mnist": _Spec(
        (28, 28, 1), False, "class", {"train": 50_000, "valid": 10_000, "test": 10_000}, 10, _MNIST_SPLITS, "idx"
    ),
    "binarized_mnist": _Spec(
        (28, 28, 1),
        True,
        None,
        {"train": 50_000, "valid": 10_000, "test": 10_000},
        None,
        {"train": "train", "valid": "validation", "test": "test"},
        "amat",
    ),
    "cifar10": _Spec(
        (32, 32, 3),
        False,
        "class",
        {"train": 45_000, "valid": 5_000, "test": 10_000},
        10,
        {"train": "train[:45000]", "valid": "train[45000:]", "test": "test"},
    ),
    "celeb_a": _Spec(
        (CELEB_A_SIZE, CELEB_A_SIZE, 3),
        False,
        "factors",
        {"train": 162_770, "valid": 19_867, "test": 19_962},
        None,
        {"train": "train", "valid": "validation", "test": "test"},
    ),
    "dsprites": _Spec((64, 64, 1), True, "factors", _GRID_SIZES, None, {s: "train" for s in SPLITS}),
}
DATASETS = tuple(_SPECS)


def _spec(name):
    if name not in _SPECS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {', '.join(DATASETS)}, or a folder of "
                         f"images, or {TFDS_PREFIX}NAME.")
    return _SPECS[name]


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {', '.join(SPLITS)}.")


@functools.lru_cache(maxsize=None)
def _celeb_a_attributes():
    import tensorflow_datasets as tfds

    return tuple(tfds.builder("celeb_a").info.features["attributes"].keys())


def source_kind(name):
    """``"named"`` (one of `DATASETS`), ``"tfds"`` (``tfds:NAME...``) or ``"folder"`` (any other string)."""
    return "named" if name in _SPECS else "tfds" if str(name).startswith(TFDS_PREFIX) else "folder"


def check_source(name, source_options=None):
    """Raises ValueError for an unknown name (a word that is no folder), a missing folder, or a source option
    that ``name``'s kind of dataset does not take (cheap: no file is read)."""
    kind = source_kind(name)
    if kind == "folder" and not os.path.exists(name) and os.sep not in name and "/" not in name and "." not in name:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {', '.join(map(repr, DATASETS))}, or a folder "
                         f"of images, or {TFDS_PREFIX}NAME.")
    if kind != "named":
        from keras_vae.training.image_folder import check_folder
        from keras_vae.training.tfds_source import parse

        parse(name) if kind == "tfds" else check_folder(name)
    allowed = {"named": (), "tfds": TFDS_OPTIONS, "folder": FOLDER_OPTIONS}[kind]
    for key, value in (source_options or {}).items():
        if key not in allowed and value not in (None, SOURCE_OPTIONS[key]):
            takes = " or ".join(w for w, o in (("a folder", FOLDER_OPTIONS), ("a tfds: dataset", TFDS_OPTIONS)) if key in o)
            raise ValueError(f"{key} applies to {takes} of images, not to dataset {name!r}.")


def source_options_of(config):
    """The source options (`keras_vae.training.names.SOURCE_OPTIONS`) of a `TrainConfig` or a run's config mapping."""
    values = config if isinstance(config, dict) else config.to_dict()
    return {key: values.get(key, default) for key, default in SOURCE_OPTIONS.items()}


def _folder_info(name, source_options):
    from keras_vae.training.image_folder import scan_folder

    scan = scan_folder(name, source_options)
    sizes = {"train": scan.valid.count(False), "valid": scan.valid.count(True)}
    classes = len(scan.class_names) if scan.class_names else None
    return DatasetInfo(name=name, image_shape=scan.image_shape, num_classes=classes,
                       label_kind="class" if classes else None, factor_names=None, factor_sizes=None,
                       split_sizes={**sizes, "test": sizes["valid"]}, binary=False, class_names=scan.class_names)


def dataset_info(name, data_dir=None, source_options=None):
    """A `DatasetInfo` for dataset ``name``: static facts for a named dataset (nothing read or downloaded); a
    folder's header scan (`keras_vae.training.image_folder`); a tfds: dataset's prepared info."""
    if source_kind(name) != "named":
        check_source(name, source_options)
    if source_kind(name) == "folder":
        return _folder_info(name, source_options)
    if source_kind(name) == "tfds":
        from keras_vae.training.tfds_images import tfds_info

        return DatasetInfo(**tfds_info(name, data_dir, source_options))
    del data_dir  # the facts are the same wherever the files are
    spec = _spec(name)
    factor_names = factor_sizes = None
    if name in ("sprites", "dsprites"):
        factor_names, factor_sizes = sprites.FACTOR_NAMES, sprites.FACTOR_SIZES
    elif name == "celeb_a":
        factor_names = _celeb_a_attributes()
        factor_sizes = (2,) * len(factor_names)
    return DatasetInfo(
        name=name,
        image_shape=spec.image_shape,
        num_classes=spec.num_classes,
        label_kind=spec.label_kind,
        factor_names=factor_names,
        factor_sizes=factor_sizes,
        split_sizes=dict(spec.split_sizes),
        binary=spec.binary,
    )


# ------------------------------------------------------------------------------------------ splits
@functools.lru_cache(maxsize=1)
def grid_split_indices():
    """Flat sprite-grid indices of each split, in split order: a fixed permutation of the grid cut into test,
    valid and train. The order is random, so the first examples of a split are a fair sample."""
    order = np.random.RandomState(SPLIT_SEED).permutation(sprites.NUM_IMAGES).astype(np.int64)
    held = _GRID_HELD_OUT
    return {"test": order[:held], "valid": order[held : 2 * held], "train": order[2 * held :]}


# Local canonical files: keras_vae.training.local_files.

# ------------------------------------------------------------------------------------------ tfds
def _tfds_dataset(name, spec, split, data_dir):
    """Examples of a tfds split as (uint8 image, label or None), images resized where the spec says."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from keras_vae.training import tfds_source

    try:
        tfds_source.builder(name, data_dir)  # prepared, or downloaded when a network answers; else fails at once
    except DataUnavailableError as err:
        local = {"idx": "the canonical IDX files", "amat": "the binarized_mnist_*.amat files"}.get(spec.local_format)
        raise DataUnavailableError(f"{err}{f' Or pass --data-dir DIR with {local}.' if local else ''}") from None
    ds = tfds.load(name, split=spec.tfds_splits[split], data_dir=data_dir, download=False, shuffle_files=False)

    if name == "dsprites":
        membership = np.zeros(sprites.NUM_IMAGES, np.bool_)
        membership[grid_split_indices()[split]] = True
        membership = tf.constant(membership)

        def in_split(index, example):
            return tf.gather(membership, index)

        def drop_index(index, example):
            return example

        ds = ds.enumerate().filter(in_split).map(drop_index)

    def convert(example):
        image = example["image"]
        if name == "celeb_a":
            image = _centre_crop_resize(image, CELEB_A_CROP, CELEB_A_SIZE)
        if name == "dsprites":
            label = tf.stack(
                [example[f"label_{k}"] for k in ("shape", "scale", "orientation", "x_position", "y_position")]
            )
        elif name == "celeb_a":
            attributes = example["attributes"]
            label = tf.stack([attributes[k] for k in _celeb_a_attributes()])
        else:
            label = example.get("label")
        return image, None if label is None else tf.cast(label, tf.int32)

    return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE)


def _centre_crop_resize(image, crop, size):
    import tensorflow as tf

    height, width = tf.shape(image)[0], tf.shape(image)[1]
    top, left = (height - crop) // 2, (width - crop) // 2
    image = tf.image.crop_to_bounding_box(image, top, left, crop, crop)
    resized = tf.image.resize(tf.cast(image, tf.float32), (size, size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


# ------------------------------------------------------------------------------------------ pipeline
def _source(name, spec, split, data_dir):
    """(dataset of (uint8 image, label-or-None), size or None): canonical files first, else tfds."""
    import tensorflow as tf

    if data_dir is not None and not os.path.isdir(data_dir):
        raise DataUnavailableError(f"--data-dir {data_dir!r} is not a directory.")
    if data_dir is not None and spec.local_format:
        folder = local_files.canonical_folder(name, spec.local_format, data_dir)
        if folder is not None:
            images, labels = local_files.read_split(name, spec.local_format, folder, split, spec.image_shape)
            ds = tf.data.Dataset.from_tensor_slices((images, labels) if labels is not None else images)
            if labels is None:
                ds = ds.map(lambda x: (x, None))
            return ds, len(images)
    return _tfds_dataset(name, spec, split, data_dir), None


def _sprites_dataset(split, batch_size, shuffle, seed, with_labels):
    import tensorflow as tf

    indices = tf.constant(grid_split_indices()[split])
    if shuffle:
        # A whole-split permutation per epoch (a shuffle buffer of 663k indices takes seconds to fill).
        def permuted(epoch_seed):
            order = tf.random.experimental.stateless_shuffle(indices, seed=tf.stack([epoch_seed, 0]))
            return tf.data.Dataset.from_tensor_slices(order)

        epoch_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
        ds = epoch_seeds.flat_map(permuted).apply(tf.data.experimental.assert_cardinality(len(indices)))
    else:
        ds = tf.data.Dataset.from_tensor_slices(indices)

    def render(index):
        factors = sprites.factors_from_index(index)
        batched = factors[tf.newaxis] if factors.shape.rank == 1 else factors
        images = sprites.render_sprites(batched)
        if factors.shape.rank == 1:
            images = images[0]
        return (images, factors) if with_labels else images

    if batch_size:
        ds = ds.batch(batch_size)
    return ds.map(render, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def get_dataset(
    name,
    split,
    *,
    data_dir=None,
    batch_size=None,
    shuffle=False,
    seed=0,
    dynamic_binarization=False,
    with_labels=False,
    cache=True,
    source_options=None,
):
    """A `tf.data.Dataset` of float32 images ``[H, W, C]`` in [0, 1], or ``(image, label)`` with ``with_labels``.

    Args:
        name: one of `DATASETS`, a folder of images (`image_folder`) or ``tfds:NAME[/CONFIG][:SPLIT]``.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        data_dir: folder with canonical files (or its parent), or a tfds data directory. Without it,
            tfds sources are downloaded (which fails offline with a `DataUnavailableError`).
        batch_size: batch the dataset (the last batch may be smaller). Unbatched when None.
        shuffle: reshuffle every epoch, deterministically given ``seed``.
        seed: seed for shuffling and dynamic binarization.
        dynamic_binarization: replace each grey pixel p by a fresh Bernoulli(p) draw every epoch
            (a no-op for sources that are already binary).
        with_labels: yield ``(image, label)``; labels are int32 (`DatasetInfo.label_kind` says what they are).
        cache: cache decoded images in memory (sources that are not already in memory; sprites are
            rendered on the fly and never cached; folders stream, or cache on disk with ``cache_dir``).
        source_options: a folder's or a tfds: dataset's options (`source_options_of`; None: the defaults).
    """
    import tensorflow as tf

    _check_split(split)
    if batch_size is not None and int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if source_kind(name) != "named":
        check_source(name, source_options)
        if dynamic_binarization:
            raise ValueError(f"dynamic_binarization applies to the named grey datasets, not to {name!r}.")
        if source_kind(name) == "folder":
            return image_folder(name, batch_size=batch_size, with_labels=with_labels, split=split, seed=seed,
                                shuffle=shuffle, **{k: v for k, v in (source_options or {}).items() if v is not None})
        from keras_vae.training.tfds_images import tfds_dataset

        return tfds_dataset(name, split, data_dir=data_dir, source_options=source_options,
                                        batch_size=batch_size, shuffle=shuffle, seed=seed, with_labels=with_labels)
    spec = _spec(name)
    if with_labels and spec.label_kind is None:
        raise ValueError(f"Dataset {name!r} has no labels; use with_labels=False.")
    seed = int(seed)
    if name == "sprites":
        return _sprites_dataset(split, batch_size, shuffle, seed, with_labels)

    ds, size = _source(name, spec, split, data_dir)
    if cache and size is None:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(size or SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    binarize = dynamic_binarization and not spec.binary
    if binarize:
        # One stateless seed per example, different every epoch, fixed by ``seed``.
        ds = tf.data.Dataset.zip(ds, tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True))
    else:
        ds = ds.map(lambda example, label: ((example, label), None))

    def finish(example, noise_seed):
        image, label = example
        if spec.binary:  # 0/1 sources; `> 0` also accepts 0/255 encodings
            image = tf.cast(image > 0, tf.float32)
        else:
            image = tf.cast(image, tf.float32) / 255.0
        if binarize:
            draw = tf.random.stateless_uniform(tf.shape(image), seed=tf.stack([noise_seed, 0]))
            image = tf.cast(draw < image, tf.float32)
        image = tf.ensure_shape(image, spec.image_shape)
        return (image, label) if with_labels else image

    ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE)
    if batch_size:
        ds = ds.batch(batch_size)
    return ds.prefetch(tf.data.AUTOTUNE)


def image_folder(path, image_size=None, channels=None, batch_size=None, with_labels=False, split="train",
                 resize="crop", valid_fraction=0.1, seed=0, shuffle=False, cache_dir=None, skip_bad_images=False):
    """A folder of images as the `tf.data.Dataset` `keras-vae train --dataset PATH` trains on (float32 [0, 1]);
    ``image_size``: H, ``"HxW"`` or [H, W]. See `keras_vae.training.image_folder` for the defaults and checks.

    >>> ds = image_folder("photos", image_size=64, batch_size=32, with_labels=True, shuffle=True)
    """
    from keras_vae.training import image_folder as folders
    from keras_vae.training.names import parse_image_size

    options = {"image_size": None if image_size is None else parse_image_size(image_size), "channels": channels,
               "resize": resize, "valid_fraction": valid_fraction, "cache_dir": cache_dir,
               "skip_bad_images": skip_bad_images}
    scan = folders.scan_folder(path, options)
    return folders.folder_dataset(scan, split, batch_size=batch_size, shuffle=shuffle, seed=int(seed),
                                  with_labels=with_labels)


def load_examples(name, split, data_dir=None, count=None, with_labels=False, shuffle=False, seed=0, batch_size=256,
                  source_options=None):
    """``count`` examples (all when None) of a split as numpy ``(images, labels or None)``.

    The first ones in split order, or with ``shuffle`` a seeded random subset (``dsprites`` from tfds is
    ordered by factor, so its first examples are no fair sample; ``sprites`` splits are in random order).
    """
    images, labels = [], []
    seen = 0
    for batch in get_dataset(name, split, data_dir=data_dir, batch_size=batch_size, shuffle=shuffle, seed=seed,
                             with_labels=with_labels, source_options=source_options):
        x, y = batch if with_labels else (batch, None)
        images.append(np.asarray(x))
        if y is not None:
            labels.append(np.asarray(y))
        seen += len(images[-1])
        # The examples are held whole: refused once they pass MAX_ARRAY_BYTES (count=None loads the split).
        check_size("count", count, images[-1][:1].nbytes + (labels[-1][:1].nbytes if labels else 0), "MAX_ARRAY_BYTES",
                   f"{name!r} {split} examples", "load fewer (count=)", count=min(seen, count or seen))
        if count is not None and seen >= count:
            break
    if not images:
        raise ValueError(f"Split {split!r} of dataset {name!r} holds no examples.")
    return np.concatenate(images)[:count], (np.concatenate(labels)[:count] if labels else None)
