"""Approximate posteriors q(z | x): layers that turn encoder outputs into tfp distributions.

A posterior takes the encoder's ``2 * latent_dim`` outputs per example (a location and a raw scale) and
returns a distribution with batch shape ``[batch]`` and event shape ``[latent_dim]``. Any model takes any
posterior (``VAE(..., posterior=IAFPosterior(num_flows=2))``).

Example:

>>> q = GaussianPosterior()
>>> loc, scale = q.parameters_from(tf.zeros([4, 2 * 8]))
>>> q.distribution(loc, scale).event_shape
TensorShape([8])
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae import names
from keras_vae._lookup import resolve
from keras_vae.flows import AutoregressiveNetwork, FlowDistribution
from keras_vae.limits import integer_at_least
from keras_vae.planar_flows import ForwardFlow, PlanarFlow, RadialFlow

tfd = tfp.distributions
tfb = tfp.bijectors


class Posterior(keras.layers.Layer):
    """Base class: ``parameters_from(encoder_output) -> (loc, scale)`` and ``distribution(loc, scale)``.

    ``diagonal_gaussian`` says whether the distribution is exactly ``N(loc, diag(scale^2))``: then the KL to
    a factorized prior is analytic and per dimension, and total-correlation estimators and the VampPrior,
    which need the Gaussian's closed-form density, apply.

    Args:
        scale_floor: added to ``softplus(raw scale)`` so the scale never reaches zero (a zero scale makes the
            KL and its gradient infinite).
    """

    diagonal_gaussian = True
    name_key = None

    def __init__(self, scale_floor=1e-4, **kwargs):
        super().__init__(**kwargs)
        self.scale_floor = float(scale_floor)

    def build(self, input_shape):
        self.latent_dim = int(input_shape[-1])

    def parameters_from(self, encoder_output):
        """Splits encoder output into (loc, scale), each ``[batch, latent_dim]``, float32."""
        loc, raw_scale = tf.split(tf.cast(encoder_output, tf.float32), 2, axis=-1)
        return loc, tf.nn.softplus(raw_scale) + self.scale_floor

    def distribution(self, loc, scale):
        raise NotImplementedError

    def sample_and_log_prob(self, loc, scale, seed):
        """One reparameterized draw per row and its log density: ``(z [n, d], log_q [n])``.

        Drawn from the base Gaussian by hand rather than by tfp, whose sampler divides by the batch size
        and fails on a replica's empty final batch.
        """
        z = loc + scale * tf.random.stateless_normal(tf.shape(loc), seed=seed)
        return z, tf.reduce_sum(tfd.Normal(loc, scale).log_prob(z), axis=-1)

    def call(self, encoder_output):
        return self.parameters_from(encoder_output)

    def get_config(self):
        return {**super().get_config(), "scale_floor": self.scale_floor}


@keras.saving.register_keras_serializable(package="keras_vae")
class GaussianPosterior(Posterior):
    """Diagonal Gaussian q(z|x) = N(loc, diag(scale^2)), reparameterized."""

    name_key = "gaussian"

    def distribution(self, loc, scale):
        return tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)


@keras.saving.register_keras_serializable(package="keras_vae")
class IAFPosterior(Posterior):
    """A diagonal Gaussian followed by ``num_flows`` inverse autoregressive flow steps (Kingma et al. 2016).

    Each step is ``tfb.Invert(tfb.MaskedAutoregressiveFlow(...))`` with an `AutoregressiveNetwork`, and the
    dimension order is reversed between steps. Sampling and the density of drawn samples take one parallel
    pass (``experimental_sample_and_log_prob``); the KL is a Monte Carlo estimate. The distribution's
    ``mean``/``stddev`` are deterministic moments (see `FlowDistribution`).

    Args:
        num_flows: number of IAF steps (>= 1).
        flow_units: hidden units of each step's MADE network.
    """

    diagonal_gaussian = False
    name_key = "iaf"

    def __init__(self, num_flows=2, flow_units=(64,), **kwargs):
        super().__init__(**kwargs)
        if int(num_flows) < 1:
            raise ValueError(f"num_flows must be >= 1, got {num_flows}")
        self.num_flows = int(num_flows)
        self.flow_units = tuple(int(u) for u in flow_units)
        self.flow_networks = [AutoregressiveNetwork(hidden_units=self.flow_units, name=f"iaf_{i + 1}")
                              for i in range(self.num_flows)]

    def build(self, input_shape):
        super().build(input_shape)
        for net in self.flow_networks:
            net.build((None, self.latent_dim))

    def flow(self):
        """The IAF steps as one bijector (rebuilt per call: bijectors are cheap, and keeping one would make
        Keras track a tf.Module that holds the networks' variables a second time)."""
        steps = []
        for i, net in enumerate(self.flow_networks):
            if i:
                steps.append(tfb.Permute(permutation=list(reversed(range(self.latent_dim)))))
            steps.append(tfb.Invert(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=net)))
        return tfb.Chain(list(reversed(steps)))  # Chain applies its last bijector first

    def sample_and_log_prob(self, loc, scale, seed):
        z, log_q = super().sample_and_log_prob(loc, scale, seed)
        flow = self.flow()
        return flow.forward(z), log_q - flow.forward_log_det_jacobian(z, event_ndims=1)

    def distribution(self, loc, scale):
        return FlowDistribution(distribution=tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale),
                                bijector=self.flow())

    def get_config(self):
        return {**super().get_config(), "num_flows": self.num_flows, "flow_units": list(self.flow_units)}


