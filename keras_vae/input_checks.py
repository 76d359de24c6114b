"""What a `VAE` is given, checked up front: its networks, images, codes, labels and the data of `fit`/`evaluate`.

A wrong shape, dtype or range is a ValueError that names what was expected, raised before Keras traces a
step, rather than an error from deep inside a TensorFlow graph. `InputChecks` is a mixin of `VAE`; the
functions below it need no model.

Example:

>>> checked_shape(tf.zeros([4, 28, 28, 1]), (28, 28, 1), "images").shape
TensorShape([4, 28, 28, 1])
>>> checked_shape(tf.zeros([4, 28, 28]), (28, 28, 1), "images")
Traceback (most recent call last):
ValueError: Expected images of shape (batch, 28, 28, 1), got shape (4, 28, 28).
>>> vae.fit(images * 255.0)        # a Bernoulli model
Traceback (most recent call last):
ValueError: Images must lie in [0.0, 1.0] for BernoulliLikelihood; they span [0, 255]. ...
"""

import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_vae import data_checks
from keras_vae.data_checks import shape_str  # noqa: F401  (importable from here too)


def checked_shape(x, item_shape, what):
    """Checks ``x`` is ``(batch, *item_shape)``: statically when the shape is known, else when run."""
    expected = (None, *item_shape)
    if x.shape.rank is not None:
        given = tuple(x.shape)
        if len(given) != len(expected) or any(g is not None and g != e for g, e in zip(given[1:], item_shape)):
            raise ValueError(f"Expected {what} of shape {shape_str(expected)}, got shape {shape_str(given)}.")
        if None not in given[1:]:
            return x
    # Keras relaxes shapes when it retraces; the check then runs with the data.
    return tf.ensure_shape(x, expected)


def as_tensor(x):
    return x if isinstance(x, (tf.Tensor, tf.Variable)) else tf.convert_to_tensor(x)


def integer_images_message(dtype, likelihood):
    return data_checks.integer_message(dtype, likelihood)


def check_data_range(images, likelihood):
    """Raises a ValueError when numpy ``images`` are not finite or outside the likelihood's data range."""
    if images.dtype.kind in "iu" and likelihood.data_range is not None and images.size and images.max() > 1:
        raise ValueError(integer_images_message(images.dtype.name, likelihood))
    if images.dtype.kind == "f" and images.size:
        if not np.all(np.isfinite(images)):
            # Not an error for fit: the step guard skips such batches; but say it plainly up front.
            warnings.warn(f"The images hold {int(np.sum(~np.isfinite(images)))} non-finite values (NaN/Inf): "
                          "the batches holding them will be skipped.", RuntimeWarning, stacklevel=3)
            images = images[np.isfinite(images)]
        if likelihood.data_range is not None and images.size:
            low, high = likelihood.data_range
            if images.min() < low or images.max() > high:
                raise ValueError(data_checks.range_message(likelihood, float(images.min()), float(images.max())))


def validation_count(x, fit_kwargs):
    """How many of the arrays ``x`` `fit` holds out for ``validation_split``."""
    split = float(fit_kwargs.get("validation_split") or 0.0)
    return int(int(x.shape[0]) * split)


