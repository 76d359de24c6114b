"""Ex-post density samplers: a density fitted to the codes of the training set, sampled instead of the prior.

A VAE's aggregate posterior q(z) rarely fills its prior: prior samples land in holes the decoder never saw,
which is much of why VAE samples look blurred. Fitting a density to the training codes after training and
sampling from it gives sharper samples at no training cost:

- `GaussianMixtureSampler` (``"gmm"``): a mixture of diagonal Gaussians fitted by EM (Ghosh et al. 2020).
- `TwoStageSampler` (``"two_stage"``): a second, small VAE on the codes whose decoder maps N(0, I) to q(z)
  (Dai & Wipf 2019).

Samplers are `keras_vae.Prior` layers (they draw with `Prior.draw`, so export and on-device sampling treat
them as priors) that the model keeps by name and saves with itself.

Example:

>>> vae.fit_sampler(train_images, kind="gmm", num_components=20)
>>> vae.sample(16, sampler="gmm", seed=0)
>>> vae.save("vae.keras")      # the sampler is saved with the model
"""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_vae import names
from keras_vae._lookup import resolve
from keras_vae.priors import GaussianMixturePrior, Prior


class Sampler(Prior):
    """Base class: a `Prior` fitted after training, with `fit(codes)` and the ``latent_dim`` it was fitted for.

    Args:
        dataset: the name of the dataset whose codes it was fitted to (recorded, checked by `VAE.add_sampler`).
    """

    def __init__(self, dataset=None, **kwargs):
        super().__init__(**kwargs)
        self.dataset = dataset

    def get_config(self):
        return {**super().get_config(), "dataset": self.dataset}

    def fit(self, codes, seed=0, verbose=False):
        raise NotImplementedError

    def freeze(self):
        """Makes every weight non-trainable: the model that keeps a fitted sampler never trains it."""
        self.trainable = False


def _checked_codes(codes):
    codes = np.asarray(codes, np.float64)
    if codes.ndim != 2 or len(codes) < 2:
        raise ValueError(f"A sampler is fitted to codes of shape (n >= 2, latent_dim), got {codes.shape}.")
    if not np.all(np.isfinite(codes)):
        raise ValueError("The codes to fit a sampler to contain NaN or Inf.")
    return codes