class _StepFlowPosterior(Posterior):
    """A diagonal Gaussian followed by ``num_flows`` steps of ``flow_class``, whose parameters are learned
    weights of this layer shared by every input (not amortized by the encoder, as in Pythae's VAE_NF).

    The KL is a Monte Carlo estimate from `sample_and_log_prob`; ``distribution(loc, scale)`` gives the
    deterministic moments (`FlowDistribution`) but no ``log_prob`` of arbitrary codes (the steps have no
    closed-form inverse: NotImplementedError).
    """

    diagonal_gaussian = False
    flow_class = None

    def __init__(self, num_flows=2, **kwargs):
        super().__init__(**kwargs)
        self.num_flows = integer_at_least("num_flows", num_flows, 1)
        # float32 whatever the global policy: the posterior's densities are float32 (see parameters_from).
        self.flow_steps = self.flow_class(num_flows=self.num_flows, dtype="float32", name=f"{self.name_key}_flow")

    def build(self, input_shape):
        super().build(input_shape)
        self.flow_steps.build((None, self.latent_dim))

    def sample_and_log_prob(self, loc, scale, seed):
        z, log_q = super().sample_and_log_prob(loc, scale, seed)
        y, log_det = self.flow_steps(z)
        return y, log_q - log_det

    def distribution(self, loc, scale):
        return FlowDistribution(distribution=tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale),
                                bijector=ForwardFlow(self.flow_steps))

    def get_config(self):
        return {**super().get_config(), "num_flows": self.num_flows}


@keras.saving.register_keras_serializable(package="keras_vae")
class PlanarPosterior(_StepFlowPosterior):
    """Planar flow posterior (Rezende and Mohamed 2015): ``z + u_hat tanh(w.z + b)`` per step; see
    `_StepFlowPosterior` and `keras_vae.planar_flows.PlanarFlow`.

    >>> q = PlanarPosterior(num_flows=4)
    """

    name_key = "planar"
    flow_class = PlanarFlow


@keras.saving.register_keras_serializable(package="keras_vae")
class RadialPosterior(_StepFlowPosterior):
    """Radial flow posterior (Rezende and Mohamed 2015): ``z + beta (z - z0) / (alpha + |z - z0|)`` per step;
    see `_StepFlowPosterior` and `keras_vae.planar_flows.RadialFlow`.

    >>> q = RadialPosterior(num_flows=4)
    """

    name_key = "radial"
    flow_class = RadialFlow


POSTERIORS = names.registry("posterior", names.POSTERIORS,
                            (GaussianPosterior, IAFPosterior, PlanarPosterior, RadialPosterior))


def get_posterior(identifier):
    """A posterior layer from a name (``"gaussian"``, ``"iaf"``, ``"planar"``, ``"radial"``), a config dict or a
    layer."""
    return resolve(identifier, POSTERIORS, "posterior", Posterior)
