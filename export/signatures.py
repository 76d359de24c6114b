"""The functions a trained VAE exports: serving signatures for TF Serving and on-device ones for TFLite.

Each endpoint is ``(name, fn, input_signature)`` for `keras.export.ExportArchive.add_endpoint`; every
``fn`` returns a dict so output names are stable. Only stock TensorFlow ops are used (TF Serving runs
no ``py_function`` and no custom ops), and bad inputs fail inside the graph with InvalidArgument,
which TF Serving and `keras-vae serve` both answer with HTTP 400.

Serving signatures (`serving_endpoints`):

- ``serving_default``: ``z`` float32 ``[batch, latent_dim]`` -> ``images`` float32 ``[batch, H, W, C]``
  (the likelihood mean clipped to `image_range`: [0, 1]; a Gaussian model's raw mean can overshoot it,
  and stays available as ``vae.decode`` in Python).
- ``sample``: ``num_samples`` int32 scalar in ``[1, MAX_SAMPLES]``, ``temperature`` float32 scalar
  (> 0), ``seed`` int64 scalar -> ``images``, ``z``. The codes come from `CounterNoise`, the seeded
  generator the TFLite files run too: the same seed gives the same images in the SavedModel and on
  device. The codes are decoded with ``model.decode`` (for a ladder VAE: the top layer, with
  the lower layers at their conditional prior means rather than drawn).
- with ``with_encoder``: ``encode`` (``images`` -> ``loc``, ``scale``), ``reconstruct`` (``images``
  -> ``images``, decoded posterior means) and ``score`` (``images`` -> ``score``, see `SCORE_SAMPLES`).
- conditional models (``model.condition``) take an extra ``label`` input on every signature: int32
  ``[batch]`` class indices (kind "class") or float32 ``[batch, size]`` vectors (kind "vector"); for
  ``sample``, one label for all samples or one per sample.
- image inputs are checked against ``model.likelihood.data_range`` ([0, 1] for Bernoulli pixels).

TFLite signatures (`tflite_endpoints`): ``decode`` (``z`` -> ``images``), ``sample`` (the inputs and
outputs of the SavedModel's, drawn with `CounterNoise` from builtin integer ops: stateless random ops need
Flex, which the pip LiteRT runtime cannot run), and fixed-batch copies of ``decode`` (e.g. ``decode_64``:
exactly 64 codes), with static shapes throughout. Images are clipped to `image_range` here too.

Example:

>>> archive = keras.export.ExportArchive()
>>> archive.track(vae)
>>> for name, fn, spec in serving_endpoints(vae, with_encoder=True):
...     archive.add_endpoint(name, fn, input_signature=spec)
>>> archive.write_out("saved_models/vae/1")
"""

import tensorflow as tf

from keras_vae.anomaly import DEFAULT_NUM_SAMPLES
from keras_vae.export.device_noise import CounterNoise
from keras_vae.export.limits import MAX_SAMPLES


# `score` is the estimator of keras_vae.anomaly_scores(method="elbo") (-mean of log importance
# weights, as many posterior draws), traced into the graph: one image at a time from a fixed stateless
# seed, so it is deterministic and independent of the other images in the request, and thresholds
# from keras_vae.score_threshold apply to it.
SCORE_SAMPLES = DEFAULT_NUM_SAMPLES["elbo"]
SCORE_SEED = (1234, 5678)

SIGNATURE_DESCRIPTIONS = {
    "serving_default": "decode: z [batch, latent_dim] -> images [batch, H, W, C] (likelihood mean, clipped to [0, 1])",
    "sample": f"num_samples (int32 scalar, 1..{MAX_SAMPLES}), temperature (float32 > 0), seed (int64) -> images, z",
    "encode": "images -> loc, scale of the posterior q(z|x)",
    "reconstruct": "images -> images decoded from the posterior mean",
    "score": f"images -> score: negative ELBO in nats ({SCORE_SAMPLES} posterior draws, fixed seed)",
}


def describe_signature(name):
    """What signature ``name`` does (``sample_<sampler>`` is ``sample`` with an ex-post sampler's codes)."""
    if name.startswith("sample_"):
        return f"{SIGNATURE_DESCRIPTIONS['sample']}, codes from the ex-post sampler {name[len('sample_'):]!r}"
    return SIGNATURE_DESCRIPTIONS[name]


_TF_NOISE = ("Graph execution error", "Detected at node", "<stack traces unavailable>")


