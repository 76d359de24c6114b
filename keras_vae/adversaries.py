"""Adversaries: a discriminator a model trains alongside itself, with its own optimizer, in one `train_step`.

An adversary adds terms to the model's loss (`generator_terms`) and has a loss of its own
(`discriminator_terms`) that its optimizer minimizes on the same batch, from what the model's step drew
(held out of the model's gradient).

- `FactorDiscriminator` (FactorVAE, Kim & Mnih 2018): tells codes z ~ q(z) from codes whose dimensions were
  permuted independently across the batch (samples of prod_j q(z_j)); its logit estimates the total
  correlation by the density-ratio trick, and the model's loss adds ``gamma * TC``. The permutation is
  over each replica's local batch under a tf.distribute strategy.
- `ImageDiscriminator` (VAE-GAN, Larsen et al. 2016): tells data from reconstructions and prior samples;
  the model's loss adds a reconstruction error in the discriminator's feature space (a learned similarity)
  and the non-saturating adversarial loss. A stabler variant than the paper's: spectral normalization on
  every discriminator layer, the pixel likelihood kept in the loss (so NLL and export stay meaningful), and
  one discriminator update per model update.

Example:

>>> vae = keras_vae.build_vae((64, 64, 1), 10, variant="factor_vae", gamma=35.0)
>>> vae.compile(optimizer="adam", adversary_optimizer=keras.optimizers.Adam(1e-4, beta_1=0.5, beta_2=0.9))
>>> vae.fit(images, batch_size=64)        # metrics add tc, discriminator_loss, discriminator_accuracy
"""

import keras
import tensorflow as tf

from keras_vae import names
from keras_vae._lookup import resolve


def _deserialize(obj):
    return keras.saving.deserialize_keras_object(obj) if isinstance(obj, dict) else obj


def _accuracy(real_logits, fake_logits):
    """Per-example accuracy of telling real (logit > 0) from fake (logit < 0)."""
    real = tf.cast(real_logits > 0, tf.float32)
    fake = tf.cast(fake_logits < 0, tf.float32)
    return 0.5 * (real + fake)


class Adversary(keras.layers.Layer):
    """Base class: a ``discriminator`` network, `generator_terms`, `discriminator_terms`, `default_optimizer`.

    ``metric_names`` are the per-example terms it adds to the model's metrics, from both sides.
    """

    name_key = None
    metric_names = ()

    def __init__(self, discriminator, **kwargs):
        super().__init__(**kwargs)
        self.discriminator = _deserialize(discriminator)
        if not isinstance(self.discriminator, keras.Model) or not self.discriminator.built:
            raise ValueError(f"{type(self).__name__} needs a built keras.Model discriminator, got {discriminator!r}.")

    def check(self, model):
        """Raises a ValueError when ``model`` cannot be trained against this adversary."""

    def generator_terms(self, model, x, terms, seed, training):
        """Adds the adversary's terms to the model's per-example ``terms`` (and to ``terms["loss"]``)."""
        raise NotImplementedError

    def discriminator_terms(self, model, x, terms, seed, training):
        """Per-example ``{"discriminator_loss", ...}`` from the batch and what the model's step drew."""
        raise NotImplementedError

    def default_optimizer(self):
        raise NotImplementedError

    def call(self, inputs):
        return self.discriminator(inputs)

    def get_config(self):
        return {**super().get_config(), "discriminator": keras.saving.serialize_keras_object(self.discriminator)}


def permute_dimensions(z, seed):
    """Each column of ``z`` ``[batch, d]`` permuted independently across the batch: samples of prod_j q(z_j)."""
    order = tf.argsort(tf.random.stateless_uniform(tf.shape(z), seed=seed), axis=0)
    return tf.transpose(tf.gather(tf.transpose(z), tf.transpose(order), batch_dims=1))


