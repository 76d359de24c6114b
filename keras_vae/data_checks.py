"""The data of `fit`, `evaluate` and `predict` (and the images of the latent tools), checked the same way for every
kind of input: numpy arrays, tensors, a `tf.data.Dataset`, a Python generator or a `keras.utils.PyDataset`.

Each problem has one message, whatever the input kind: pixels outside the likelihood's range, integer pixels,
a wrong image shape, labels given to an unconditional model or missing for a conditional one, labels of the
wrong dtype or shape, class labels out of range, and no examples at all.

- Arrays and tensors are checked whole, before Keras traces a step.
- A generator's first batch is checked before training (it is peeked, then handed on with the rest); a
  `PyDataset`'s first batch is read by index.
- A dataset's structure, shapes and dtypes are checked from its ``element_spec``. Its values are not peeked:
  ``ds.take(1)`` would run the pipeline once more (a full shuffle buffer, for one); the values of every batch
  of every kind are checked in the step instead (`graph_checked`), and the assertion that fails there becomes
  the same `ValueError` (`errors_as_value_errors`). XLA drops assertions from a step it compiles: under
  ``jit_compile`` a dataset's batches are checked in the pipeline instead (generators: their first batch only).

Example:

>>> vae.fit(tf.data.Dataset.from_tensor_slices(images * 255.0).batch(64))      # a Bernoulli model
Traceback (most recent call last):
ValueError: Images must lie in [0.0, 1.0] for BernoulliLikelihood; they span [0, 255]. Rescale them ...
"""

import contextlib
import inspect
import re
import warnings

import keras
import numpy as np
import tensorflow as tf

MARKER = "keras_vae.data_check"
_FAILED = re.compile(re.escape(MARKER) + r":(\w+):(\w*)\] \[([^\]]+)\] \[([^\]]+)\]")


def shape_str(shape):
    """``(batch, 28, 28, 1)`` for the shape ``(None, 28, 28, 1)``."""
    return "(" + ", ".join("batch" if d is None else str(d) for d in shape) + ")"


# ----------------------------------------------------------------- messages (one per problem)
def range_message(likelihood, low_seen, high_seen):
    low, high = likelihood.data_range
    return (f"Images must lie in [{low}, {high}] for {type(likelihood).__name__}; they span "
            f"[{low_seen:.4g}, {high_seen:.4g}]. Rescale them (8-bit pixels: images / 255, or "
            "keras.layers.Rescaling(1 / 255) in a tf.data pipeline), or use likelihood='gaussian' for real-valued "
            "data.")


def integer_message(dtype, likelihood):
    low, high = likelihood.data_range
    return (f"Images have integer dtype {dtype}; {type(likelihood).__name__} models data in [{low}, {high}]: "
            "convert them to float32 (for 8-bit images, images / 255).")


def shape_message(image_shape, given):
    """The wrong-shape message; the batch axis of ``given`` is shown as ``batch`` so every input kind says the same."""
    given = tuple(given)
    if given == tuple(image_shape):
        return (f"Expected batches of images of shape {shape_str((None, *image_shape))}; got single images of "
                f"shape {shape_str(given)}: batch them (a dataset: ds.batch(64); one image: images[None]).")
    return (f"Expected images of shape {shape_str((None, *image_shape))}, got shape "
            f"{shape_str((None, *given[1:]))}.")


def unconditional_message():
    return ("This model is unconditional (it takes no labels), but the data hold labels: give the images only "
            "(for a dataset of (images, labels), as keras.utils.image_dataset_from_directory gives: "
            "ds.map(lambda x, y: x)), or build a conditional variant (num_classes= or label_dim=).")


def missing_labels_message(condition):
    return (f"This model is conditional ({condition.describe()}): give the labels with the images, as "
            "fit(images, labels), a dataset of (images, labels) or {'images': ..., 'labels': ...}.")


def class_range_message(condition, low_seen, high_seen):
    return f"Class labels must be in [0, {condition.size}); got values {low_seen}..{high_seen}."


def empty_message(entry):
    return f"{entry} got zero examples: the data hold no images."


def label_problem(condition, dtype, shape):
    """The message for labels of ``dtype`` and ``shape`` (batch axis first) the ``condition`` cannot take, or None."""
    dtype, shape = tf.as_dtype(dtype), tuple(shape)
    if condition.kind == "class":
        if not dtype.is_integer:
            return (f"Class labels must be integer class indices ({condition.describe()}); got dtype {dtype.name} "
                    "(one-hot labels: tf.argmax(labels, -1); image_dataset_from_directory: label_mode='int').")
        if len(shape) != 1:
            return f"Expected class labels of shape (batch,), got shape {shape_str((None, *shape[1:]))}."
    elif condition.kind == "vector":
        if not (dtype.is_floating or dtype.is_integer):
            return f"Expected numeric label vectors (batch, {condition.size}), got dtype {dtype.name}."
        if len(shape) != 2 or shape[-1] not in (None, condition.size):
            return (f"Expected label vectors of shape (batch, {condition.size}), got shape "
                    f"{shape_str((None, *shape[1:]))}.")
    return None


