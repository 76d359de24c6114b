"""The training names, declared once and importable without TensorFlow.

Configs, the command line and `keras_vae.training.strategies` check against these; the model's own names
(architectures, priors, likelihoods, variants and their options) live in `keras_vae.names`.

Example:

>>> from keras_vae.training import names
>>> "mirrored" in names.STRATEGIES
True
"""

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")
# "auto": mixed_bfloat16 on a CPU with native bfloat16 arithmetic, else float32 (strategies.resolve_precision)
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "auto")
NAN_POLICIES = ("skip", "stop")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
LEARNING_RATE_SCHEDULES = ("constant", "cosine")
SPLITS = ("train", "valid", "test")
# dataset -> the feature network of its sample-quality metric (keras_vae.training.feature_networks)
FEATURE_NETWORKS = {"mnist": "mnist", "binarized_mnist": "mnist", "sprites": "sprites"}


def feature_network_name(dataset):
    """The feature network of ``dataset``, or a ValueError naming the supported datasets.

    >>> feature_network_name("binarized_mnist")
    'mnist'
    """
    if dataset not in FEATURE_NETWORKS:
        raise ValueError(f"No feature network for dataset {dataset!r}: sample quality is supported for "
                         f"{', '.join(FEATURE_NETWORKS)}. For other images, give a feature network of your own in "
                         "Python: keras_vae.sample_quality.sample_quality(extractor, real_images, vae.sample(n)), "
                         "with extractor any Keras model from these images to feature vectors.")
    return FEATURE_NETWORKS[dataset]

# A dataset is a name of `keras_vae.training.data.DATASETS`, ``tfds:NAME[/CONFIG][:SPLIT]`` or a folder of images.
TFDS_PREFIX = "tfds:"
RESIZE_MODES = ("crop", "pad", "stretch")  # crop: centre crop to the aspect ratio, then resize
IMAGE_CHANNELS = (1, 3)
# The source options (config keys and `keras-vae train` flags) of folders and tfds: datasets, with their defaults.
SOURCE_OPTIONS = {"image_size": None, "channels": None, "resize": "crop", "valid_fraction": 0.1, "cache_dir": None,
                  "image_key": None, "skip_bad_images": False}
FOLDER_OPTIONS = ("image_size", "channels", "resize", "valid_fraction", "cache_dir", "skip_bad_images")
TFDS_OPTIONS = ("image_size", "channels", "resize", "valid_fraction", "image_key")


def parse_image_size(value, name="image_size"):
    """``[height, width]`` from ``H``, ``"H"``, ``"HxW"`` or ``[H, W]``; a ValueError naming ``name`` otherwise.

    >>> parse_image_size("64"), parse_image_size("48x64"), parse_image_size([32, 32])
    ([64, 64], [48, 64], [32, 32])
    """
    sides = value
    if isinstance(value, str):
        sides = value.lower().split("x")
        if not all(part.strip().isdigit() for part in sides):
            sides = None
        else:
            sides = [int(part) for part in sides]
    elif isinstance(value, int) and not isinstance(value, bool):
        sides = [value]
    if not isinstance(sides, (list, tuple)) or len(sides) not in (1, 2) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 8 for s in sides):
        raise ValueError(f"{name} must be H or HxW with sides of at least 8 pixels (e.g. 64 or 48x64), got {value!r}.")
    return [sides[0], sides[-1]]