def error_message(err):
    """The message of a ``tf.errors.OpError`` raised by a signature, without TF's node/op decorations."""
    text = err.message.split("\n\t [[")[0].split(" [Op:")[0]
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith(_TF_NOISE)]
    return " ".join(lines).strip() or type(err).__name__


def _checked_codes(z):
    return tf.debugging.check_numerics(z, "z must be finite (it contains NaN or Inf)")


def _with_checks(checks, tensor):
    with tf.control_dependencies(checks):
        return tf.identity(tensor)


def _checked_images(model, images):
    images = tf.debugging.check_numerics(images, "images must be finite (they contain NaN or Inf)")
    data_range = model.likelihood.data_range
    if data_range is None:  # e.g. Gaussian pixels: any finite value
        return images
    # Outside the likelihood's support (0..255 pixels for Bernoulli) images would score as garbage.
    low, high = data_range
    message = f"images must be in [{low:g}, {high:g}]" + (" (scale 0..255 pixels by 1/255)" if high == 1 else "")
    return _with_checks(
        [tf.debugging.assert_greater_equal(images, low, message=message),
         tf.debugging.assert_less_equal(images, high, message=message)],
        images,
    )


def _checked_labels(condition, label):
    """``label`` with the checks of its kind: class indices in range, or finite label vectors."""
    if condition.kind == "vector":
        return tf.debugging.check_numerics(label, "label vectors must be finite (they contain NaN or Inf)")
    size = tf.constant(condition.size, label.dtype)
    return _with_checks(
        [tf.debugging.assert_non_negative(label, message="label must be >= 0"),
         tf.debugging.assert_less(label, size, message=f"label must be < {condition.size}")],
        label,
    )


def _labels_for(label, num_samples):
    """One label for every sample, or exactly one label per sample (class indices or vectors)."""
    count = tf.shape(label)[0]
    check = tf.debugging.assert_equal(
        tf.logical_or(tf.equal(count, 1), tf.equal(count, num_samples)),
        True,
        message="label must hold 1 label or num_samples labels",
    )
    with tf.control_dependencies([check]):
        return tf.broadcast_to(label, tf.concat([[num_samples], tf.shape(label)[1:]], axis=0))


# Served images are images: the training pipeline scales pixels to [0, 1], the Bernoulli mean lies there, and a
# Gaussian mean (any real) is clipped to it, as the studio and `keras_vae.images` would when saving it.
IMAGE_RANGE = (0.0, 1.0)


def image_range(model):
    """``(low, high)`` that served and on-device images are clipped to: the likelihood's data range, else
    `IMAGE_RANGE`."""
    return tuple(model.likelihood.data_range or IMAGE_RANGE)


def _served(model, images):
    low, high = image_range(model)
    return tf.clip_by_value(images, low, high)


def _image_spec(model):
    return tf.TensorSpec([None, *model.image_shape], tf.float32, name="images")


def _code_spec(model, batch=None):
    return tf.TensorSpec([batch, model.latent_dim], tf.float32, name="z")


def label_specs(model, batch=None):
    """``[model.condition.label_spec()]`` for a conditional model, else ``[]``: the trailing label input.

    ``batch`` fixes its first dimension (for the fixed-batch TFLite signatures).
    """
    spec = model.condition.label_spec(name="label")
    if spec is None:
        return []
    return [spec if batch is None else tf.TensorSpec([batch, *spec.shape[1:]], spec.dtype, name=spec.name)]


NUM_SAMPLES_SPEC = tf.TensorSpec([], tf.int32, name="num_samples")
SAMPLE_SPECS = [NUM_SAMPLES_SPEC, tf.TensorSpec([], tf.float32, name="temperature"), tf.TensorSpec([], tf.int64, name="seed")]


def sampler_names(model):
    """``"prior"`` and the model's ex-post samplers (`keras_vae.VAE.fit_sampler`), each exported as a signature."""
    return ["prior", *model.samplers]


def sample_signature(sampler_name):
    """The signature that samples with ``sampler_name``: ``sample`` for the prior, ``sample_<name>`` otherwise."""
    return "sample" if sampler_name == "prior" else f"sample_{sampler_name}"


