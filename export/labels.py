"""Labels as callers give them, turned into the batch a conditional export's ``label`` input takes.

A condition is anything with ``.kind`` and ``.size``: a model's `keras_vae.Condition`, or the
`InputCondition` read back from an exported ``label`` input. ``"class"`` labels are int32 ``[batch]``
class indices (``size`` classes; None when an export does not say), ``"vector"`` labels are float32
``[batch, size]``. A caller gives one label for the whole batch or one per example.

Example:

>>> label_batch(vae.condition, 7, count=3)                   # a cvae with num_classes=10
array([7, 7, 7], dtype=int32)
>>> label_batch(InputCondition("vector", 2), [0.5, 1.0], count=2)
array([[0.5, 1. ], [0.5, 1. ]], dtype=float32)
>>> condition_of_input(np.int32, (-1,))
InputCondition(kind='class', size=None)
"""

import collections

import numpy as np

InputCondition = collections.namedtuple("InputCondition", ["kind", "size"])


def condition_of_input(dtype, shape):
    """The `InputCondition` of a ``label`` input, from its dtype and shape (``-1``/None for the batch)."""
    if np.dtype(dtype).kind in "iu":
        return InputCondition("class", None)
    return InputCondition("vector", int(shape[-1]))


def placeholder_labels(condition, count):
    """Zeros shaped as ``count`` labels (class 0, or all-zero vectors): inputs for warm-up and checks."""
    if condition.kind == "class":
        return np.zeros([count], np.int32)
    return np.zeros([count, condition.size], np.float32)


def label_batch(condition, labels, count):
    """``labels`` (one label, or ``count`` of them) as the ``label`` input for ``count`` examples.

    Raises ValueError for a missing label, a wrong shape, a class index out of range or a non-finite vector.
    """
    if labels is None:
        raise ValueError("This model is conditional: pass a label (--label; one for all, or one per example).")
    if condition.kind == "class":
        return _class_batch(np.asarray(labels), condition.size, count)
    return _vector_batch(np.asarray(labels, np.float32), condition.size, count)


def _class_batch(labels, num_classes, count):
    flat = labels.reshape(-1)
    if flat.size not in (1, count) or not np.issubdtype(flat.dtype, np.number) or np.any(flat != np.round(flat)):
        raise ValueError(f"Expected class labels: one integer, or {count} of them; got {labels.tolist()!r}.")
    flat = np.broadcast_to(flat.astype(np.int64), [count])
    if flat.min() < 0 or (num_classes is not None and flat.max() >= num_classes):
        bound = f"< {num_classes}" if num_classes is not None else "non-negative"
        raise ValueError(f"Class labels must be >= 0 and {bound}; got {flat.min()}..{flat.max()}.")
    return flat.astype(np.int32)


def _vector_batch(labels, size, count):
    rows = labels.reshape(-1, size) if labels.size % size == 0 and labels.size else None
    if rows is None or len(rows) not in (1, count):
        raise ValueError(f"Expected label vectors of size {size} (one, or {count} of them); got shape {labels.shape}.")
    if not np.all(np.isfinite(rows)):
        raise ValueError("Label vectors must be finite (they contain NaN or Inf).")
    return np.broadcast_to(rows, [count, size]).copy()
