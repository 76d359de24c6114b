"""A folder of images as a dataset: the scan (files, labels, split, checks) and the streaming `tf.data` pipeline.

The folder is searched recursively (sorted, so the order is the same on every machine) for ``.png``, ``.jpg``,
``.jpeg``, ``.bmp`` and ``.gif`` files (any case); other files are ignored and counted. When the folder has
sub-folders, each first-level sub-folder is a class and its name the class name (sorted as
`keras.utils.image_dataset_from_directory` sorts them); images lying directly in such a folder, beside its class
sub-folders, are an error (they would have no class). A folder without sub-folders has no labels.

The scan reads only each file's header (Pillow: size and mode) for the image size (default: the one size all
images share), the channels (default: 1 when every image is grey, else 3) and the checks below. Folders of up to
`DECODE_CHECK_LIMIT` images, and every folder with ``skip_bad_images``, are also decoded once in full, so an
unreadable or truncated image is named (or skipped and counted) before training; in larger folders such a file
fails while training (`find_bad_image` then names it).

Split: each file goes to ``valid`` when a hash of its relative path falls below ``valid_fraction``, else to
``train``, so adding files never moves others and every command of a run sees the same split (the run's --seed
does not change it). A small folder whose hashes leave a split empty gives it the one file nearest the threshold.
A folder has no separate test split: ``test`` is the ``valid`` split.

Pixels are decoded in the pipeline (`tf.io.decode_image`, parallel, prefetched; never all in memory), converted to
the channels (grey <-> RGB, alpha dropped), resized (``crop``: centre crop to the aspect ratio, then resize;
``pad``: resize inside, then pad with black; ``stretch``), float32 in [0, 1].

Example:

>>> scan = scan_folder("photos", {"image_size": [64, 64]})
>>> scan.class_names, scan.image_shape, len(scan.split("valid")[0])
(('cats', 'dogs'), (64, 64, 3), 37)
>>> ds = folder_dataset(scan, "train", batch_size=32, shuffle=True, seed=0, with_labels=True)
"""

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import os

from keras_vae.training.names import SOURCE_OPTIONS

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
MIN_SIDE = 8
DECODE_CHECK_LIMIT = 5_000  # a full decode of this many small images takes seconds
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
SHUFFLE_BUFFER = 4_096  # decoded images kept for shuffling after an on-disk cache
_THREADS = 8  # file reads wait on the disk; Pillow releases the GIL while decoding


@dataclasses.dataclass(frozen=True)
class FolderScan:
    """A scanned folder: its images (relative paths, sorted), their labels and split, and what was left out."""

    root: str
    files: tuple
    labels: tuple | None  # class index of each file
    class_names: tuple | None
    image_shape: tuple  # (height, width, channels) of the decoded, resized images
    valid: tuple  # True where the file is in the valid split
    ignored: int  # files that are not images
    skipped: tuple  # unreadable images left out (skip_bad_images)
    options: dict

    def split(self, split):
        """``(paths, labels or None)`` of ``split`` (``test`` is ``valid``)."""
        want_valid = split != "train"
        chosen = [i for i, v in enumerate(self.valid) if v == want_valid]
        paths = [os.path.join(self.root, self.files[i]) for i in chosen]
        return paths, None if self.labels is None else [self.labels[i] for i in chosen]

    def summary(self):
        """One line for the run's printout: images, classes, split, ignored and skipped files."""
        valid = sum(self.valid)
        classes = f", {len(self.class_names)} classes" if self.class_names else ""
        extra = f"; {self.ignored} non-image files ignored" if self.ignored else ""
        extra += f"; {len(self.skipped)} unreadable images skipped" if self.skipped else ""
        height, width, channels = self.image_shape
        return (f"folder {self.root!r}: {len(self.files)} images{classes} ({len(self.files) - valid} train, "
                f"{valid} valid) at {height}x{width}x{channels}{extra}")


def options_of(source_options):
    """The source options with defaults filled in (`keras_vae.training.names.SOURCE_OPTIONS`)."""
    return {**SOURCE_OPTIONS, **{k: v for k, v in (source_options or {}).items() if v is not None}}


def split_hash(relative_path):
    """A file's place in [0, 1) from its relative path (``/``-separated): below ``valid_fraction`` is ``valid``.

    >>> round(split_hash("cats/001.png"), 3)
    0.82
    """
    digest = hashlib.blake2b(relative_path.encode("utf-8"), digest_size=8, person=b"keras-vae").digest()
    return int.from_bytes(digest, "big") / 2.0**64


def assign_valid(files, valid_fraction):
    """Whether each file is in the valid split; a small folder that would leave a split empty gives it the file
    nearest the threshold."""
    hashes = [split_hash(f) for f in files]
    valid = [h < valid_fraction for h in hashes]
    if len(files) >= 2 and not any(valid):
        valid[hashes.index(min(hashes))] = True
    elif len(files) >= 2 and all(valid):
        valid[hashes.index(max(hashes))] = False
    return tuple(valid)


