"""Conditional VAE: encoder q(z|x, y) and decoder p(x|z, y) both see a label y.

Labels are class indices (``num_classes``: int ``[batch]``, turned into one-hot vectors) or
float vectors (``label_dim``: ``[batch, label_dim]``). Data for `fit` / `evaluate` are
``(images, labels)`` pairs: ``fit(images, labels)`` or a dataset of ``(image, label)``.

Example:

>>> cvae = keras_vae.build_vae((28, 28, 1), 8, architecture="mlp", variant="cvae", num_classes=10)
>>> cvae.compile(optimizer="adam")
>>> cvae.fit(images, labels, batch_size=64, epochs=5)
>>> sevens = cvae.sample(16, labels=[7] * 16, seed=0)
>>> cvae.decode(z, labels)                                # z: [batch, 8], labels: int [batch]
"""

import keras
import numpy as np
import tensorflow as tf

from keras_vae.model import VAE, _checked_shape, _shape_str


def conditional_encoder(inner, image_shape, condition_dim, name="encoder"):
    """``[images, condition] -> inner(images with the condition tiled as extra channels)``.

    ``inner`` must take ``(H, W, C + condition_dim)`` images (e.g. ``conv_encoder`` built for that shape).
    """
    height, width, _ = image_shape
    images = keras.Input(shape=tuple(image_shape), name="images")
    condition = keras.Input(shape=(condition_dim,), name="condition")
    tiled = keras.layers.Reshape((height, width, condition_dim))(keras.layers.RepeatVector(height * width)(condition))
    outputs = inner(keras.layers.Concatenate(axis=-1)([images, tiled]))
    return keras.Model([images, condition], outputs, name=name)


def conditional_decoder(inner, latent_dim, condition_dim, name="decoder"):
    """``[z, condition] -> inner(concat(z, condition))``; ``inner`` takes ``latent_dim + condition_dim`` codes."""
    z = keras.Input(shape=(latent_dim,), name="z")
    condition = keras.Input(shape=(condition_dim,), name="condition")
    outputs = inner(keras.layers.Concatenate(axis=-1)([z, condition]))
    return keras.Model([z, condition], outputs, name=name)