class InputChecks:
    """Mixin of `VAE`: checks its networks when built, and its inputs on every call, `fit` and `evaluate`.

    Reads the model's ``encoder``, ``decoder``, ``condition``, ``likelihood``, ``image_shape``,
    ``latent_dim`` and ``network_shapes()``.
    """

    def _check_networks(self):
        k = self.condition.size
        for role, net in (("encoder", self.encoder), ("decoder", self.decoder)):
            inputs = getattr(net, "inputs", None) or []
            if not isinstance(net, keras.Model) or not net.built or len(inputs) != (2 if k else 1):
                wanted = "two inputs (data, condition)" if k else "one input"
                raise ValueError(f"The {role} must be a built keras.Model with {wanted} (give it keras.Input); "
                                 f"got {net!r}.")
        enc_in, dec_in = (tuple(net.inputs[0].shape) for net in (self.encoder, self.decoder))
        enc_out, dec_out = (tuple(net.outputs[0].shape) for net in (self.encoder, self.decoder))
        if k:
            for role, net in (("encoder", self.encoder), ("decoder", self.decoder)):
                cond_in = tuple(net.inputs[1].shape)
                if cond_in[1:] != (k,):
                    raise ValueError(f"The {role}'s condition input must be (batch, {k}) for "
                                     f"{self.condition.describe()}; it is {shape_str(cond_in)}.")
        want_enc, want_dec = self.network_shapes()
        if len(enc_in) != 4:
            raise ValueError(f"The encoder must take images (batch, H, W, C); its input shape is {shape_str(enc_in)}.")
        if len(enc_out) != 2 or (want_enc is not None and enc_out[1:] != want_enc):
            wanted = f"(batch, {want_enc[0]})" if want_enc else "features (batch, F)"
            raise ValueError(f"The encoder must output {wanted}; it outputs {shape_str(enc_out)}.")
        if dec_in[1:] != want_dec:
            raise ValueError(f"The decoder must take (batch, {want_dec[0]}) codes; it takes {shape_str(dec_in)}.")
        if dec_out[1:] != enc_in[1:]:
            raise ValueError(
                f"The decoder output {shape_str(dec_out)} must match the encoder input {shape_str(enc_in)}."
            )

    def _check_images(self, x):
        x = as_tensor(x)
        if not (x.dtype.is_floating or x.dtype.is_integer or x.dtype == tf.bool):
            raise ValueError(f"Expected numeric images, got dtype {x.dtype.name}.")
        return tf.cast(checked_shape(x, self.image_shape, "images"), tf.float32)

    def _check_codes(self, z):
        z = as_tensor(z)
        if not z.dtype.is_floating:
            raise ValueError(f"Expected floating-point latent codes, got dtype {z.dtype.name}.")
        return tf.cast(checked_shape(z, (self.latent_dim,), "latent codes"), tf.float32)

    def _condition_of(self, labels, batch_size):
        """The networks' condition input (float [batch, K]) for ``labels``, or None for an unconditional model."""
        return self.condition.encode(labels, batch_size) if self.condition else None

    @staticmethod
    def unpack(data):
        """``(images, labels, sample_weight)`` of a batch: images, a tuple, or ``{"images", "labels"}``."""
        if isinstance(data, (tuple, list)) and len(data) == 1 and isinstance(data[0], (tuple, list, dict)):
            data = data[0]  # predict((images, labels)) hands its x over as a 1-tuple
        if isinstance(data, dict):
            if "images" not in data:
                raise ValueError(f"A dict batch holds the images under 'images'; it has keys {sorted(data)}.")
            return data["images"], data.get("labels"), data.get("sample_weight")
        return keras.utils.unpack_x_y_sample_weight(data)

    def _batch(self, data):
        """``(checked images, labels or None, sample weights [batch] or None)`` of a training or test batch."""
        x, labels, sample_weight = self.unpack(data)
        if sample_weight is not None:
            sample_weight = tf.cast(tf.reshape(sample_weight, [-1]), tf.float32)
        labels = labels if self.condition else None  # an unconditional model's are placeholders for the weights
        x = data_checks.graph_checked(as_tensor(x), labels, self.likelihood, self.condition)
        return self._check_images(x), labels, sample_weight

    def _checked_fit_arguments(self, x, y, kwargs, entry="fit"):
        """Checks the ``x`` / ``y`` of `fit` / `evaluate` / `predict` (``kwargs``: the rest of their arguments)
        up front (`keras_vae.data_checks`); returns the ``(x, y)`` to hand to Keras."""
        x = data_checks.checked_input(self, x, y, entry)
        return x, self._placeholder_labels(x, y, kwargs)

    def _placeholder_labels(self, x, y, kwargs):
        """Keras drops ``sample_weight`` when there is no ``y``: an unconditional model gets unused labels, so
        the weights arrive."""
        if y is None and kwargs.get("sample_weight") is not None and not self.condition and hasattr(x, "shape"):
            return np.zeros([int(x.shape[0])], np.float32)
        return y

    def serving_signature(self):
        """The input signature of `export`: images ``[batch, H, W, C]`` float32 (and ``labels`` for a conditional
        model)."""
        signature = [tf.TensorSpec([None, *self.image_shape], tf.float32, name="images")]
        if self.condition:
            signature.append(self.condition.label_spec("labels"))
        return signature