def _walk(folder, relative=""):
    """Relative paths of the files under ``folder``, sorted, recursively (symbolic links to folders not followed)."""
    with os.scandir(folder) as entries:
        entries = sorted(entries, key=lambda e: e.name)
    for entry in entries:
        path = f"{relative}{entry.name}"
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path, path + "/")
        elif entry.is_file():
            yield path


def _header(path):
    """``(width, height, mode)`` from the file's header, or the error text of an unreadable file."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size + (image.mode,)
    except Exception as err:  # Pillow raises many kinds for a bad file (OSError, SyntaxError, ValueError...)
        return f"{type(err).__name__}: {err}"


def _decode_error(path):
    """The error text of decoding ``path`` in full (JPEGs at 1/8 scale: every byte is still read), else None."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.draft("RGB", (max(1, image.size[0] // 8), max(1, image.size[1] // 8)))
            image.load()
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    return None


def _mapped(function, paths):
    with concurrent.futures.ThreadPoolExecutor(_THREADS) as pool:
        return list(pool.map(function, paths, chunksize=64))


def check_folder(path):
    """Raises ValueError when ``path`` is not an existing folder (named as the ``--dataset`` it came from)."""
    if not os.path.isdir(path):
        what = "no such folder" if not os.path.exists(path) else "not a folder"
        raise ValueError(f"--dataset {path!r}: {what}.")


def scan_folder(path, source_options=None):
    """The `FolderScan` of folder ``path`` with ``source_options`` (see `keras_vae.training.names.SOURCE_OPTIONS`).

    Raises ValueError naming the folder or file: a missing folder, no images, an unreadable image (unless
    ``skip_bad_images``), mixed sizes without ``image_size``, an image under 8 pixels a side, images beside class
    sub-folders, or a single image.
    """
    check_folder(path)
    options = options_of(source_options)
    key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))
    return _scan(os.path.abspath(path), os.stat(path).st_mtime_ns, key)


@functools.lru_cache(maxsize=16)
def _scan(root, mtime, key):
    del mtime  # part of the cache key only
    options = {k: list(v) if isinstance(v, tuple) else v for k, v in key}
    files, ignored = [], 0
    for relative in _walk(root):
        if relative.lower().endswith(IMAGE_EXTENSIONS):
            files.append(relative)
        else:
            ignored += 1
    if not files:
        raise ValueError(f"Folder {root!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}; searched recursively"
                         f"{f', {ignored} other files ignored' if ignored else ''}).")
    headers = _mapped(_header, [os.path.join(root, f) for f in files])
    bad = [(f, h) for f, h in zip(files, headers) if isinstance(h, str)]
    if options["skip_bad_images"] or len(files) <= DECODE_CHECK_LIMIT:
        checked = [(f, h) for f, h in zip(files, headers) if not isinstance(h, str)]
        errors = _mapped(_decode_error, [os.path.join(root, f) for f, _ in checked])
        bad += [(f, e) for (f, _), e in zip(checked, errors) if e]
    if bad and not options["skip_bad_images"]:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise ValueError(f"Unreadable image {os.path.join(root, bad[0][0])!r}{more}: {bad[0][1]}. Remove it, or "
                         "pass --skip-bad-images (skip_bad_images: true) to skip and count such files.")
    skipped = {f for f, _ in bad}
    kept = [(f, h) for f, h in zip(files, headers) if f not in skipped]
    if not kept:
        raise ValueError(f"Folder {root!r}: all {len(files)} images are unreadable.")
    files = [f for f, _ in kept]
    sizes = [h[:2] for _, h in kept]
    for f, (width, height) in zip(files, sizes):
        if min(width, height) < MIN_SIDE:
            raise ValueError(f"Image {os.path.join(root, f)!r} is {width}x{height} pixels: images must have at least "
                             f"{MIN_SIDE} pixels a side.")
    image_size = options["image_size"]
    if image_size is None:
        distinct = sorted(set(sizes))
        if len(distinct) > 1:
            first = files[sizes.index(distinct[0])]
            second = files[sizes.index(distinct[1])]
            raise ValueError(
                f"Folder {root!r} holds images of {len(distinct)} sizes ({first!r} is {distinct[0][0]}x"
                f"{distinct[0][1]}, {second!r} is {distinct[1][0]}x{distinct[1][1]}): pass --image-size H or HxW "
                "(image_size) to resize them all (--resize crop, pad or stretch).")
        image_size = [distinct[0][1], distinct[0][0]]
    channels = options["channels"] or (1 if all(h[2] in GREY_MODES for _, h in kept) else 3)
    labels, class_names = _labels(root, files)
    if len(files) < 2:
        raise ValueError(f"Folder {root!r} holds one image: training needs at least 2 (one for validation).")
    valid = assign_valid(files, options["valid_fraction"])
    return FolderScan(root, tuple(files), labels, class_names, (image_size[0], image_size[1], channels), valid,
                      ignored, tuple(sorted(skipped)), options)


