"""A ``tfds:NAME[/CONFIG][:SPLIT]`` dataset at the source options' image size and channels: its `DatasetInfo` and
its `tf.data` pipeline of float32 images in [0, 1] (the dataset itself comes from `keras_vae.training.tfds_source`;
the conversion is a folder's, `keras_vae.training.image_folder.convert_image`).

Example:

>>> info = tfds_info("tfds:oxford_flowers102", "/data/tfds", {"image_size": [64, 64]})
>>> info["image_shape"], info["class_names"][:2]
((64, 64, 3), ('pink primrose', 'hard-leaved pocket orchid'))
>>> ds = tfds_dataset("tfds:oxford_flowers102", "train", "/data/tfds", {"image_size": [64, 64]}, batch_size=32)
"""

from keras_vae.training.image_folder import SHUFFLE_BUFFER, convert_image, options_of


def _facts(name, data_dir, options):
    from keras_vae.training import tfds_source

    return tfds_source.tfds_facts(name, data_dir, options["image_key"], options["valid_fraction"])


def _shape(name, facts, options):
    """``(H, W, C)`` the images take: ``image_size`` (required when the dataset's sizes vary) and ``channels``
    (default: the dataset's, alpha dropped)."""
    height, width, channels = facts.image_shape
    if options["image_size"] is not None:
        height, width = options["image_size"]
    elif height is None or width is None:
        raise ValueError(f"{name}: its images' sizes vary; pass --image-size H or HxW (image_size) to resize them "
                         "(--resize crop, pad or stretch).")
    channels = options["channels"] or (1 if channels == 1 else 3)
    return height, width, channels


def tfds_info(name, data_dir=None, source_options=None):
    """The fields of a tfds: dataset's `keras_vae.training.data.DatasetInfo` (prepares it first: see
    `tfds_source.builder`)."""
    options = options_of(source_options)
    facts = _facts(name, data_dir, options)
    return dict(name=name, image_shape=_shape(name, facts, options), num_classes=facts.num_classes,
                label_kind="class" if facts.label_key else None, factor_names=None, factor_sizes=None,
                split_sizes=dict(facts.split_sizes), binary=False, class_names=facts.class_names)


def tfds_dataset(name, split, data_dir=None, source_options=None, batch_size=None, shuffle=False, seed=0,
                 with_labels=False):
    """Images (or ``(image, label)``) of a split, converted, shuffled with a bounded buffer, batched, prefetched."""
    import tensorflow as tf

    from keras_vae.training import tfds_source

    options = options_of(source_options)
    facts = _facts(name, data_dir, options)
    if with_labels and facts.label_key is None:
        raise ValueError(f"Dataset {name!r} has no class label; use with_labels=False.")
    height, width, channels = _shape(name, facts, options)
    ds = tfds_source.tfds_examples(name, split, data_dir, options["image_key"], options["valid_fraction"],
                                   shuffle_files=shuffle)

    def convert(image, label):
        image = convert_image(tf.image.convert_image_dtype(image, tf.float32), (height, width), channels,
                              options["resize"])
        return (image, label) if with_labels else image

    ds = ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle:
        ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    if batch_size:
        ds = ds.batch(batch_size)
    return ds.prefetch(tf.data.AUTOTUNE)
