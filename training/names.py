"""The training names, declared once and importable without TensorFlow.

Configs, the command line and `keras_vae.training.strategies` check against these; the model's own names
(architectures, priors, likelihoods, variants and their options) live in `keras_vae.names`.

Example:

>>> from keras_vae.training import names
>>> "mirrored" in names.STRATEGIES
True
"""

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
NAN_POLICIES = ("skip", "stop")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SPLITS = ("train", "valid", "test")