# ----------------------------------------------------------------- values at hand (arrays, tensors, a first batch)
def check_image_values(images, image_shape, likelihood, warn_nonfinite=True):
    """Raises the ValueError of the first problem of ``images`` (array-like ``[batch, *image_shape]``)."""
    images = np.asarray(images)
    if images.ndim != len(image_shape) + 1 or any(g != e for g, e in zip(images.shape[1:], image_shape)):
        raise ValueError(shape_message(image_shape, images.shape))
    if images.dtype == object or not (images.dtype.kind in "iuf" or images.dtype == bool):
        raise ValueError(f"Expected numeric images, got dtype {images.dtype.name}.")
    bounded = likelihood.data_range is not None
    if images.dtype.kind in "iu" and bounded and images.size and images.max() > 1:
        raise ValueError(integer_message(images.dtype.name, likelihood))
    if images.dtype.kind == "f" and images.size:
        finite = np.isfinite(images)
        if not finite.all():
            if warn_nonfinite:  # not an error for fit: the step guard skips such batches
                warnings.warn(f"The images hold {int(np.sum(~finite))} non-finite values (NaN/Inf): the batches "
                              "holding them will be skipped.", RuntimeWarning, stacklevel=6)  # fit's caller
            images = images[finite]
        if bounded and images.size:
            low, high = likelihood.data_range
            if images.min() < low or images.max() > high:
                raise ValueError(range_message(likelihood, float(images.min()), float(images.max())))


def check_label_values(labels, condition):
    """Raises the ValueError of the first problem of ``labels`` (array-like ``[batch, ...]``) for ``condition``."""
    labels = np.asarray(labels)
    if labels.dtype == object or not (labels.dtype.kind in "iuf" or labels.dtype == bool):
        raise ValueError(f"Expected numeric labels ({condition.describe()}), got dtype {labels.dtype}.")
    problem = label_problem(condition, labels.dtype, labels.shape)
    if problem:
        raise ValueError(problem)
    if condition.kind == "class" and labels.size and (labels.min() < 0 or labels.max() >= condition.size):
        raise ValueError(class_range_message(condition, int(labels.min()), int(labels.max())))


def check_labels_given(condition, labels_given):
    if condition and not labels_given:
        raise ValueError(missing_labels_message(condition))
    if not condition and labels_given:
        raise ValueError(unconditional_message())


def check_batch_values(model, images, labels, warn_nonfinite=True):
    """Every check of one batch (or all the data) at hand: labels given, images, then labels."""
    check_labels_given(model.condition, labels is not None)
    check_image_values(images, model.image_shape, model.likelihood, warn_nonfinite)
    if labels is not None:
        check_label_values(labels, model.condition)


# ----------------------------------------------------------------- datasets: structure from the element_spec
def _given(spec):
    return None if spec is None or type(spec).__name__ == "NoneTensorSpec" else spec


def check_element_spec(model, spec):
    """The checks of a dataset that need no values: labels given, image shape and dtype, label dtype and shape."""
    images, labels, _ = model.unpack(spec)
    labels = _given(labels)
    check_labels_given(model.condition, labels is not None)
    if not isinstance(images, tf.TensorSpec):
        raise ValueError(f"Expected a dataset of dense image tensors, got elements {spec!r}.")
    if images.shape.rank is not None:
        given = tuple(images.shape)
        if len(given) != len(model.image_shape) + 1 or any(
                g is not None and g != e for g, e in zip(given[1:], model.image_shape)):
            raise ValueError(shape_message(model.image_shape, given))
    if not (images.dtype.is_floating or images.dtype.is_integer or images.dtype == tf.bool):
        raise ValueError(f"Expected numeric images, got dtype {images.dtype.name}.")
    if labels is not None and isinstance(labels, tf.TensorSpec) and labels.shape.rank is not None:
        problem = label_problem(model.condition, labels.dtype, labels.shape)
        if problem:
            raise ValueError(problem)


# ----------------------------------------------------------------- in the step: every batch of every kind
def graph_checked(images, labels, likelihood, condition):
    """``images`` after the step's checks of values: pixels in range (integer pixels at most 1) and, for class
    labels, indices in range. A failed check raises `tf.errors.InvalidArgumentError` carrying `MARKER`, which
    `errors_as_value_errors` turns into the ValueError the same data get up front."""
    checks = []
    if likelihood.data_range is not None and images.dtype.is_integer:
        high_seen = tf.reduce_max(images)
        checks.append(tf.debugging.Assert(high_seen <= 1, [f"{MARKER}:integer:{images.dtype.name}", high_seen,
                                                           high_seen]))
    elif likelihood.data_range is not None and images.dtype.is_floating:
        low, high = likelihood.data_range
        low_seen, high_seen = tf.reduce_min(images), tf.reduce_max(images)
        # A non-finite extreme (NaN, +-Inf) passes: such batches are the step guard's to skip and count.
        inside = tf.logical_not(tf.logical_or(tf.logical_and(low_seen < low, tf.math.is_finite(low_seen)),
                                              tf.logical_and(high_seen > high, tf.math.is_finite(high_seen))))
        checks.append(tf.debugging.Assert(inside, [f"{MARKER}:range:", low_seen, high_seen]))
    if condition.kind == "class" and labels is not None and labels.dtype.is_integer:
        with tf.control_dependencies(checks):  # the images' problem is reported first, as up front
            low_seen, high_seen = tf.reduce_min(labels), tf.reduce_max(labels)
            inside = tf.logical_and(low_seen >= 0, high_seen < condition.size)
            checks.append(tf.debugging.Assert(inside, [f"{MARKER}:class_range:", low_seen, high_seen]))
    if not checks:
        return images
    with tf.control_dependencies(checks):
        return tf.identity(images)


