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
                         f"{', '.join(FEATURE_NETWORKS)}.")
    return FEATURE_NETWORKS[dataset]
