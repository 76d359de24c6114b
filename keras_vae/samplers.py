"""Ex-post density samplers: a density fitted to the codes of the training set, sampled instead of the prior.

A VAE's aggregate posterior q(z) rarely fills its prior: prior samples land in holes the decoder never saw,
which is much of why VAE samples look blurred. Fitting a density to the training codes after training and
sampling from it gives sharper samples at no training cost:

- `GaussianMixtureSampler` (``"gmm"``): a mixture of Gaussians fitted by EM (Ghosh et al. 2020), with diagonal
  or full covariances (``covariance_type``).
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
import tensorflow_probability as tfp

from keras_vae import limits, names
from keras_vae._lookup import resolve
from keras_vae.limits import finite_float, int32_seed, integer_at_least
from keras_vae.priors import GaussianMixturePrior, Prior, draw_components

tfd = tfp.distributions


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

    def check_examples(self, count, latent_dim):
        """A ValueError unless ``count`` codes of ``latent_dim`` numbers can be fitted (before any is encoded)."""
        if count < 2:
            raise ValueError(f"A sampler is fitted to at least 2 codes, got {count}.")
        limits.check_size("len(codes)", count, 8 * latent_dim, "MAX_ARRAY_BYTES",
                          f"{latent_dim}-dimensional codes (float64)", "fit fewer examples")

    def freeze(self):
        """Makes every weight non-trainable: the model that keeps a fitted sampler never trains it."""
        self.trainable = False


# Arrays of n x K numbers EM keeps at once (log densities, the joint, responsibilities, temporaries).
_EM_ARRAYS = 4


def _checked_codes(sampler, codes):
    shape = np.shape(codes)
    if len(shape) != 2 or shape[0] < 2:
        raise ValueError(f"A sampler is fitted to codes of shape (n >= 2, latent_dim), got {shape}.")
    sampler.check_examples(shape[0], shape[1])
    codes = np.asarray(codes, np.float64)
    if not np.all(np.isfinite(codes)):
        raise ValueError("The codes to fit a sampler to contain NaN or Inf.")
    return codes


@keras.saving.register_keras_serializable(package="keras_vae")
class GaussianMixtureSampler(Sampler, GaussianMixturePrior):
    """A mixture of ``num_components`` Gaussians fitted to codes by EM.

    Args:
        num_components: mixture components (Ghosh et al. use 10 for MNIST).
        covariance_type: ``"diag"`` (default) or ``"full"`` (as in scikit-learn): full covariances follow codes
            that lie along curves, such as a sprite's turning, and put fewer samples off them
            (BENCHMARKS.md: 27% more squares among a long-trained sprites model's samples); they cost ``d^2``
            numbers per component and a matrix product per draw (TFLite's BATCH_MATMUL).
        max_iterations: EM iterations at most; it stops earlier when the mean log-likelihood gains less
            than ``tolerance`` nats.
        min_scale: floor on each component's standard deviation (keeps EM away from collapsed components); a
            full covariance gets ``min_scale^2`` added to its diagonal.

    Example:

    >>> vae.fit_sampler(train_images, kind="gmm", num_components=100, covariance_type="full")
    """

    name_key = "gmm"

    def __init__(self, num_components=10, covariance_type="diag", max_iterations=200, tolerance=1e-4, min_scale=1e-3,
                 **kwargs):
        super().__init__(**kwargs)
        if covariance_type not in names.COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {names.COVARIANCE_TYPES}, got {covariance_type!r}")
        self.num_components = integer_at_least("num_components", num_components, 1)
        self.covariance_type = covariance_type
        self.max_iterations = integer_at_least("max_iterations", max_iterations, 1)
        self.tolerance = finite_float("tolerance", tolerance, low=0.0)
        self.min_scale = finite_float("min_scale", min_scale, above=0.0)

    def check_examples(self, count, latent_dim):
        """A ValueError unless ``count`` codes of ``latent_dim`` numbers can be fitted: at least
        ``num_components`` of them, and EM's arrays (``count x num_components`` numbers, float64) within
        `keras_vae.limits.MAX_ARRAY_BYTES`."""
        super().check_examples(count, latent_dim)
        if count < self.num_components:
            raise ValueError(f"num_components={self.num_components} is more than the {count} codes to fit: a mixture "
                             "needs at least one code per component; fit more examples or fewer components.")
        limits.check_size("num_components", self.num_components, 8 * _EM_ARRAYS * count, "MAX_ARRAY_BYTES",
                          f"EM's arrays over {count} codes", "fit fewer examples or fewer components")

    def build(self, input_shape):
        super().build(input_shape)
        k, d = self.num_components, self.latent_dim
        limits.check_size("num_components", k, 4 * d * (d if self.covariance_type == "full" else 2), "MAX_WEIGHT_BYTES",
                          f"mixture weights of {d}-dimensional codes", "fit fewer components")
        self.logits = self.add_weight(name="logits", shape=(k,), initializer="zeros", trainable=False)
        self.locs = self.add_weight(name="locs", shape=(k, d), initializer="zeros", trainable=False)
        if self.covariance_type == "full":  # Cholesky factors of the covariances
            self.scale_trils = self.add_weight(name="scale_trils", shape=(k, d, d), trainable=False,
                                               initializer=lambda shape, dtype=None: tf.eye(d, batch_shape=[k],
                                                                                            dtype=dtype))
        else:
            self.scales = self.add_weight(name="scales", shape=(k, d), initializer="ones", trainable=False)

    def mixture_parameters(self):
        if self.covariance_type == "full":
            raise NotImplementedError("A full-covariance mixture has no diagonal scales; use its scale_trils.")
        return tf.cast(self.logits, tf.float32), tf.cast(self.locs, tf.float32), tf.cast(self.scales, tf.float32)

    def distribution(self):
        if self.covariance_type != "full":
            return super().distribution()
        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=tf.cast(self.logits, tf.float32)),
            components_distribution=tfd.MultivariateNormalTriL(loc=tf.cast(self.locs, tf.float32),
                                                               scale_tril=tf.cast(self.scale_trils, tf.float32)))

    def draw(self, num_samples, temperature, noise):
        if self.covariance_type != "full":
            return super().draw(num_samples, temperature, noise)
        k, d = self.num_components, self.latent_dim
        one_hot = draw_components(tf.cast(self.logits, tf.float32), num_samples, noise)
        locs = tf.matmul(one_hot, tf.cast(self.locs, tf.float32))
        trils = tf.reshape(tf.matmul(one_hot, tf.reshape(tf.cast(self.scale_trils, tf.float32), [k, d * d])),
                           [-1, d, d])
        eps = noise.normal(tf.shape(locs))
        return locs + temperature * tf.squeeze(tf.matmul(trils, eps[..., tf.newaxis]), -1)

    def log_prob(self, z):
        if self.covariance_type != "full":
            return super().log_prob(z)
        return self.distribution().log_prob(tf.cast(z, tf.float32))

    def fit(self, codes, seed=0, verbose=False):
        """Fits the mixture to ``codes`` ``[n, latent_dim]``; returns the mean log-likelihood per code (nats)."""
        codes = _checked_codes(self, codes)
        seed = integer_at_least("seed", seed, 0)
        full = self.covariance_type == "full"
        k, d = self.num_components, codes.shape[1]
        rng = np.random.default_rng(seed)
        means = _kmeans_plus_plus(codes, k, rng)
        floor = self.min_scale**2
        if full:
            covariances = np.tile(np.atleast_2d(np.cov(codes.T)) + floor * np.eye(d), (k, 1, 1))
        else:
            covariances = np.tile(codes.var(axis=0) + floor, (k, 1))
        weights = np.full(k, 1.0 / k)
        # The codes' outer products are the same every iteration: kept when they fit in OUTER_PRODUCTS_LIMIT.
        outer = _outer_products(codes) if full and codes.size * d <= OUTER_PRODUCTS_LIMIT else None
        previous = -np.inf
        for iteration in range(self.max_iterations):
            log_densities = _log_gaussians_full(codes, means, covariances, outer) if full else \
                _log_gaussians(codes, means, covariances)
            log_joint = log_densities + np.log(weights)  # [n, K]
            peak = log_joint.max(axis=1, keepdims=True)
            log_norm = peak + np.log(np.exp(log_joint - peak).sum(axis=1, keepdims=True))
            mean_log_likelihood = float(log_norm.mean())
            resp = np.exp(log_joint - log_norm)
            counts = resp.sum(axis=0) + 1e-10
            weights = counts / counts.sum()
            means = (resp.T @ codes) / counts[:, None]
            if full:  # E[x x^T] - mean mean^T for all components: one product with the codes' outer products
                second = sum(resp[rows].T @ block for rows, block in _outer_blocks(codes, outer))
                covariances = second.reshape(k, d, d) / counts[:, None, None] - means[:, :, None] * means[:, None, :]
                covariances = 0.5 * (covariances + covariances.transpose(0, 2, 1)) + floor * np.eye(d)
            else:
                covariances = np.maximum((resp.T @ codes**2) / counts[:, None] - means**2, floor)
            if verbose:
                print(f"EM {iteration + 1}: mean log-likelihood {mean_log_likelihood:.4f}")
            if mean_log_likelihood - previous < self.tolerance:
                break
            previous = mean_log_likelihood
        self.logits.assign(np.log(np.maximum(weights, 1e-12)).astype(np.float32))
        self.locs.assign(means.astype(np.float32))
        if full:
            self.scale_trils.assign(np.linalg.cholesky(covariances).astype(np.float32))
        else:
            self.scales.assign(np.sqrt(covariances).astype(np.float32))
        return mean_log_likelihood

    def get_config(self):
        return {**super().get_config(), "num_components": self.num_components, "covariance_type": self.covariance_type,
                "max_iterations": self.max_iterations, "tolerance": self.tolerance, "min_scale": self.min_scale}


def _log_gaussians(x, means, variances):
    """``log N(x_i; mean_k, diag(var_k))`` for every pair: ``[n, K]``."""
    precision = 1.0 / variances
    squared = (x**2) @ precision.T - 2.0 * x @ (means * precision).T + np.sum(means**2 * precision, axis=1)
    return -0.5 * (squared + np.sum(np.log(variances), axis=1) + x.shape[1] * math.log(2 * math.pi))


def _log_gaussians_full(x, means, covariances, outer=None):
    """``log N(x_i; mean_k, cov_k)`` for every pair: ``[n, K]``, all components at once: the quadratic form
    ``x^T P x - 2 x^T P mean + mean^T P mean`` (P the precision), its first term a product with the codes' outer
    products (``outer``: `_outer_products` of ``x``, computed here when not given)."""
    d = x.shape[1]
    chol = np.linalg.cholesky(covariances)  # [K, d, d]
    inverse_chol = np.linalg.inv(chol)
    precisions = inverse_chol.transpose(0, 2, 1) @ inverse_chol  # P = L^-T L^-1
    precision_means = np.einsum("kij,kj->ki", precisions, means)
    log_det = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)
    constant = np.einsum("ki,ki->k", means, precision_means) + log_det + d * math.log(2 * math.pi)
    flat_precisions = precisions.reshape(len(means), d * d).T
    quadratic = np.concatenate([block @ flat_precisions for _, block in _outer_blocks(x, outer)])
    return -0.5 * (quadratic - 2.0 * x @ precision_means.T + constant)


# Numbers of the codes' outer products EM keeps (2^25 float64: 256 MB); more are computed block by block.
OUTER_PRODUCTS_LIMIT = 1 << 25


def _outer_products(x):
    """Each row's outer product ``x_i x_i^T``, flattened: ``[n, d * d]``."""
    return (x[:, :, None] * x[:, None, :]).reshape(len(x), -1)


def _outer_blocks(x, outer=None):
    """``(row slice, outer products of those rows)`` covering ``x``: ``outer`` whole when given, else blocks of
    at most `OUTER_PRODUCTS_LIMIT` / 8 numbers."""
    if outer is not None:
        yield slice(None), outer
        return
    step = max(1, OUTER_PRODUCTS_LIMIT // 8 // x.shape[1] ** 2)
    for start in range(0, len(x), step):
        rows = slice(start, start + step)
        yield rows, _outer_products(x[rows])


def _kmeans_plus_plus(x, k, rng):
    """k-means++ seeding: spread initial means, so EM does not start with components on top of each other."""
    centres = [x[rng.integers(len(x))]]
    distance = np.full(len(x), np.inf)
    for _ in range(1, k):  # each code's distance to its nearest centre, updated with the newest one
        distance = np.minimum(distance, np.sum((x - centres[-1]) ** 2, axis=1))
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
        if isinstance(hidden_units, (str, bytes)) or not hasattr(hidden_units, "__iter__") or not len(hidden_units):
            raise ValueError(f"hidden_units must be a non-empty list of layer widths, got {hidden_units!r}")
        self.hidden_units = tuple(integer_at_least("hidden_units", u, 1) for u in hidden_units)
        self.epochs = integer_at_least("epochs", epochs, 1)
        self.batch_size = integer_at_least("batch_size", batch_size, 1)
        self.learning_rate = finite_float("learning_rate", learning_rate, above=0.0)
        # Created here, not in build, so Keras tracks them as sublayers (trainable flags, weights).
        self.encoder_layers = self._mlp("stage2_encoder")
        self.decoder_layers = self._mlp("stage2_decoder")

    def _mlp(self, name):
        return [keras.layers.Dense(u, activation="relu", name=f"{name}_{i}") for i, u in enumerate(self.hidden_units)]

    def build(self, input_shape):
        super().build(input_shape)
        d = self.latent_dim
        widths = (d, *self.hidden_units, 2 * d)
        limits.check_size("hidden_units", self.hidden_units, 8 * sum(a * b for a, b in zip(widths, widths[1:])),
                          "MAX_WEIGHT_BYTES", "weights of the second stage's two MLPs", "use narrower layers", count=1)
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
        codes = _checked_codes(self, codes).astype(np.float32)
        seed = int32_seed("seed", seed)
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
