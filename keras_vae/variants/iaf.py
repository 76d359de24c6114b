"""VAE with an inverse-autoregressive-flow posterior (Kingma et al. 2016).

``q(z|x)``: a diagonal Gaussian from the encoder, pushed through ``num_flows`` IAF steps
``tfb.Invert(tfb.MaskedAutoregressiveFlow(...))`` with the dimension order reversed between steps.
Each step's shift and log-scale come from `AutoregressiveNetwork`, a MADE network written as a Keras 3
layer (``tfb.AutoregressiveNetwork`` is a tf_keras layer and cannot live in a Keras 3 model). The last
layer starts at zero, so an untrained flow is the identity. Sampling and the density of the drawn
samples take one parallel pass (`experimental_sample_and_log_prob`); the KL is estimated by Monte Carlo,
``log q(z|x) - log p(z)`` at the sample.

Example:

>>> vae = keras_vae.build_vae((28, 28, 1), 16, architecture="mlp", variant="iaf", num_flows=2)
>>> vae.compile(optimizer="adam"); vae.fit(images, batch_size=128)
>>> keras_vae.iwae_bound(vae, images[:100], num_samples=1000)
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.model import VAE

tfd = tfp.distributions
tfb = tfp.bijectors

_MOMENT_DRAWS = 256  # antithetic pairs for the posterior's moments


@keras.saving.register_keras_serializable(package="keras_vae")
class AutoregressiveNetwork(keras.layers.Layer):
    """MADE (Germain et al. 2015): ``z -> (shift, log_scale)``, output i depending only on inputs < i.

    Args:
        hidden_units: widths of the masked hidden layers.
        activation: their activation.
        max_log_scale: log scales are soft-clipped to ``(-max_log_scale, max_log_scale)`` for stability.

    Example:

    >>> net = AutoregressiveNetwork(hidden_units=(32,))
    >>> shift, log_scale = net(tf.zeros([4, 8]))
    """

    def __init__(self, hidden_units=(64,), activation="relu", max_log_scale=3.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.activation = activation
        self.max_log_scale = float(max_log_scale)

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.event_size = dim
        degrees = [np.arange(1, dim + 1)]
        for units in self.hidden_units:
            degrees.append(np.arange(units) % max(dim - 1, 1) + 1)
        self._masks, self.kernels, self.biases = [], [], []
        for i, units in enumerate(self.hidden_units):
            # A hidden unit of degree k sees inputs of degree <= k.
            self._masks.append((degrees[i + 1][np.newaxis] >= degrees[i][:, np.newaxis]).astype("float32"))
            self.kernels.append(self.add_weight(name=f"kernel_{i}", shape=(len(degrees[i]), units),
                                                initializer="glorot_uniform"))
            self.biases.append(self.add_weight(name=f"bias_{i}", shape=(units,), initializer="zeros"))
        # Output i (for shift and for log-scale) sees hidden units of degree < i.
        out_mask = (np.arange(1, dim + 1)[np.newaxis] > degrees[-1][:, np.newaxis]).astype("float32")
        self._masks.append(np.concatenate([out_mask, out_mask], axis=1))
        self.kernels.append(self.add_weight(name="kernel_out", shape=(len(degrees[-1]), 2 * dim), initializer="zeros"))
        self.biases.append(self.add_weight(name="bias_out", shape=(2 * dim,), initializer="zeros"))
        self._activation = keras.activations.get(self.activation)

    def call(self, z):
        h = z
        last = len(self.kernels) - 1
        for i, (kernel, bias, mask) in enumerate(zip(self.kernels, self.biases, self._masks)):
            h = tf.matmul(h, kernel * mask) + bias
            if i < last:
                h = self._activation(h)
        shift, raw = tf.split(h, 2, axis=-1)
        return shift, self.max_log_scale * tf.tanh(raw / self.max_log_scale)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_units": list(self.hidden_units),
            "activation": self.activation,
            "max_log_scale": self.max_log_scale,
        }


class FlowPosterior(tfd.TransformedDistribution):
    """A Gaussian pushed through a flow. `mean` / `stddev` / `variance` are Monte Carlo moments over a
    fixed set of antithetic standard-normal draws (deterministic, and free of random ops so they export)."""

    def _moment_draws(self):
        base = self.distribution
        eps = np.random.RandomState(0).randn(_MOMENT_DRAWS, base.event_shape[-1]).astype("float32")
        eps = tf.constant(np.concatenate([eps, -eps]))[:, tf.newaxis]  # [2n, 1, d]
        return self.bijector.forward(base.mean()[tf.newaxis] + base.stddev()[tf.newaxis] * eps)

    def _mean(self, **kwargs):
        return tf.reduce_mean(self._moment_draws(), axis=0)

    def _variance(self, **kwargs):
        return tf.math.reduce_variance(self._moment_draws(), axis=0)

    def _stddev(self, **kwargs):
        return tf.sqrt(self._variance())


@keras.saving.register_keras_serializable(package="keras_vae")
class IAFVAE(VAE):
    """A VAE whose posterior is a diagonal Gaussian followed by ``num_flows`` inverse autoregressive flows.

    Args:
        num_flows: number of IAF steps (>= 1).
        flow_units: hidden units of each step's MADE network.
        **kwargs: as for `VAE`. ``free_bits`` applies to the total KL (``free_bits * latent_dim``),
            as no per-dimension KL exists for this posterior.

    `encode` returns a `FlowPosterior` (a ``tfd.TransformedDistribution``): ``sample`` and
    ``experimental_sample_and_log_prob`` are one parallel pass, and so is ``log_prob`` of codes the
    same posterior drew (the bijectors cache them: `VAE.log_importance_weights` works as is); the
    ``log_prob`` of any other code inverts the flow (``latent_dim`` sequential passes).
    """

    per_dimension_kl = False  # kl_per_dimension raises: the flow couples the latent dimensions

    def __init__(self, encoder, decoder, latent_dim, num_flows=2, flow_units=(64,), **kwargs):
        if int(num_flows) < 1:
            raise ValueError(f"num_flows must be >= 1, got {num_flows}")
        super().__init__(encoder, decoder, latent_dim, **kwargs)
        self.num_flows = int(num_flows)
        self.flow_units = tuple(int(u) for u in flow_units)
        self.flow_networks = []
        for i in range(self.num_flows):
            net = AutoregressiveNetwork(hidden_units=self.flow_units, name=f"iaf_{i + 1}")
            net.build((None, self.latent_dim))
            self.flow_networks.append(net)

    def flow(self):
        """The IAF steps as one bijector (rebuilt per call: bijectors are cheap, and keeping one would make
        Keras track a tf.Module that holds the networks' variables a second time)."""
        steps = []
        for i, net in enumerate(self.flow_networks):
            if i:
                steps.append(tfb.Permute(permutation=list(reversed(range(self.latent_dim)))))
            steps.append(tfb.Invert(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=net)))
        return tfb.Chain(list(reversed(steps)))  # Chain applies its last bijector first

    def posterior_from(self, parameters):
        """q(z|x): the Gaussian of ``parameters`` pushed through the IAF steps (a `FlowPosterior`)."""
        return FlowPosterior(distribution=super().posterior_from(parameters), bijector=self.flow())

    def kl_per_dimension(self, posterior):
        raise ValueError("An IAF posterior has no per-dimension KL: the flow couples the latent dimensions.")

    def _kl_charged(self, posterior, kl):
        if not self.free_bits:
            return kl
        return tf.maximum(kl, self.free_bits * self.latent_dim)

    def compute_terms(self, x, training=False):
        posterior = self.encode(x, training=training)
        z, log_q = posterior.experimental_sample_and_log_prob(seed=self.noise_seed())
        x = tf.cast(x, tf.float32)
        reconstruction = -self.likelihood.log_prob(x, self.decoder(z, training=training))
        kl = log_q - self.prior.log_prob(z)  # Monte Carlo, one sample
        loss = reconstruction + self.current_beta() * self._kl_charged(posterior, kl)
        return {"loss": loss, "reconstruction": reconstruction, "kl": kl, "elbo": -(reconstruction + kl)}

    def call(self, x, training=False):
        """Posterior moments (`FlowPosterior`) and the decoder output at the posterior mean."""
        posterior = self.encode(x, training=training)
        loc = posterior.mean()
        return {"loc": loc, "scale": posterior.stddev(), "decoder_output": self.decoder(loc, training=training)}

    def get_config(self):
        return {**super().get_config(), "num_flows": self.num_flows, "flow_units": list(self.flow_units)}