def _labels(root, files):
    """(class index per file, class names), or (None, None) when the folder has no sub-folders."""
    tops = [f.split("/", 1)[0] if "/" in f else None for f in files]
    if all(t is None for t in tops):
        return None, None
    loose = [f for f, t in zip(files, tops) if t is None]
    if loose:
        raise ValueError(f"Folder {root!r} holds {len(loose)} images (e.g. {loose[0]!r}) beside its class "
                         "sub-folders: move them into a sub-folder (one per class), or keep all images in one "
                         "folder without sub-folders.")
    class_names = tuple(sorted(set(tops)))
    index = {name: i for i, name in enumerate(class_names)}
    return tuple(index[t] for t in tops), class_names


def find_bad_image(scan, split="train"):
    """The first image of ``scan``'s split Pillow cannot decode, as ``(path, error)``, else None: what names the
    file behind a decoding error met while training on a folder too large for the scan's full check."""
    paths, _ = scan.split(split)
    for path, error in zip(paths, _mapped(_decode_error, paths)):
        if error:
            return path, error
    return None


def decode_image(path, image_size, channels, resize):
    """The float32 image ``[H, W, channels]`` in [0, 1] of one file, converted and resized (a graph function)."""
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), dtype=tf.float32, expand_animations=False)
    return convert_image(image, image_size, channels, resize)


def convert_image(image, image_size, channels, resize):
    """A float32 image ``[h, w, any channels]`` in [0, 1] as ``[H, W, channels]``: grey <-> RGB, alpha dropped, resized
    per ``resize`` (a graph function; also what a tfds: dataset's images go through)."""
    import tensorflow as tf

    rgb = tf.cond(tf.shape(image)[-1] >= 3, lambda: image[..., :3], lambda: tf.tile(image[..., :1], [1, 1, 3]))
    image = tf.image.rgb_to_grayscale(rgb) if channels == 1 else rgb
    height, width = image_size
    if resize == "crop":
        source = tf.cast(tf.shape(image)[:2], tf.float32)
        scale = tf.minimum(source[0] / height, source[1] / width)
        crop = tf.cast(tf.round(tf.constant([height, width], tf.float32) * scale), tf.int32)
        crop = tf.minimum(crop, tf.shape(image)[:2])
        image = tf.image.resize_with_crop_or_pad(image, crop[0], crop[1])
    if resize == "pad":
        image = tf.image.resize_with_pad(image, height, width, antialias=True)
    else:
        image = tf.image.resize(image, (height, width), antialias=True)
    return tf.ensure_shape(tf.clip_by_value(image, 0.0, 1.0), (height, width, channels))


def folder_dataset(scan, split, batch_size=None, shuffle=False, seed=0, with_labels=False):
    """The `tf.data.Dataset` of a split of ``scan``: images (or ``(image, label)``), batched when ``batch_size``.

    Shuffling permutes the whole file list every epoch before decoding (with an on-disk ``cache_dir``, a
    buffer of `SHUFFLE_BUFFER` decoded images after the cache).
    """
    import tensorflow as tf

    paths, labels = scan.split(split)
    if with_labels and labels is None:
        raise ValueError(f"Folder {scan.root!r} has no labels (no class sub-folders); use with_labels=False.")
    options = scan.options
    cache_dir = options["cache_dir"]
    ds = tf.data.Dataset.from_tensor_slices((paths, labels if labels is not None else [0] * len(paths)))
    if shuffle and not cache_dir:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    height, width, channels = scan.image_shape

    def load(path, label):
        return decode_image(path, (height, width), channels, options["resize"]), tf.cast(label, tf.int32)

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if options["skip_bad_images"]:
        ds = ds.ignore_errors()
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
        digest = hashlib.sha1(repr((scan.root, scan.files, scan.image_shape, options["resize"])).encode()).hexdigest()
        ds = ds.cache(os.path.join(cache_dir, f"{split}-{digest[:16]}"))
        if shuffle:
            ds = ds.shuffle(min(len(paths), SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True)
    if not with_labels:
        ds = ds.map(lambda image, label: image)
    if batch_size:
        ds = ds.batch(batch_size)
    return ds.prefetch(tf.data.AUTOTUNE)


@contextlib.contextmanager
def bad_image_named(path, source_options=None):
    """Turns a decoding error met while reading folder ``path`` (None: no folder) into a ValueError naming the
    image (`find_bad_image`); other errors, and errors no image explains, pass unchanged.

    >>> with bad_image_named("photos"):
    ...     vae.fit(image_folder_dataset)
    """
    import tensorflow as tf

    try:
        yield
    except tf.errors.InvalidArgumentError as err:
        if path is None:
            raise
        scan = scan_folder(path, source_options)
        found = find_bad_image(scan, "train") or find_bad_image(scan, "valid")
        if found is None:
            raise
        raise ValueError(f"Unreadable image {found[0]!r}: {found[1]}. Remove it, or pass --skip-bad-images "
                         "(skip_bad_images: true) to skip and count such files.") from err