@keras.saving.register_keras_serializable(package="keras_vae")
class ConditionalVAE(VAE):
    """A VAE whose encoder and decoder are conditioned on a label.

    Args:
        encoder: a built model ``[images (batch, H, W, C), condition (batch, K)] -> (batch, 2 * latent_dim)``
            (see `conditional_encoder`).
        decoder: a built model ``[z (batch, latent_dim), condition (batch, K)] -> (batch, H, W, C)``
            (see `conditional_decoder`).
        latent_dim: size of the latent code.
        num_classes: labels are class indices in ``[0, num_classes)``, one-hot encoded (K = num_classes).
        label_dim: labels are vectors of this size (K = label_dim; e.g. sprite factor indices), used as
            floats. Give exactly one of the two.
        **kwargs: as for `VAE` (likelihood, prior, beta, ...).

    ``encode(x, labels)``, ``decode(z, labels)``, ``reconstruct(x, labels)`` and
    ``sample(n, labels=...)`` take the labels explicitly; `compute_terms` and
    `log_importance_weights` take ``(images, labels)`` pairs where the plain VAE takes images, so
    ``keras_vae.iwae_bound(cvae, (images, labels))`` works unchanged.
    """

    conditional = True

    def __init__(self, encoder, decoder, latent_dim, num_classes=None, label_dim=None, **kwargs):
        if (num_classes is None) == (label_dim is None):
            raise ValueError(
                "ConditionalVAE needs exactly one of num_classes (class-index labels) or label_dim (vector labels); "
                f"got num_classes={num_classes!r}, label_dim={label_dim!r}."
            )
        size = num_classes if num_classes is not None else label_dim
        if int(size) < 1:
            raise ValueError(f"num_classes / label_dim must be >= 1, got {size}")
        self.num_classes = None if num_classes is None else int(num_classes)
        self.label_dim = None if label_dim is None else int(label_dim)
        self.condition_dim = int(size)
        # The base builds every layer, so Keras never traces `call` without labels under a strategy.
        super().__init__(encoder, decoder, latent_dim, **kwargs)

    def _check_networks(self):
        for role, net in (("encoder", self.encoder), ("decoder", self.decoder)):
            if not isinstance(net, keras.Model) or not net.built or len(getattr(net, "inputs", []) or []) != 2:
                raise ValueError(
                    f"The conditional {role} must be a built keras.Model with two inputs "
                    f"(see keras_vae.variants.conditional_{role}); got {net!r}."
                )
        image_in, enc_cond = (tuple(t.shape) for t in self.encoder.inputs)
        z_in, dec_cond = (tuple(t.shape) for t in self.decoder.inputs)
        k = self.condition_dim
        if len(image_in) != 4 or enc_cond[1:] != (k,):
            raise ValueError(
                f"The conditional encoder must take [images (batch, H, W, C), condition (batch, {k})]; "
                f"it takes [{_shape_str(image_in)}, {_shape_str(enc_cond)}]."
            )
        if tuple(self.encoder.output_shape)[1:] != (2 * self.latent_dim,):
            raise ValueError(
                f"The encoder must output (batch, {2 * self.latent_dim}) = 2 * latent_dim posterior parameters; "
                f"it outputs {_shape_str(self.encoder.output_shape)}."
            )
        if z_in[1:] != (self.latent_dim,) or dec_cond[1:] != (k,):
            raise ValueError(
                f"The conditional decoder must take [z (batch, {self.latent_dim}), condition (batch, {k})]; "
                f"it takes [{_shape_str(z_in)}, {_shape_str(dec_cond)}]."
            )
        if tuple(self.decoder.output_shape)[1:] != image_in[1:]:
            raise ValueError(
                f"The decoder output {_shape_str(self.decoder.output_shape)} must match the encoder's image input "
                f"{_shape_str(image_in)}."
            )

    # ----------------------------------------------------------------- labels
    def condition(self, labels):
        """The decoder/encoder condition for ``labels``: one-hot ``[batch, num_classes]`` or the vectors."""
        labels = tf.convert_to_tensor(labels) if not isinstance(labels, (tf.Tensor, tf.Variable)) else labels
        if self.num_classes is None:
            if not (labels.dtype.is_floating or labels.dtype.is_integer):
                raise ValueError(f"Expected numeric label vectors (batch, {self.label_dim}), got {labels.dtype.name}.")
            return tf.cast(_checked_shape(labels, (self.label_dim,), "label vectors"), tf.float32)
        if not labels.dtype.is_integer:
            raise ValueError(f"Expected integer class indices (batch,), got dtype {labels.dtype.name}.")
        labels = _checked_shape(labels, (), "class labels")
        if tf.executing_eagerly():
            # one_hot maps an out-of-range index to all zeros: a silent wrong answer. Graphs check in compute_terms.
            values = labels.numpy()
            if values.size and (values.min() < 0 or values.max() >= self.num_classes):
                raise ValueError(f"Class labels must be in [0, {self.num_classes}); got values {values.min()}..{values.max()}.")
        return tf.one_hot(tf.cast(labels, tf.int32), self.num_classes)

    @staticmethod
    def labels_from(data):
        """The labels in a batch from `fit`: ``(x, y)``, ``(x, y, sample_weight)`` or a dict with key ``label``."""
        if isinstance(data, (tuple, list)) and len(data) >= 2:
            return data[1]
        if isinstance(data, dict) and "label" in data:
            return data["label"]
        raise ValueError(
            "A conditional VAE needs (images, labels) batches: call fit(images, labels) or pass a dataset of "
            "(image, label) pairs."
        )

    def _split(self, inputs):
        if not (isinstance(inputs, (tuple, list)) and len(inputs) == 2):
            raise ValueError("A conditional VAE takes (images, labels) pairs here.")
        return inputs

    # ----------------------------------------------------------------- distributions
    def encode(self, x, labels=None, training=False):
        """The posterior q(z|x, y): a `MultivariateNormalDiag` with batch shape ``[batch]``."""
        if labels is None:
            raise ValueError("ConditionalVAE.encode needs labels: encode(images, labels).")
        return self.posterior_from(self.posterior_parameters((x, labels), training=training))

    def decoder_output(self, z, labels=None, training=False):
        if labels is None:
            raise ValueError("ConditionalVAE.decode needs labels: decode(z, labels).")
        return self.decoder([self._check_codes(z), self.condition(labels)], training=training)

    def decode(self, z, labels=None):
        """Likelihood mean for codes ``z`` ``[batch, latent_dim]`` and labels (int ``[batch]`` or vectors)."""
        return self.likelihood.mean(self.decoder_output(z, labels))

    def reconstruct(self, x, labels=None):
        return self.decode(self.encode(x, labels).mean(), labels)

    def sample(self, num_samples, temperature=1.0, seed=None, labels=None):
        """Decoded prior samples for ``labels``: ``num_samples`` of them, or one label used for all."""
        if labels is None:
            raise ValueError("ConditionalVAE.sample needs labels=...: one label, or one per sample.")
        labels = np.asarray(labels)
        if labels.ndim == (0 if self.num_classes is not None else 1):
            labels = np.broadcast_to(labels, (int(num_samples), *labels.shape))
        if labels.shape[0] != int(num_samples):
            raise ValueError(f"Got {labels.shape[0]} labels for {num_samples} samples.")
        z = self.sample_prior(num_samples, temperature=temperature, seed=seed)
        return self.decode(z, labels)

    def _checked_condition(self, labels):
        if self.num_classes is not None and not tf.executing_eagerly():
            labels = tf.convert_to_tensor(labels)
            tf.debugging.assert_less(labels, tf.cast(self.num_classes, labels.dtype), "class label >= num_classes")
            tf.debugging.assert_non_negative(labels, "negative class label")
        return self.condition(labels)

    def compute_terms(self, inputs, training=False):
        """Per-example terms for ``inputs = (images, labels)``."""
        x, labels = self._split(inputs)
        x = self._check_images(x)
        condition = self._checked_condition(labels)
        posterior = self.posterior.distribution(self.encoder([x, condition], training=training))
        z = self.sample_posterior(posterior)
        reconstruction = -self.likelihood.log_prob(x, self.decoder([z, condition], training=training))
        kl = self.kl_divergence(posterior, z)
        loss = reconstruction + self.current_beta() * self._kl_charged(posterior, kl)
        return {"loss": loss, "reconstruction": reconstruction, "kl": kl, "elbo": -(reconstruction + kl)}

    def posterior_parameters(self, inputs, training=False):
        """``[(loc, scale)]`` of q(z|x, y) for ``inputs = (images, labels)``."""
        x, labels = self._split(inputs)
        encoder_output = self.encoder([self._check_images(x), self.condition(labels)], training=training)
        return [self.posterior.parameters_from(encoder_output)]

    def log_importance_weights(self, inputs, num_samples, seed=None, training=False, parameters=None):
        """``[num_samples, batch]`` log weights for ``inputs = (images, labels)``; ``parameters`` as for `VAE`."""
        x, labels = self._split(inputs)
        x = self._check_images(x)
        condition = self.condition(labels)
        if parameters is None:
            parameters = self.posterior_parameters(inputs, training=training)
        posterior = self.posterior_from(parameters)
        seed = self.noise_seed() if seed is None else seed
        z = posterior.sample(num_samples, seed=seed)  # [k, batch, d]
        batch = tf.shape(z)[1]
        tiled = tf.reshape(tf.tile(condition[tf.newaxis], [num_samples, 1, 1]), [-1, self.condition_dim])
        logits = self.decoder([tf.reshape(z, [-1, self.latent_dim]), tiled], training=training)
        logits = tf.reshape(logits, tf.concat([[num_samples, batch], tf.shape(logits)[1:]], 0))
        log_px_z = self.likelihood.log_prob(x[tf.newaxis], logits)
        return log_px_z + self.prior.log_prob(z) - posterior.log_prob(z)

    # ----------------------------------------------------------------- Keras plumbing
    def _check_data(self, x):
        super()._check_data(x)
        if isinstance(x, tf.data.Dataset):
            self.labels_from(x.element_spec)  # a dataset of bare images fails here, before tracing

    def train_step(self, data):
        # The base step hands images_from(data) == data[0] to compute_terms: here, the (images, labels) pair.
        return super().train_step(((self.images_from(data), self.labels_from(data)),))

    def test_step(self, data):
        return super().test_step(((self.images_from(data), self.labels_from(data)),))

    def call(self, inputs, training=False):
        """``inputs = (images, labels)``: posterior parameters and the decoder output at the posterior mean."""
        x, labels = self._split(inputs)
        condition = self.condition(labels)
        loc, scale = self.posterior.parameters_from(self.encoder([self._check_images(x), condition], training=training))
        return {"loc": loc, "scale": scale, "decoder_output": self.decoder([loc, condition], training=training)}

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "label_dim": self.label_dim}