def message_of(error, likelihood, condition):
    """The ValueError message of a failed `graph_checked` assertion in ``error``, or None for any other error."""
    found = _FAILED.search(str(getattr(error, "message", error)))
    if not found:
        return None
    kind, detail, low_seen, high_seen = found.groups()
    if kind == "integer":
        return integer_message(detail, likelihood)
    if kind == "range":
        return range_message(likelihood, float(low_seen), float(high_seen))
    return class_range_message(condition, int(float(low_seen)), int(float(high_seen)))


@contextlib.contextmanager
def errors_as_value_errors(likelihood, condition, entry):
    """Turns a failed `graph_checked` assertion raised inside the block (Keras' ``entry``) into its ValueError."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        message = message_of(error, likelihood, condition)
        if message is None:
            raise
        raise ValueError(message) from None
    except UnboundLocalError as error:  # Keras' predict on a dataset that turned out empty
        if "batch_outputs" not in str(error):
            raise
        raise ValueError(empty_message(entry)) from None


# ----------------------------------------------------------------- every input kind, up front
def _checked_element(model, element):
    """A dataset element with its images checked by `graph_checked` (for steps compiled by XLA)."""
    images, labels, _ = model.unpack(element)
    labels = _given(labels) if model.condition else None
    checked = graph_checked(images, labels, model.likelihood, model.condition)
    if isinstance(element, dict):
        return {**element, "images": checked}
    return (checked, *element[1:]) if isinstance(element, tuple) else checked


def _chained(first, rest):
    yield first
    yield from rest


def checked_input(model, x, y, entry):
    """Checks the data of ``entry`` (``"fit"``, ``"evaluate"``, ``"predict"``) up front; returns ``x`` to hand to
    Keras (a generator peeked for its first batch comes back whole)."""
    if x is None:
        return x
    if isinstance(x, tf.data.Dataset):
        check_element_spec(model, x.element_spec)
        if int(x.cardinality()) == 0:
            raise ValueError(empty_message(entry))
        if getattr(model, "jit_compile", False):  # XLA drops assertions in the compiled step: check in the pipeline
            return x.map(lambda *parts: _checked_element(model, parts[0] if len(parts) == 1 else parts))
        return x
    if inspect.isgenerator(x):
        try:
            first = next(x)
        except StopIteration:
            raise ValueError(empty_message(entry)) from None
        images, labels, _ = model.unpack(first)
        check_batch_values(model, images, labels, warn_nonfinite=False)
        return _chained(first, x)
    if isinstance(x, keras.utils.PyDataset):
        if x.num_batches == 0:
            raise ValueError(empty_message(entry))
        images, labels, _ = model.unpack(x[0])
        check_batch_values(model, images, labels, warn_nonfinite=False)
        return x
    images, labels, _ = model.unpack((x, y) if y is not None else x)
    if hasattr(images, "shape") and len(images.shape) and int(images.shape[0]) == 0:
        raise ValueError(empty_message(entry))
    if hasattr(images, "shape") and hasattr(images, "dtype"):
        check_batch_values(model, images, labels, warn_nonfinite=entry == "fit")
    return x


def check_validation_data(model, validation_data):
    """Checks ``fit``'s ``validation_data`` (a dataset or a tuple of arrays) up front."""
    if validation_data is None or inspect.isgenerator(validation_data):
        return
    if isinstance(validation_data, (tf.data.Dataset, keras.utils.PyDataset)):
        checked_input(model, validation_data, None, "fit (validation_data)")
        return
    x, y, _ = keras.utils.unpack_x_y_sample_weight(tuple(validation_data))
    checked_input(model, x, y, "fit (validation_data)")


class StepCount(keras.callbacks.Callback):
    """Counts the epochs and steps of a `fit`: a dataset of unknown size may turn out empty. (A `fit` that starts
    no epoch, e.g. a run restored at its end, is not an empty one.)"""

    def __init__(self):
        super().__init__()
        self.epochs = self.steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs += 1

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

    def check(self):
        """Raises the zero-examples ValueError when an epoch began and no step ran."""
        if self.epochs and not self.steps:
            raise ValueError(empty_message("fit"))