def serving_endpoints(model, with_encoder=False):
    """The TF Serving signatures of ``model``: ``[(name, fn, input_signature), ...]``, default first.

    A conditional model's functions take a trailing ``label`` argument (``*label`` below, empty otherwise).
    """
    condition = model.condition
    label_spec = label_specs(model)

    def labels_of(label):
        return _checked_labels(condition, label[0]) if label else None

    def decode(z, *label):
        return {"images": _served(model, model.decode(_checked_codes(z), labels=labels_of(label)))}

    def sampling_from(sampler):
        def sample(num_samples, temperature, seed, *label):
            checks = [
                tf.debugging.assert_greater_equal(num_samples, 1, message="num_samples must be >= 1"),
                tf.debugging.assert_less_equal(
                    num_samples, MAX_SAMPLES, message=f"num_samples must be <= {MAX_SAMPLES} (the maximum per request)"
                ),
                tf.debugging.assert_positive(temperature, message="temperature must be > 0"),
            ]
            with tf.control_dependencies(checks):
                temperature = tf.debugging.check_numerics(temperature, "temperature must be finite")
                z = sampler.draw(num_samples, temperature, CounterNoise(seed))
            labels = labels_of(label)
            labels = None if labels is None else _labels_for(labels, num_samples)
            return {"images": _served(model, model.decode(z, labels=labels)), "z": z}

        return sample

    endpoints = [
        ("serving_default", decode, [_code_spec(model), *label_spec]),
        *[(sample_signature(name), sampling_from(model.sampler(name)), [*SAMPLE_SPECS, *label_spec])
          for name in sampler_names(model)],
    ]
    if not with_encoder:
        return endpoints

    def encode(images, *label):
        posterior = model.encode(_checked_images(model, images), labels=labels_of(label))
        return {"loc": posterior.mean(), "scale": posterior.stddev()}

    def reconstruct(images, *label):
        return {"images": _served(model, model.reconstruct(_checked_images(model, images), labels=labels_of(label)))}

    def score(images, *label):
        def negative_elbo(example):
            x, labels = example[0][tf.newaxis], (example[1][tf.newaxis] if label else None)
            log_weights = model.log_importance_weights(x, SCORE_SAMPLES, seed=SCORE_SEED, labels=labels)
            return -tf.reduce_mean(log_weights[:, 0])

        examples = (_checked_images(model, images), *([labels_of(label)] if label else []))
        return {"score": tf.map_fn(negative_elbo, examples, fn_output_signature=tf.float32)}

    image_specs = [_image_spec(model), *label_spec]
    return endpoints + [("encode", encode, image_specs), ("reconstruct", reconstruct, image_specs), ("score", score, image_specs)]


def tflite_endpoints(model, fixed_batches=None):
    """The on-device signatures ``decode`` and ``sample`` (no input checks: TFLite has no Assert op), and
    ``decode`` once more for each ``{name: batch}`` of ``fixed_batches``, taking exactly ``batch`` codes.

    ``sample`` takes the SavedModel's inputs (``num_samples``, ``temperature``, ``seed``) and draws the same codes
    for the same seed (`CounterNoise`); temperature 0 gives the sampler's mean codes.

    A fixed batch gives every tensor a static shape: the converter folds the shape arithmetic (e.g.
    TRANSPOSE_CONV's output shape) into constants, so XNNPACK runs every op and the runtime never resizes.

    >>> [name for name, _, _ in tflite_endpoints(vae, {"decode_1": 1, "decode_64": 64})]
    ['decode', 'sample', 'decode_1', 'decode_64']
    """

    def decode(z, *label):
        return {"images": _served(model, model.decode(z, labels=label[0] if label else None))}

    def sampling_from(sampler):
        def sample(num_samples, temperature, seed, *label):
            z = sampler.draw(num_samples, temperature, CounterNoise(seed))
            labels = _broadcast_labels(label[0], num_samples) if label else None
            return {"images": _served(model, model.decode(z, labels=labels)), "z": z}

        return sample

    label_spec = label_specs(model)
    endpoints = [("decode", decode, [_code_spec(model), *label_spec]),
                 *[(sample_signature(name), sampling_from(model.sampler(name)), [*SAMPLE_SPECS, *label_spec])
                   for name in sampler_names(model)]]
    return endpoints + [(name, decode, [_code_spec(model, batch), *label_specs(model, batch)])
                        for name, batch in (fixed_batches or {}).items()]


def _broadcast_labels(label, num_samples):
    # TFLite has no Assert op: one label (or num_samples of them) is the caller's contract (see TFLiteModel).
    return tf.broadcast_to(label, tf.concat([[num_samples], tf.shape(label)[1:]], axis=0))