@keras.saving.register_keras_serializable(package="keras_vae")
class GaussianMixtureSampler(Sampler, GaussianMixturePrior):
    """A mixture of ``num_components`` diagonal Gaussians fitted to codes by EM.

    Args:
        num_components: mixture components (Ghosh et al. use 10 for MNIST).
        max_iterations: EM iterations at most; it stops earlier when the mean log-likelihood gains less
            than ``tolerance`` nats.
        min_scale: floor on each component's standard deviation (keeps EM away from collapsed components).
    """

    name_key = "gmm"

    def __init__(self, num_components=10, max_iterations=200, tolerance=1e-4, min_scale=1e-3, **kwargs):
        super().__init__(**kwargs)
        if int(num_components) < 1 or int(max_iterations) < 1:
            raise ValueError(f"num_components and max_iterations must be >= 1, got {num_components}, {max_iterations}")
        if not (float(tolerance) >= 0 and float(min_scale) > 0):
            raise ValueError(f"tolerance must be >= 0 and min_scale > 0, got {tolerance}, {min_scale}")
        self.num_components = int(num_components)
        self.max_iterations = int(max_iterations)
        self.tolerance = float(tolerance)
        self.min_scale = float(min_scale)

    def build(self, input_shape):
        super().build(input_shape)
        k, d = self.num_components, self.latent_dim
        self.logits = self.add_weight(name="logits", shape=(k,), initializer="zeros", trainable=False)
        self.locs = self.add_weight(name="locs", shape=(k, d), initializer="zeros", trainable=False)
        self.scales = self.add_weight(name="scales", shape=(k, d), initializer="ones", trainable=False)

    def mixture_parameters(self):
        return tf.cast(self.logits, tf.float32), tf.cast(self.locs, tf.float32), tf.cast(self.scales, tf.float32)

    def fit(self, codes, seed=0, verbose=False):
        """Fits the mixture to ``codes`` ``[n, latent_dim]``; returns the mean log-likelihood per code (nats)."""
        codes = _checked_codes(codes)
        rng = np.random.default_rng(seed)
        means = _kmeans_plus_plus(codes, self.num_components, rng)
        variances = np.tile(codes.var(axis=0) + self.min_scale**2, (self.num_components, 1))
        weights = np.full(self.num_components, 1.0 / self.num_components)
        previous = -np.inf
        for iteration in range(self.max_iterations):
            log_joint = _log_gaussians(codes, means, variances) + np.log(weights)  # [n, K]
            log_norm = np.logaddexp.reduce(log_joint, axis=1, keepdims=True)
            mean_log_likelihood = float(log_norm.mean())
            resp = np.exp(log_joint - log_norm)
            counts = resp.sum(axis=0) + 1e-10
            weights = counts / counts.sum()
            means = (resp.T @ codes) / counts[:, None]
            variances = np.maximum((resp.T @ codes**2) / counts[:, None] - means**2, self.min_scale**2)
            if verbose:
                print(f"EM {iteration + 1}: mean log-likelihood {mean_log_likelihood:.4f}")
            if mean_log_likelihood - previous < self.tolerance:
                break
            previous = mean_log_likelihood
        self.logits.assign(np.log(np.maximum(weights, 1e-12)).astype(np.float32))
        self.locs.assign(means.astype(np.float32))
        self.scales.assign(np.sqrt(variances).astype(np.float32))
        return mean_log_likelihood

    def get_config(self):
        return {**super().get_config(), "num_components": self.num_components, "max_iterations": self.max_iterations,
                "tolerance": self.tolerance, "min_scale": self.min_scale}


def _log_gaussians(x, means, variances):
    """``log N(x_i; mean_k, diag(var_k))`` for every pair: ``[n, K]``."""
    precision = 1.0 / variances
    squared = (x**2) @ precision.T - 2.0 * x @ (means * precision).T + np.sum(means**2 * precision, axis=1)
    return -0.5 * (squared + np.sum(np.log(variances), axis=1) + x.shape[1] * math.log(2 * math.pi))


def _kmeans_plus_plus(x, k, rng):
    """k-means++ seeding: spread initial means, so EM does not start with components on top of each other."""
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        distance = np.min([np.sum((x - c) ** 2, axis=1) for c in centres], axis=0)
        total = distance.sum()
        centres.append(x[rng.choice(len(x), p=distance / total)] if total > 0 else x[rng.integers(len(x))])
    return np.array(centres)


