"""Memory budgets of the public API, and the checks of the numbers a user passes it (TF-free).

Every entry that allocates by a user's number (``vae.sample(n)``, a sampler's ``fit``, ``iwae_bound``'s
samples, ``build_vae``'s image shape, ``load_examples``' count, ...) either works in chunks or calls
`check_size` first: a request above its budget is a ValueError naming the argument, the limit and how to
change it, raised before anything is allocated. The budgets are read at each call, so a program with more
memory can raise one (``keras_vae.limits.MAX_ARRAY_BYTES = 8 * GiB``). `export.limits` bounds the server's
requests the same way.

Example:

>>> integer_at_least("latent_dim", 16, 1)
16
>>> finite_float("temperature", 0.5, above=0.0)
0.5
>>> check_size("num_samples", 10**9, 28 * 28 * 4, "MAX_ARRAY_BYTES", "sampled images", "draw fewer at a time")
Traceback (most recent call last):
ValueError: num_samples=1000000000 needs 2920.6 GiB of sampled images, above the limit of 2.0 GiB ...
"""

import math
import numbers
import operator
import sys

GiB = 2**30
MiB = 2**20

# One array returned or held whole from a count a user gives (sampled images, loaded examples, a sampler's
# working arrays over the codes): a few such arrays stay well inside a 24 GB machine shared with others.
MAX_ARRAY_BYTES = 2 * GiB
# The intermediates of one chunk of a chunked computation (importance samples decoded at once): smaller
# chunks cost little speed, and a tf.function may hold two chunks at a time.
MAX_CHUNK_BYTES = 1 * GiB
# A model's float32 weights: training holds about four times as much (gradients, Adam's two moments).
MAX_WEIGHT_BYTES = 2 * GiB
# One example's layer outputs through the encoder and decoder: a training batch holds this times the batch
# size, and again for the gradients.
MAX_EXAMPLE_ACTIVATION_BYTES = 256 * MiB


def format_bytes(count):
    """``count`` bytes in GiB, MiB or KiB, one decimal: ``format_bytes(3 * 2**30)`` is ``'3.0 GiB'``."""
    for unit, size in (("GiB", GiB), ("MiB", MiB)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count / 1024:.1f} KiB"


def check_size(argument, value, bytes_per_unit, budget, what, how, count=None):
    """ValueError unless ``count * bytes_per_unit`` fits the budget named ``budget`` (a constant of this module).

    Args:
        argument: the argument (or flag) that sets the size, named in the message.
        value: its value, shown in the message.
        bytes_per_unit: bytes one unit of ``count`` costs.
        count: the number of units asked for (``value`` when None: a count).
        budget: the name of the budget constant, e.g. ``"MAX_ARRAY_BYTES"``.
        what: what the memory would hold, e.g. ``"sampled (28, 28, 1) images"``.
        how: how to stay inside it, e.g. ``"draw them in batches"``.

    Returns the largest ``value`` that fits (at least 0), for messages and chunking.
    """
    limit = getattr(sys.modules[__name__], budget)
    fits = int(limit // max(1, bytes_per_unit))
    size = (value if count is None else count) * bytes_per_unit
    if size > limit:
        fitting = f"; {fits} fit" if count is None else ""
        raise ValueError(f"{argument}={value!r} needs {format_bytes(size)} of {what}, above the limit of "
                         f"{format_bytes(limit)} (keras_vae.limits.{budget}{fitting}): {how}, or raise "
                         f"keras_vae.limits.{budget}.")
    return fits


def _is_bool(value):
    return isinstance(value, bool) or type(value).__name__ == "bool_"  # numpy's bool is no int subclass


def integer_at_least(name, value, low=0, high=None):
    """``value`` as an int, or a ValueError naming ``name`` when it is not a whole number >= ``low`` (and <=
    ``high`` when given).

    Python and numpy integers and whole floats (``2.0``, as a config file may give) pass; ``2.5``, strings and
    bools (``True`` is no count) are refused.

    >>> integer_at_least("epochs", 3.0, 1)
    3
    """
    number = None
    if not _is_bool(value):
        try:
            number = operator.index(value)
        except TypeError:
            whole = isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer()
            number = int(value) if whole else None
    if number is None or number < low or (high is not None and number > high):
        upper = "" if high is None else f" and <= {high}"
        raise ValueError(f"{name} must be an integer >= {low}{upper}, got {value!r}")
    return number


def int32_seed(name, value):
    """A seed as an int that fits the int32 seeds TensorFlow's stateless ops take, or a ValueError naming ``name``."""
    return integer_at_least(name, value, -(2**31), 2**31 - 1)


def finite_float(name, value, low=None, above=None, high=None):
    """``value`` as a float, or a ValueError naming ``name`` unless it is a finite number with ``value >= low``,
    ``value > above`` and ``value <= high`` (each bound when given). Strings and bools are refused.

    >>> finite_float("quantile", 0.99, above=0.0, high=1.0)
    0.99
    """
    number = None
    if not (_is_bool(value) or isinstance(value, (str, bytes))):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
    bounds = [f">= {low}" if low is not None else "", f"> {above}" if above is not None else "",
              f"<= {high}" if high is not None else ""]
    if (number is None or not math.isfinite(number) or (low is not None and number < low)
            or (above is not None and number <= above) or (high is not None and number > high)):
        wanted = " and ".join(b for b in bounds if b)
        raise ValueError(f"{name} must be a finite number{' ' + wanted if wanted else ''}, got {value!r}")
    return number


def activation_count(network):
    """Numbers one example produces through ``network``'s layers (their output sizes summed; nested models
    walked): an estimate of its activation memory, ``0`` for a network whose layers give no static shapes.

    >>> activation_count(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]))
    3
    """
    total = 0
    for layer in getattr(network, "layers", ()):
        if getattr(layer, "layers", None):
            total += activation_count(layer)
            continue
        try:
            outputs = layer.output
        except (AttributeError, ValueError):  # a layer never called symbolically has no output
            continue
        for output in outputs if isinstance(outputs, (list, tuple)) else [outputs]:
            shape = getattr(output, "shape", None)
            if shape is not None and all(d is not None for d in shape[1:]):
                total += math.prod(int(d) for d in shape[1:])
    return total
