"""The functions a trained VAE exports: serving signatures for TF Serving and on-device ones for TFLite.

Each endpoint is ``(name, fn, input_signature)`` for `keras.export.ExportArchive.add_endpoint`; every
``fn`` returns a dict so output names are stable. Only stock TensorFlow ops are used (TF Serving runs
no ``py_function`` and no custom ops), and bad inputs fail inside the graph with InvalidArgument,
which TF Serving and `keras-vae serve` both answer with HTTP 400.

Serving signatures (`serving_endpoints`):

- ``serving_default``: ``z`` float32 ``[batch, latent_dim]`` -> ``images`` float32 ``[batch, H, W, C]``
  (the likelihood mean, in [0, 1] for Bernoulli pixels).
- ``sample``: ``num_samples`` int32 scalar in ``[1, MAX_SAMPLES]``, ``temperature`` float32 scalar
  (> 0), ``seed`` int64 scalar -> ``images``, ``z``. The prior draw is stateless: the same seed gives
  the same images. The codes are decoded with ``model.decode`` (for a ladder VAE: the top layer, with
  the lower layers at their conditional prior means rather than drawn).
- with ``with_encoder``: ``encode`` (``images`` -> ``loc``, ``scale``), ``reconstruct`` (``images``
  -> ``images``, decoded posterior means) and ``score`` (``images`` -> ``score``, see `SCORE_SAMPLES`).
- conditional models (``model.conditional``, class labels) take an extra ``label`` int32 ``[batch]``
  input on every signature (for ``sample``: one label for all samples, or one per sample).

TFLite signatures (`tflite_endpoints`): ``decode`` (``z`` -> ``images``) and ``sample``
(``num_samples`` -> ``images``, ``z``), drawn with the builtin RANDOM_STANDARD_NORMAL /
RANDOM_UNIFORM ops (stateless random ops need Flex, which the pip LiteRT runtime cannot run).

Example:

>>> archive = keras.export.ExportArchive()
>>> archive.track(vae)
>>> for name, fn, spec in serving_endpoints(vae, with_encoder=True):
...     archive.add_endpoint(name, fn, input_signature=spec)
>>> archive.write_out("saved_models/vae/1")
"""

import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.anomaly import DEFAULT_NUM_SAMPLES

tfd = tfp.distributions

# Upper bound of `num_samples` in the `sample` signature: one request stays a bounded amount of work.
MAX_SAMPLES = 1024

# `score` is the estimator of keras_vae.anomaly_scores(method="elbo") (-mean of log importance
# weights, as many posterior draws), traced into the graph: one image at a time from a fixed stateless
# seed, so it is deterministic and independent of the other images in the request, and thresholds
# from keras_vae.score_threshold apply to it.
SCORE_SAMPLES = DEFAULT_NUM_SAMPLES["elbo"]
SCORE_SEED = (1234, 5678)

SIGNATURE_DESCRIPTIONS = {
    "serving_default": "decode: z [batch, latent_dim] -> images [batch, H, W, C] (likelihood mean)",
    "sample": f"num_samples (int32 scalar, 1..{MAX_SAMPLES}), temperature (float32 > 0), seed (int64) -> images, z",
    "encode": "images -> loc, scale of the posterior q(z|x)",
    "reconstruct": "images -> images decoded from the posterior mean",
    "score": f"images -> score: negative ELBO in nats ({SCORE_SAMPLES} posterior draws, fixed seed)",
}


_TF_NOISE = ("Graph execution error", "Detected at node", "<stack traces unavailable>")


def error_message(err):
    """The message of a ``tf.errors.OpError`` raised by a signature, without TF's node/op decorations."""
    text = err.message.split("\n\t [[")[0].split(" [Op:")[0]
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith(_TF_NOISE)]
    return " ".join(lines).strip() or type(err).__name__


def _checked_codes(z):
    return tf.debugging.check_numerics(z, "z must be finite (it contains NaN or Inf)")


def _checked_images(model, images):
    images = tf.debugging.check_numerics(images, "images must be finite (they contain NaN or Inf)")
    if getattr(model.likelihood, "name_key", None) == "bernoulli":
        # Pixel probabilities: 0..255 pixels would score as garbage instead of failing.
        checks = [
            tf.debugging.assert_greater_equal(images, 0.0, message="images must be in [0, 1]"),
            tf.debugging.assert_less_equal(images, 1.0, message="images must be in [0, 1] (scale 0..255 by 1/255)"),
        ]
        with tf.control_dependencies(checks):
            images = tf.identity(images)
    return images