@keras.saving.register_keras_serializable(package="keras_vae")
class TwoStageSampler(Sampler):
    """The second stage of Dai & Wipf's two-stage VAE: a small VAE on the codes, sampled through its decoder.

    Codes u ~ N(0, I) are decoded by an MLP to the mean of z; the Gaussian decoder's scale is learned
    (the paper's gamma), which lets the second stage match q(z) closely.

    Args:
        hidden_units: widths of the second stage's encoder and decoder MLPs.
        epochs, batch_size, learning_rate: its training.
    """

    name_key = "two_stage"

    def __init__(self, hidden_units=(256, 256), epochs=100, batch_size=256, learning_rate=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        if not self.hidden_units or min(self.hidden_units) < 1 or int(epochs) < 1 or int(batch_size) < 1:
            raise ValueError("hidden_units, epochs and batch_size must be positive.")
        self.epochs, self.batch_size, self.learning_rate = int(epochs), int(batch_size), float(learning_rate)
        # Created here, not in build, so Keras tracks them as sublayers (trainable flags, weights).
        self.encoder_layers = self._mlp("stage2_encoder")
        self.decoder_layers = self._mlp("stage2_decoder")

    def _mlp(self, name):
        return [keras.layers.Dense(u, activation="relu", name=f"{name}_{i}") for i, u in enumerate(self.hidden_units)]

    def build(self, input_shape):
        super().build(input_shape)
        d = self.latent_dim
        self.encoder_layers.append(keras.layers.Dense(2 * d, name="stage2_encoder_out"))
        self.decoder_layers.append(keras.layers.Dense(d, name="stage2_decoder_out"))
        for stack in (self.encoder_layers, self.decoder_layers):
            width = d
            for layer in stack:
                layer.build((None, width))
                width = layer.units
        self.log_gamma = self.add_weight(name="log_gamma", shape=(), initializer="zeros")

    def freeze(self):
        super().freeze()
        for layer in self.encoder_layers + self.decoder_layers:  # not reached through the setter after loading
            layer.trainable = False

    @staticmethod
    def _apply(stack, x):
        for layer in stack:
            x = layer(x)
        return x

    def draw(self, num_samples, temperature, noise):
        u = temperature * noise.normal(tf.stack([num_samples, self.latent_dim]))
        return self._apply(self.decoder_layers, u)

    def _loss(self, z, seed):
        loc, raw = tf.split(self._apply(self.encoder_layers, z), 2, axis=-1)
        scale = tf.nn.softplus(raw) + 1e-4
        u = loc + scale * tf.random.stateless_normal(tf.shape(loc), seed=seed)
        mean = self._apply(self.decoder_layers, u)
        gamma2 = tf.exp(2.0 * self.log_gamma)
        nll = tf.reduce_sum(0.5 * tf.square(z - mean) / gamma2 + self.log_gamma + 0.5 * math.log(2 * math.pi), -1)
        kl = tf.reduce_sum(0.5 * (tf.square(loc) + tf.square(scale) - 1.0) - tf.math.log(scale), -1)
        return tf.reduce_mean(nll + kl)

    def fit(self, codes, seed=0, verbose=False):
        """Trains the second stage on ``codes``; returns its final negative ELBO per code (nats)."""
        codes = _checked_codes(codes).astype(np.float32)
        optimizer = keras.optimizers.Adam(self.learning_rate)
        variables = self.trainable_variables
        if not variables:
            raise ValueError("This sampler is frozen (kept by a model): fit a new one with model.fit_sampler.")
        data = tf.data.Dataset.from_tensor_slices(codes).shuffle(len(codes), seed=seed).batch(self.batch_size)

        @tf.function
        def step(batch, step_seed):
            with tf.GradientTape() as tape:
                loss = self._loss(batch, step_seed)
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        loss = 0.0
        for epoch in range(self.epochs):
            losses = [float(step(batch, tf.constant([seed, epoch * 100_003 + i], tf.int32)))
                      for i, batch in enumerate(data)]
            loss = float(np.mean(losses))
            if verbose:
                print(f"stage 2 epoch {epoch + 1}: loss {loss:.4f}")
        return -loss

    def get_config(self):
        return {**super().get_config(), "hidden_units": list(self.hidden_units), "epochs": self.epochs,
                "batch_size": self.batch_size, "learning_rate": self.learning_rate}


SAMPLERS = names.registry("sampler", names.SAMPLERS, (GaussianMixtureSampler, TwoStageSampler))


def get_sampler(identifier, **options):
    """A sampler from a kind (``"gmm"``, ``"two_stage"``) with constructor ``options``, a config dict or a `Sampler`."""
    if isinstance(identifier, str) and identifier in SAMPLERS:
        try:
            return SAMPLERS[identifier](**options)
        except (TypeError, ValueError) as err:
            raise ValueError(f"Invalid options for sampler {identifier!r}: {err}") from err
    if options:
        raise ValueError(f"Sampler options {options} need a sampler kind, got {identifier!r}.")
    return resolve(identifier, SAMPLERS, "sampler", Sampler)
