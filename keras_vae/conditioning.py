"""What a model is conditioned on: nothing, a class index, or a label vector.

Every model has a `Condition`; training, export, serving, plots and the latent tools read it instead of
asking what kind of model they hold. Labels come in as class indices (``[batch]`` ints, or one int for
the whole batch) or float vectors (``[batch, size]``); `Condition.encode` turns them into the float
``[batch, size]`` tensor the networks see (one-hot for classes).

Example:

>>> c = Condition.classes(10)
>>> c.encode([3, 7]).shape
TensorShape([2, 10])
>>> bool(Condition.none()), c.get_config()
(False, {'kind': 'class', 'size': 10})
"""

import numpy as np
import tensorflow as tf

KINDS = ("none", "class", "vector")


class Condition:
    """The condition of a model: ``kind`` in ``("none", "class", "vector")`` and its ``size``.

    Args:
        kind: ``"none"`` (unconditional), ``"class"`` (class indices in ``[0, size)``) or ``"vector"``
            (float vectors of ``size`` entries, e.g. sprite factors).
        size: number of classes or vector length (0 for ``"none"``).
    """

    def __init__(self, kind="none", size=0):
        if kind not in KINDS:
            raise ValueError(f"Unknown condition kind {kind!r}; expected one of {list(KINDS)}.")
        size = int(size)
        if (kind == "none") != (size == 0) or size < 0:
            raise ValueError(f"A {kind!r} condition needs size {'0' if kind == 'none' else '>= 1'}, got {size}.")
        self.kind, self.size = kind, size

    @classmethod
    def none(cls):
        return cls()

    @classmethod
    def classes(cls, num_classes):
        return cls("class", num_classes)

    @classmethod
    def vector(cls, label_dim):
        return cls("vector", label_dim)

    @classmethod
    def from_options(cls, num_classes=None, label_dim=None):
        """The condition `build_vae` options describe: ``num_classes``, ``label_dim`` or neither."""
        if num_classes is not None and label_dim is not None:
            raise ValueError(f"Give num_classes (class labels) or label_dim (label vectors), not both; got "
                             f"num_classes={num_classes!r}, label_dim={label_dim!r}.")
        if num_classes is not None:
            return cls.classes(num_classes)
        if label_dim is not None:
            return cls.vector(label_dim)
        return cls.none()

    def __bool__(self):
        return self.kind != "none"

    def __eq__(self, other):
        return isinstance(other, Condition) and (self.kind, self.size) == (other.kind, other.size)

    def __repr__(self):
        return f"Condition(kind={self.kind!r}, size={self.size})"

    def describe(self):
        """A phrase for messages: ``"class labels in [0, 10)"``, ``"label vectors of size 3"``, ``"no labels"``."""
        if self.kind == "class":
            return f"class labels in [0, {self.size})"
        if self.kind == "vector":
            return f"label vectors of size {self.size}"
        return "no labels"

    def label_spec(self, name="label"):
        """The `tf.TensorSpec` of one batch of labels as given (None when unconditional)."""
        if self.kind == "class":
            return tf.TensorSpec([None], tf.int32, name=name)
        if self.kind == "vector":
            return tf.TensorSpec([None, self.size], tf.float32, name=name)
        return None

    def check(self, labels, batch_size=None):
        """Validates labels as given: None for unconditional, a tensor of the right kind otherwise.

        A class index (a scalar) or one vector is broadcast to ``batch_size`` when it is given.
        """
        if not self:
            return None
        if labels is None:
            raise ValueError(f"This model is conditional: pass labels= ({self.describe()}).")
        if not isinstance(labels, (tf.Tensor, tf.Variable)):
            labels = np.asarray(labels)
            if labels.dtype == object or not (np.issubdtype(labels.dtype, np.number) or labels.dtype == bool):
                raise ValueError(f"Expected numeric labels ({self.describe()}), got dtype {labels.dtype}.")
            labels = tf.convert_to_tensor(labels)
        event_rank = 0 if self.kind == "class" else 1
        if labels.shape.rank == event_rank and batch_size is not None:
            labels = tf.broadcast_to(labels, tf.concat([[batch_size], tf.shape(labels)], 0))
        if self.kind == "class":
            if not labels.dtype.is_integer:
                raise ValueError(f"Expected integer class indices (batch,), got dtype {labels.dtype.name}.")
            if labels.shape.rank != 1:
                raise ValueError(f"Expected class labels of shape (batch,), got shape {tuple(labels.shape)}.")
            return self._checked_range(tf.cast(labels, tf.int32))
        if not (labels.dtype.is_floating or labels.dtype.is_integer):
            raise ValueError(f"Expected numeric label vectors (batch, {self.size}), got dtype {labels.dtype.name}.")
        if labels.shape.rank != 2 or labels.shape[-1] not in (None, self.size):
            raise ValueError(f"Expected label vectors of shape (batch, {self.size}), got shape {tuple(labels.shape)}.")
        return tf.ensure_shape(tf.cast(labels, tf.float32), [None, self.size])

    def _checked_range(self, labels):
        # one_hot maps an out-of-range index to all zeros: a silent wrong answer.
        if tf.executing_eagerly():
            values = labels.numpy()
            if values.size and (values.min() < 0 or values.max() >= self.size):
                raise ValueError(f"Class labels must be in [0, {self.size}); got values {values.min()}..{values.max()}.")
            return labels
        with tf.control_dependencies([
            tf.debugging.assert_non_negative(labels, message="negative class label"),
            tf.debugging.assert_less(labels, self.size, message=f"class label >= num_classes ({self.size})"),
        ]):
            return tf.identity(labels)

    def encode(self, labels, batch_size=None):
        """The float ``[batch, size]`` input the networks see (one-hot for classes); None when unconditional."""
        labels = self.check(labels, batch_size)
        if labels is None:
            return None
        return tf.one_hot(labels, self.size) if self.kind == "class" else labels

    def get_config(self):
        return {"kind": self.kind, "size": self.size}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @classmethod
    def get(cls, identifier):
        """A `Condition` from a `Condition`, its config dict, or None (unconditional)."""
        if identifier is None:
            return cls.none()
        if isinstance(identifier, Condition):
            return identifier
        if isinstance(identifier, dict):
            return cls.from_config(identifier)
        raise ValueError(f"Expected a Condition, its config or None, got {identifier!r}.")