def _checked_labels(model, label):
    checks = [
        tf.debugging.assert_non_negative(label, message="label must be >= 0"),
        tf.debugging.assert_less(
            label, tf.constant(model.num_classes, label.dtype), message=f"label must be < {model.num_classes}"
        ),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(label)


def _labels_for(label, num_samples):
    """One label for every sample, or exactly one label per sample."""
    count = tf.shape(label)[0]
    check = tf.debugging.assert_equal(
        tf.logical_or(tf.equal(count, 1), tf.equal(count, num_samples)),
        True,
        message="label must hold 1 label or num_samples labels",
    )
    with tf.control_dependencies([check]):
        return tf.broadcast_to(label, [num_samples])


def _stateless_seed(seed):
    # int64 scalar -> the [2] int32 seed stateless ops take, without losing any bits.
    return tf.bitcast(seed, tf.int32)


def is_conditional(model):
    """Whether ``model`` takes class labels; vector-label conditional models are not exportable."""
    if not getattr(model, "conditional", False):
        return False
    if not isinstance(getattr(model, "num_classes", None), int):
        raise ValueError(
            f"Exporting a conditional {type(model).__name__} needs class-index labels (num_classes); "
            "models conditioned on label vectors (label_dim) are not supported by the export."
        )
    return True


def _image_spec(model):
    return tf.TensorSpec([None, *model.image_shape], tf.float32, name="images")


def _code_spec(model):
    return tf.TensorSpec([None, model.latent_dim], tf.float32, name="z")


LABEL_SPEC = tf.TensorSpec([None], tf.int32, name="label")
NUM_SAMPLES_SPEC = tf.TensorSpec([], tf.int32, name="num_samples")
SAMPLE_SPECS = [NUM_SAMPLES_SPEC, tf.TensorSpec([], tf.float32, name="temperature"), tf.TensorSpec([], tf.int64, name="seed")]


def serving_endpoints(model, with_encoder=False):
    """The TF Serving signatures of ``model``: ``[(name, fn, input_signature), ...]``, default first.

    A conditional model's functions take a trailing ``label`` argument (``*label`` below).
    """
    conditional = is_conditional(model)
    label_spec = [LABEL_SPEC] if conditional else []

    def labels_of(label):
        return [_checked_labels(model, label[0])] if conditional else []

    def decode(z, *label):
        return {"images": model.decode(_checked_codes(z), *labels_of(label))}

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
            z = model.prior.sample(num_samples, temperature=temperature, seed=_stateless_seed(seed))
        labels = [_labels_for(labels, num_samples) for labels in labels_of(label)]
        return {"images": model.decode(z, *labels), "z": z}

    endpoints = [
        ("serving_default", decode, [_code_spec(model), *label_spec]),
        ("sample", sample, [*SAMPLE_SPECS, *label_spec]),
    ]
    if not with_encoder:
        return endpoints

    def encode(images, *label):
        posterior = model.encode(_checked_images(model, images), *labels_of(label))
        return {"loc": posterior.mean(), "scale": posterior.stddev()}

    def reconstruct(images, *label):
        return {"images": model.reconstruct(_checked_images(model, images), *labels_of(label))}

    def score(images, *label):
        images = _checked_images(model, images)

        def negative_elbo(example):
            x = example[0][tf.newaxis]
            inputs = (x, example[1][tf.newaxis]) if conditional else x
            log_weights = model.log_importance_weights(inputs, SCORE_SAMPLES, seed=SCORE_SEED)
            return -tf.reduce_mean(log_weights[:, 0])

        examples = (images, *labels_of(label))
        return {"score": tf.map_fn(negative_elbo, examples, fn_output_signature=tf.float32)}

    image_specs = [_image_spec(model), *label_spec]
    return endpoints + [("encode", encode, image_specs), ("reconstruct", reconstruct, image_specs), ("score", score, image_specs)]


def on_device_prior_sample(prior, num_samples):
    """Codes from ``prior`` using only the TFLite builtin random ops (Gaussian or Gaussian-mixture priors).

    Temperature is not applied here: on device, scale ``z`` yourself and call ``decode``.
    """
    dist = prior.distribution()
    if isinstance(dist, tfd.MultivariateNormalDiag):
        return dist.mean() + dist.stddev() * tf.random.normal(tf.stack([num_samples, dist.event_shape[-1]]))
    if isinstance(dist, tfd.MixtureSameFamily) and isinstance(dist.components_distribution, tfd.MultivariateNormalDiag):
        components = dist.components_distribution
        logits = dist.mixture_distribution.logits_parameter()
        # Gumbel-max picks components with RANDOM_UNIFORM + ARG_MAX (categorical sampling needs Flex).
        uniform = tf.random.uniform(tf.stack([num_samples, tf.shape(logits)[0]]), minval=1e-20, maxval=1.0)
        choice = tf.argmax(logits - tf.math.log(-tf.math.log(uniform)), axis=-1)
        locs, scales = tf.gather(components.mean(), choice), tf.gather(components.stddev(), choice)
        return locs + scales * tf.random.normal(tf.shape(locs))
    raise ValueError(
        f"On-device sampling supports Gaussian and Gaussian-mixture priors; {type(prior).__name__} gives a "
        f"{type(dist).__name__}. Export without --tflite, or sample z yourself and use the decode signature."
    )


def tflite_endpoints(model):
    """The on-device signatures ``decode`` and ``sample`` (no input checks: TFLite has no Assert op)."""
    label_spec = [LABEL_SPEC] if is_conditional(model) else []

    def decode(z, *label):
        return {"images": model.decode(z, *label)}

    def sample(num_samples, *label):
        z = on_device_prior_sample(model.prior, num_samples)
        labels = [tf.broadcast_to(labels, [num_samples]) for labels in label]
        return {"images": model.decode(z, *labels), "z": z}

    return [("decode", decode, [_code_spec(model), *label_spec]), ("sample", sample, [NUM_SAMPLES_SPEC, *label_spec])]