@keras.saving.register_keras_serializable(package="keras_vae")
class FactorDiscriminator(Adversary):
    """FactorVAE's total-correlation discriminator on codes (Kim & Mnih 2018).

    Args:
        discriminator: a built model, codes ``(batch, latent_dim)`` -> one logit ``(batch, 1)``, positive
            for codes of q(z) (see `factor_discriminator`).
        gamma: weight of the total correlation in the model's loss (Kim & Mnih use 6 to 40 on dSprites).
    """

    name_key = "factor"
    metric_names = ("tc", "discriminator_loss", "discriminator_accuracy")

    def __init__(self, discriminator, gamma=35.0, **kwargs):
        super().__init__(discriminator, **kwargs)
        self.gamma = float(gamma)
        if not self.gamma >= 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")

    @classmethod
    def from_options(cls, input_shape, latent_dim, discriminator_units=(512, 512, 512), **options):
        """The adversary `build_vae` declares for ``variant="factor_vae"``: a fresh discriminator on codes."""
        return cls(factor_discriminator(latent_dim, tuple(discriminator_units)), **options)

    def check(self, model):
        if tuple(self.discriminator.inputs[0].shape[1:]) != (model.latent_dim,):
            raise ValueError(f"The factor discriminator must take (batch, {model.latent_dim}) codes; it takes "
                             f"{tuple(self.discriminator.inputs[0].shape)}.")

    def _logit(self, z, training):
        return tf.squeeze(tf.cast(self.discriminator(z, training=training), tf.float32), -1)

    def generator_terms(self, model, x, terms, seed, training):
        tc = self._logit(terms["codes"], training=False)  # log D / (1 - D): the density-ratio estimate of TC
        return {**terms, "tc": tc, "loss": terms["loss"] + self.gamma * tc}

    def discriminator_terms(self, model, x, terms, seed, training):
        z = tf.stop_gradient(terms["codes"])
        real, fake = self._logit(z, training), self._logit(permute_dimensions(z, seed), training)
        loss = 0.5 * (tf.nn.softplus(-real) + tf.nn.softplus(fake))
        return {"discriminator_loss": loss, "discriminator_accuracy": _accuracy(real, fake)}

    def default_optimizer(self):
        return keras.optimizers.Adam(1e-4, beta_1=0.5, beta_2=0.9)  # the paper's

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma}


