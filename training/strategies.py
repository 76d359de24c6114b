"""Choosing a `tf.distribute` strategy and a mixed-precision policy by name.

Example:

>>> set_precision("mixed_bfloat16")        # before building the model
>>> strategy = make_strategy("auto")      # TPU > multi-worker (TF_CONFIG) > several GPUs > default
>>> with strategy.scope():
...     vae = keras_vae.build_vae((64, 64, 1), 10)
...     vae.compile(optimizer=keras.optimizers.Adam(1e-3))
>>> is_chief(strategy)
True
"""

import json
import os

import keras
import tensorflow as tf

from keras_vae.training.names import PRECISIONS, STRATEGIES


def _tf_config():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON: {err}") from err
    if not isinstance(config, dict):
        raise ValueError("TF_CONFIG must be a JSON object with 'cluster' and 'task'.")
    return config


def _cluster_size(config):
    cluster = (config or {}).get("cluster") or {}
    return sum(len(v) for k, v in cluster.items() if k in ("chief", "worker"))


def _find_tpu():
    """A connected TPU cluster resolver, or None when no TPU can be found."""
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return resolver
    except (ValueError, RuntimeError, tf.errors.OpError):
        return None


# TF caches each collective all-reduce by (group key, instance key) for the life of the process, and every
# MirroredStrategy starts its keys at the same base: a second strategy in one process (a notebook, a sweep)
# then fails with "Shape mismatch in the collective instance". Each strategy made here gets its own range.
_KEY_RANGE = 100_000


def mirrored_strategy(devices=None, cross_device_ops=None):
    """A `tf.distribute.MirroredStrategy` whose collective keys no earlier strategy of this process used."""
    tf.distribute.MirroredStrategy._collective_key_base += _KEY_RANGE
    return tf.distribute.MirroredStrategy(devices, cross_device_ops=cross_device_ops)


def make_strategy(name="auto"):
    """Returns the strategy ``name`` (see `STRATEGIES`); create it before any other TensorFlow work.

    ``auto`` picks TPUStrategy when a TPU cluster resolver finds one, MultiWorkerMirroredStrategy when
    TF_CONFIG names a cluster of several tasks, MirroredStrategy for more than one GPU, otherwise the
    default strategy. ``mirrored`` uses every GPU, or every logical CPU when there is no GPU.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}.")
    if name == "auto":
        if (os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR")) and (resolver := _find_tpu()):
            return tf.distribute.TPUStrategy(resolver)
        if _cluster_size(_tf_config()) > 1:
            return tf.distribute.MultiWorkerMirroredStrategy()
        if len(tf.config.list_logical_devices("GPU")) > 1:
            return mirrored_strategy()
        return tf.distribute.get_strategy()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        device = "/gpu:0" if tf.config.list_logical_devices("GPU") else "/cpu:0"
        return tf.distribute.OneDeviceStrategy(device)
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            return mirrored_strategy([d.name for d in gpus])
        return mirrored_strategy([d.name for d in tf.config.list_logical_devices("CPU")])
    if name == "multi_worker":
        config = _tf_config()
        if config is not None and "task" not in config:
            raise ValueError("TF_CONFIG names no 'task' (type and index) for this process.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = _find_tpu()
    if resolver is None:
        raise ValueError("--strategy tpu: no TPU found (set TPU_NAME, or run on a TPU VM).")
    return tf.distribute.TPUStrategy(resolver)


# /proc/cpuinfo flags of native bfloat16 matrix arithmetic: AMX tiles, or AVX-512's BF16 dot products.
BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_has_native_bfloat16(cpuinfo="/proc/cpuinfo"):
    """Whether the CPU multiplies bfloat16 natively (a flag of `BFLOAT16_CPU_FLAGS`; False where unknown)."""
    try:
        with open(cpuinfo) as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return any(flag in flags for flag in BFLOAT16_CPU_FLAGS)


def resolve_precision(precision="float32"):
    """The dtype policy ``precision`` names. ``"auto"`` is ``mixed_bfloat16`` on a CPU with native bfloat16
    arithmetic (1.45 to 1.6 times the training speed of float32 for `make train`'s model on an AMX CPU,
    BENCHMARKS.md) and ``float32`` elsewhere (emulated bfloat16 is slower than float32). It looks at the CPU only.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}.")
    if precision == "auto":
        return "mixed_bfloat16" if cpu_has_native_bfloat16() else "float32"
    return precision


def set_precision(precision="float32"):
    """Sets Keras' global dtype policy and returns its name (``"auto"`` resolved by `resolve_precision`);
    ``mixed_float16`` models get a LossScaleOptimizer at compile."""
    policy = resolve_precision(precision)
    keras.mixed_precision.set_global_policy(policy)
    return policy


def is_chief(strategy=None):
    """Whether this process writes shared files (run directory, checkpoints, exports).

    With MultiWorkerMirroredStrategy that is the ``chief`` task, or ``worker`` 0 when there is no chief;
    every other strategy runs in one process, which is the chief.
    """
    strategy = strategy or tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None or task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief
