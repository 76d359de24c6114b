"""Latent-space operations: codes of inputs, interpolation, attribute vectors, style blending, traversals.

Every function takes inputs as images ``[n, H, W, C]`` (encoded to their posterior means) or, where
it says so, as latent codes ``[n, latent_dim]``, and returns decoded images (numpy, values in [0, 1]
for Bernoulli models). For a conditional model (``model.condition``) pass ``labels=``: one label (used
for every input) or one per input, used both to encode the inputs and to decode the results. Where
several inputs make one output (`interpolate`, `blend`), the output is decoded under ``decode_labels=``
if given, else under the inputs' labels mixed by their weights: the heaviest input's class label, or
the weighted mean of label vectors. `style_transfer` decodes each image's code under other labels.

Example:

>>> strip = interpolate(vae, images[0], images[1], num_steps=8, method="spherical")   # [8, H, W, C]
>>> smile = attribute_vector(vae, faces, has_attribute=smiling)                       # [latent_dim]
>>> edited = apply_attribute(vae, faces[:4], smile, strength=1.5)
>>> mixed = blend(vae, images[:3], weights=[0.5, 0.3, 0.2])                           # [1, H, W, C]
>>> grid = traverse(vae, images[0], dims=[0, 1, 2], values=np.linspace(-3, 3, 7))     # [3, 7, H, W, C]
>>> styles = style_transfer(cvae, digits[:4], labels=[3, 1, 4, 1], target_labels=range(10))  # [4, 10, H, W, C]
"""

import numpy as np

from keras_vae import data_checks

INTERPOLATIONS = ("linear", "spherical")


def lerp(start, end, num_steps):
    """``num_steps`` points on the segment from ``start`` to ``end`` (both ends included): ``[num_steps, d]``."""
    start, end = _pair(start, end)
    t = np.linspace(0.0, 1.0, _steps(num_steps))[:, np.newaxis]
    return ((1.0 - t) * start + t * end).astype(np.float32)


def slerp(start, end, num_steps):
    """Spherical interpolation (Shoemake 1985; White 2016 for VAE codes): ``[num_steps, d]``.

    Follows the great circle between the directions of ``start`` and ``end``, so intermediate codes
    keep a typical norm for a Gaussian prior instead of passing near the origin. Falls back to
    `lerp` when the two codes are (anti)parallel or zero.
    """
    start, end = _pair(start, end)
    norms = np.linalg.norm(start) * np.linalg.norm(end)
    if norms == 0:
        return lerp(start, end, num_steps)
    omega = np.arccos(np.clip(np.dot(start, end) / norms, -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        return lerp(start, end, num_steps)
    t = np.linspace(0.0, 1.0, _steps(num_steps))[:, np.newaxis]
    path = (np.sin((1.0 - t) * omega) * start + np.sin(t * omega) * end) / np.sin(omega)
    return path.astype(np.float32)


def _steps(num_steps):
    if int(num_steps) < 2:
        raise ValueError(f"num_steps must be >= 2 (both ends are included), got {num_steps}")
    return int(num_steps)


def _pair(start, end):
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    if start.ndim != 1 or start.shape != end.shape:
        raise ValueError(f"Expected two codes of the same shape (d,), got {start.shape} and {end.shape}.")
    if not (np.all(np.isfinite(start)) and np.all(np.isfinite(end))):
        raise ValueError("Codes contain non-finite values (NaN or Inf).")
    return start, end


def label_batch(model, labels, n, takes=None):
    """``labels`` as one per input (numpy ``[n, ...]``): one label is repeated; None for an unconditional model.

    ``takes`` words the count error (what the caller takes); the default is ``"Got 3 labels for 2 inputs."``.
    Example: ``label_batch(cvae, 7, 3)`` is ``array([7, 7, 7])``.
    """
    if not model.condition:
        if labels is not None:
            raise ValueError("labels= is only for conditional models; this model takes no labels.")
        return None
    if labels is None:
        raise ValueError(f"A conditional model needs labels= ({model.condition.describe()}): one, or one per input.")
    labels = np.asarray(labels)
    if labels.ndim == _single_rank(model):
        labels = np.broadcast_to(labels, (n, *labels.shape))
    elif labels.ndim and len(labels) != n:
        raise ValueError(f"{takes}; got {len(labels)} labels." if takes else f"Got {len(labels)} labels for {n} inputs.")
    data_checks.check_label_values(labels, model.condition)  # the messages fit gives
    return labels


def _single_rank(model):
    """The rank of one label: 0 for a class label, 1 for a label vector."""
    return 0 if model.condition.kind == "class" else 1


def _batches(n, batch_size):
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [slice(start, start + int(batch_size)) for start in range(0, n, int(batch_size))]


def encode_means(model, images, labels=None, batch_size=256):
    """Posterior means ``[n, latent_dim]`` (numpy) of ``images`` ``[n, H, W, C]``, ``batch_size`` at a time."""
    images = checked_images(model, images)
    labels = label_batch(model, labels, len(images))
    means = [np.asarray(model.encode(images[b], None if labels is None else labels[b]).mean())
             for b in _batches(len(images), batch_size)]
    return np.concatenate(means).astype(np.float32)


def decode_codes(model, codes, labels=None, batch_size=256):
    """Decoded images (numpy) of codes ``[n, latent_dim]``."""
    codes = np.asarray(codes, np.float32)
    if codes.ndim != 2 or codes.shape[1] != model.latent_dim:
        raise ValueError(f"Expected codes of shape (n, {model.latent_dim}), got {codes.shape}.")
    labels = label_batch(model, labels, len(codes))
    out = [np.asarray(model.decode(codes[b], None if labels is None else labels[b]))
           for b in _batches(len(codes), batch_size)]
    return np.concatenate(out)


def checked_images(model, images):
    """``images`` as float32 numpy ``[n, H, W, C]`` of the model's image shape, all finite and in the likelihood's
    range (else the ValueError `fit` gives)."""
    images = np.asarray(images)
    data_checks.check_image_values(images, model.image_shape, model.likelihood, warn_nonfinite=False)
    images = images.astype(np.float32)
    if not np.all(np.isfinite(images)):
        raise ValueError("Images contain non-finite values (NaN or Inf).")
    return images


def codes_of(model, inputs, labels=None):
    """Codes ``[n, latent_dim]`` for inputs given as images ``[n, H, W, C]`` / ``[H, W, C]`` or codes ``[n, d]`` / ``[d]``."""
    inputs = np.asarray(inputs)  # converted after the image checks, which see integer pixels as they are
    image_shape, latent_dim = tuple(model.image_shape), model.latent_dim
    if inputs.ndim == len(image_shape) or inputs.shape == (latent_dim,):
        inputs = inputs[np.newaxis]
    if inputs.ndim == len(image_shape) + 1:
        return encode_means(model, inputs, labels)  # images: their shape, dtype and range are checked there
    inputs = inputs.astype(np.float32)
    if inputs.ndim == 2 and inputs.shape[1] == latent_dim:
        if not np.all(np.isfinite(inputs)):
            raise ValueError("Codes contain non-finite values (NaN or Inf).")
        return inputs
    raise ValueError(
        f"Expected images of shape {image_shape} or codes of shape ({latent_dim},) (optionally batched), "
        f"got {inputs.shape}."
    )


def interpolate(model, start, end, num_steps=8, method="linear", labels=None, decode_labels=None):
    """Decoded images ``[num_steps, H, W, C]`` along the path between two inputs or codes.

    Args:
        start, end: images ``[H, W, C]`` or codes ``[latent_dim]``.
        method: ``"linear"`` (`lerp`) or ``"spherical"`` (`slerp`).
        labels: conditional models: one label for both ends, or two (start's, end's), each end encoded
            under its own. Step ``t`` is decoded under the nearer end's class label (the start's at
            the middle) or under the label vectors blended like the codes, ``(1 - t) * a + t * b``,
            so both ends reproduce their reconstructions.
        decode_labels: conditional models: one label for every step, or one per step, instead.

    Example: ``interpolate(cvae, three, seven, labels=[3, 7])`` turns a 3 into a 7.
    """
    if method not in INTERPOLATIONS:
        raise ValueError(f"Unknown interpolation method {method!r}; expected one of {list(INTERPOLATIONS)}.")
    ends = label_batch(model, labels, 2, "interpolate takes two inputs (start, end), so one label or two")
    z0, z1 = (_single(codes_of(model, v, None if ends is None else ends[i]), what)
              for i, (v, what) in enumerate(((start, "start"), (end, "end"))))
    path = lerp(z0, z1, num_steps) if method == "linear" else slerp(z0, z1, num_steps)
    if decode_labels is None and ends is not None:
        t = np.linspace(0.0, 1.0, len(path))
        decode_labels = np.stack([mixed_label(model, ends, [1.0 - step, step]) for step in t])
    return decode_codes(model, path, decode_labels)


def mixed_label(model, labels, weights):
    """The one label several inputs' mix is decoded under: the class label of the heaviest input (the first
    among equals) or the weighted mean of label vectors. ``labels`` has one label per weight.

    Example: ``mixed_label(cvae, np.array([3, 7]), [0.4, 0.6])`` is 7.
    """
    weights = np.asarray(weights, np.float64)
    if model.condition.kind == "class":
        return labels[int(np.argmax(weights))]
    return ((weights / weights.sum()) @ np.asarray(labels, np.float64)).astype(np.float32)


def _single(codes, what):
    if len(codes) != 1:
        raise ValueError(f"Expected one {what} input, got {len(codes)}.")
    return codes[0]


def attribute_vector(model, images, has_attribute, labels=None, batch_size=256):
    """Mean code of the images with an attribute minus the mean code of those without: ``[latent_dim]``.

    Args:
        images: ``[n, H, W, C]``.
        has_attribute: booleans ``[n]`` (e.g. ``mnist_labels == 7`` or ``sprite_factors[:, 0] == 2``).
        labels: for conditional models, one label per image (or one for all), used to encode.
    """
    has_attribute = np.asarray(has_attribute)
    if has_attribute.dtype != bool:
        raise ValueError(f"has_attribute must be booleans, got dtype {has_attribute.dtype}.")
    if has_attribute.shape != (len(images),):
        raise ValueError(f"has_attribute must have one entry per image ({len(images)}), got shape {has_attribute.shape}.")
    if has_attribute.all() or not has_attribute.any():
        raise ValueError("Attribute vectors need examples both with and without the attribute.")
    codes = encode_means(model, images, labels, batch_size=batch_size)
    return codes[has_attribute].mean(axis=0) - codes[~has_attribute].mean(axis=0)


def apply_attribute(model, inputs, vector, strength=1.0, labels=None, decode_labels=None):
    """Decodes ``code + strength * vector`` for each input (images or codes): ``[n, H, W, C]``.

    Conditional models: each input is encoded and decoded under its own label (``labels``: one, or one
    per input), or decoded under ``decode_labels`` (one, or one per input) when given.
    Example: ``apply_attribute(vae, faces[:4], smile, strength=1.5)``.
    """
    vector = np.asarray(vector, np.float32)
    if vector.shape != (model.latent_dim,):
        raise ValueError(f"Expected an attribute vector of shape ({model.latent_dim},), got {vector.shape}.")
    codes = codes_of(model, inputs, labels)
    return decode_codes(model, codes + float(strength) * vector, labels if decode_labels is None else decode_labels)


def blend(model, inputs, weights, labels=None, decode_labels=None):
    """Decodes the weighted mean of several inputs' codes: ``[1, H, W, C]``.

    ``weights`` (one per input, >= 0, not all zero) are normalized to sum to 1. Conditional models:
    ``labels`` is one label or one per input (each input encoded under its own); the mix is decoded
    under ``decode_labels`` (one label) if given, else under `mixed_label` (the heaviest input's class,
    or the weighted mean of label vectors).
    Example: ``blend(cvae, digits[:2], [0.5, 0.5], labels=[3, 8], decode_labels=8)``.
    """
    codes = codes_of(model, inputs, labels)
    weights = np.asarray(weights, np.float64)
    if weights.shape != (len(codes),):
        raise ValueError(f"Expected one weight per input ({len(codes)}), got shape {weights.shape}.")
    if not np.all(np.isfinite(weights)) or weights.min() < 0 or weights.sum() <= 0:
        raise ValueError(f"Weights must be finite, >= 0 and not all zero; got {weights.tolist()}.")
    mixed = (weights / weights.sum()) @ codes
    if decode_labels is None and model.condition and labels is not None:
        decode_labels = mixed_label(model, label_batch(model, labels, len(codes)), weights)
    decode_labels = _one_label(model, decode_labels, "blend makes one image, so decode_labels is one label")
    return decode_codes(model, mixed[np.newaxis].astype(np.float32), decode_labels)


def _one_label(model, labels, takes):
    """``labels`` when it is one label (or None); a ValueError saying ``takes`` for several."""
    if labels is not None and model.condition:
        labels = np.asarray(labels)
        if labels.ndim > _single_rank(model):
            if len(labels) != 1:
                raise ValueError(f"{takes}; got {len(labels)} labels.")
            labels = labels[0]
    return labels


def traverse(model, inputs, dims=None, values=None, labels=None):
    """Sweeps each latent dimension in ``dims`` over ``values``, the others fixed at the input's code.

    Args:
        inputs: one image ``[H, W, C]`` or code ``[latent_dim]`` (the starting point).
        dims: latent dimensions to sweep (default: all).
        values: the values each swept dimension takes (default ``linspace(-3, 3, 7)``).
        labels: conditional models: the input's one label, used to encode and to decode.

    Returns decoded images ``[len(dims), len(values), H, W, C]``.
    """
    labels = _one_label(model, labels, "traverse takes one input, so one label (its own)")
    code = _single(codes_of(model, inputs, labels), "input")
    dims = list(range(model.latent_dim)) if dims is None else [int(d) for d in dims]
    if not dims or min(dims) < 0 or max(dims) >= model.latent_dim:
        raise ValueError(f"dims must be latent dimensions in [0, {model.latent_dim}), got {dims}.")
    values = np.linspace(-3.0, 3.0, 7) if values is None else np.asarray(values, np.float32)
    if values.ndim != 1 or not len(values) or not np.all(np.isfinite(values)):
        raise ValueError(f"values must be a non-empty 1-D array of finite numbers, got {values!r}.")
    codes = np.repeat(code[np.newaxis], len(dims) * len(values), axis=0).reshape(len(dims), len(values), -1)
    for row, dim in enumerate(dims):
        codes[row, :, dim] = values
    images = decode_codes(model, codes.reshape(-1, model.latent_dim), labels)
    return images.reshape(len(dims), len(values), *images.shape[1:])


def style_transfer(model, images, labels, target_labels, batch_size=256):
    """Each image's content code (encoded under its own label) decoded under each target label.

    Args:
        model: a conditional VAE (class labels or label vectors).
        images: ``[n, H, W, C]`` (or one ``[H, W, C]``).
        labels: the images' labels: one per image, or one for all.
        target_labels: the conditions to decode under: ``[n_targets]`` class labels or
            ``[n_targets, label_dim]`` label vectors (one label is one target).

    Returns decoded images ``[n, n_targets, H, W, C]``: row ``i`` is image ``i`` in every target style.
    Example: ``style_transfer(cvae, digits[:4], [3, 1, 4, 1], range(10))`` writes each digit as 0..9.
    """
    if not model.condition:
        raise ValueError("style_transfer needs a conditional model (built with num_classes= or label_dim=); "
                         "this model takes no labels.")
    images = np.asarray(images)
    if images.ndim == len(model.image_shape):
        images = images[np.newaxis]
    if labels is None or target_labels is None:
        raise ValueError(f"style_transfer needs labels= and target_labels= ({model.condition.describe()}).")
    targets = np.asarray(target_labels)
    if targets.ndim == _single_rank(model):
        targets = targets[np.newaxis]
    if not len(targets):
        raise ValueError("target_labels is empty: give at least one target label.")
    for name, given, count, takes in (
        ("labels", labels, len(images), f"one per image ({len(images)}) or one for all"),
        ("target_labels", targets, len(targets), "one label per target"),
    ):
        try:
            checked = label_batch(model, given, count, takes)
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
        if name == "labels":
            labels = checked
    codes = encode_means(model, images, labels, batch_size=batch_size)
    n, m = len(codes), len(targets)
    decoded = decode_codes(model, np.repeat(codes, m, axis=0), np.concatenate([targets] * n), batch_size=batch_size)
    return decoded.reshape(n, m, *decoded.shape[1:])