@keras.saving.register_keras_serializable(package="keras_vae")
class ImageDiscriminator(Adversary):
    """VAE-GAN's discriminator on images (Larsen et al. 2016), with a learned-similarity reconstruction.

    Args:
        discriminator: a built model, images -> ``[features (batch, F), logit (batch, 1)]`` (see
            `image_discriminator`); the features are the layer the reconstruction error is measured in.
        feature_weight: weight of ``0.5 * ||f(x) - f(x_rec)||^2`` in the model's loss.
        adversarial_weight: weight of the non-saturating loss of reconstructions and prior samples.
    """

    name_key = "image"
    metric_names = ("feature_reconstruction", "adversarial", "discriminator_loss", "discriminator_accuracy")

    def __init__(self, discriminator, feature_weight=1.0, adversarial_weight=1.0, **kwargs):
        super().__init__(discriminator, **kwargs)
        self.feature_weight, self.adversarial_weight = float(feature_weight), float(adversarial_weight)
        if not (self.feature_weight >= 0 and self.adversarial_weight >= 0):
            raise ValueError(f"feature_weight and adversarial_weight must be >= 0, got {feature_weight}, "
                             f"{adversarial_weight}")

    @classmethod
    def from_options(cls, input_shape, latent_dim, discriminator_filters=(32, 64, 128), **options):
        """The adversary `build_vae` declares for ``variant="vae_gan"``: a fresh discriminator on images."""
        return cls(image_discriminator(input_shape, tuple(discriminator_filters)), **options)

    def check(self, model):
        if tuple(self.discriminator.inputs[0].shape[1:]) != tuple(model.image_shape):
            raise ValueError(f"The image discriminator must take images {model.image_shape}; it takes "
                             f"{tuple(self.discriminator.inputs[0].shape[1:])}.")

    def _features_and_logit(self, images, training):
        features, logit = self.discriminator(images, training=training)
        return tf.cast(features, tf.float32), tf.squeeze(tf.cast(logit, tf.float32), -1)

    @staticmethod
    def _fakes(model, terms, seed):
        reconstructions = model.likelihood.mean(terms["decoder_output"])
        batch = tf.shape(reconstructions)[0]
        codes = model.prior.sample(batch, seed=seed)
        # Prior samples decoded with the batch's own condition: the discriminator sees data-like fakes.
        samples = model.likelihood.mean(model.decoder_output_of(model.codes_from_top(codes), terms.get("condition")))
        return reconstructions, samples

    def generator_terms(self, model, x, terms, seed, training):
        reconstructions, samples = self._fakes(model, terms, seed)
        real_features, _ = self._features_and_logit(x, training=False)
        rec_features, rec_logit = self._features_and_logit(reconstructions, training=False)
        _, sample_logit = self._features_and_logit(samples, training=False)
        feature = 0.5 * tf.reduce_sum(tf.square(tf.stop_gradient(real_features) - rec_features), axis=-1)
        adversarial = tf.nn.softplus(-rec_logit) + tf.nn.softplus(-sample_logit)
        loss = terms["loss"] + self.feature_weight * feature + self.adversarial_weight * adversarial
        return {**terms, "feature_reconstruction": feature, "adversarial": adversarial, "loss": loss,
                "fakes": tf.concat([reconstructions, samples], 0)}

    def discriminator_terms(self, model, x, terms, seed, training):
        fakes = tf.stop_gradient(terms["fakes"])
        _, real = self._features_and_logit(x, training)
        _, fake = self._features_and_logit(fakes, training)
        fake_rec, fake_sample = tf.split(fake, 2)
        loss = tf.nn.softplus(-real) + 0.5 * (tf.nn.softplus(fake_rec) + tf.nn.softplus(fake_sample))
        return {"discriminator_loss": loss, "discriminator_accuracy": _accuracy(real, 0.5 * (fake_rec + fake_sample))}

    def default_optimizer(self):
        return keras.optimizers.Adam(2e-4, beta_1=0.5)

    def get_config(self):
        return {**super().get_config(), "feature_weight": self.feature_weight,
                "adversarial_weight": self.adversarial_weight}


ADVERSARIES = names.registry("adversary", names.ADVERSARIES, (FactorDiscriminator, ImageDiscriminator))


def get_adversary(identifier):
    """An adversary from a config dict or an `Adversary` (None stays None)."""
    if identifier is None:
        return None
    return resolve(identifier, {}, "adversary", Adversary)


def factor_discriminator(latent_dim, hidden_units=(512, 512, 512), name="factor_discriminator"):
    """An MLP on codes with LeakyReLU (as in FactorVAE; the paper uses 6 layers of 1000): codes -> one logit."""
    layers = [keras.Input(shape=(int(latent_dim),))]
    for units in hidden_units:
        layers += [keras.layers.Dense(units), keras.layers.LeakyReLU(0.2)]
    layers.append(keras.layers.Dense(1, name="logit"))
    return keras.Sequential(layers, name=name)


def image_discriminator(image_shape, filters=(32, 64, 128), name="image_discriminator"):
    """A spectrally normalized conv net: images -> ``[features, logit]`` (features: the last conv layer)."""
    images = keras.Input(shape=tuple(int(d) for d in image_shape))
    h = images
    for f in filters:
        h = keras.layers.SpectralNormalization(keras.layers.Conv2D(f, 4, strides=2, padding="same"))(h)
        h = keras.layers.LeakyReLU(0.2)(h)
    features = keras.layers.Flatten(name="features")(h)
    logit = keras.layers.SpectralNormalization(keras.layers.Dense(1), name="logit")(features)
    return keras.Model(images, [features, logit], name=name)
