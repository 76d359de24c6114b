"""beta-TCVAE (Chen et al. 2018): the KL split into index-code MI, total correlation and dimension-wise KL.

``E[KL(q(z|x) || p(z))] = MI(x; z) + TC(z) + KL(prod_j q(z_j) || p(z))``, with
``MI = E[log q(z|x) - log q(z)]``, ``TC = E[log q(z) - log prod_j q(z_j)]`` and the last term
``E[log prod_j q(z_j) - log p(z)]``. The loss weights them ``alpha``, ``beta`` (the TC weight) and
``gamma``; ``alpha = beta = gamma = 1`` gives back the plain VAE objective.

The aggregate posterior q(z) is estimated on each minibatch by minibatch-weighted sampling (MWS):
``log q(z_i) ~ logsumexp_j log q(z_i | x_j) - log(N * M)`` with N = ``dataset_size`` and M the batch
size, and the same per dimension for ``q(z_j)``. Under a tf.distribute strategy the statistic is
computed per replica, over the replica's local batch (M = per-replica batch size): each replica's
estimate is unbiased on its own, but uses fewer samples than the global batch holds.

N only shifts the three terms by constants (it does not change the gradients); it matters for the
reported values, so it is part of the config. With N much larger than M the MWS values are strongly
biased (the j = i term dominates each sum, so ``mi`` is close to ``log(N * M)`` and ``tc`` carries an
offset of about ``(d - 1) * log(N * M)``): compare them between runs of one setup, not as absolute nats.

Example:

>>> vae = keras_vae.build_vae((64, 64, 1), 10, variant="beta_tcvae", beta=6.0, dataset_size=663552)
>>> vae.compile(optimizer="adam"); vae.fit(images, batch_size=64)   # metrics add mi, tc, dim_kl
"""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.model import VAE

tfd = tfp.distributions

DECOMPOSITION = ("mi", "tc", "dim_kl")


def total_correlation_terms(z, loc, scale, log_prior, dataset_size):
    """Per-example MWS estimates ``{"mi", "tc", "dim_kl"}`` (nats, each ``[batch]``).

    Args:
        z: posterior samples ``[M, d]``, z_i ~ q(z | x_i).
        loc, scale: the diagonal Gaussian posteriors of the same minibatch, ``[M, d]``.
        log_prior: ``log p(z_i)``, ``[M]``.
        dataset_size: N, the number of training examples.
    """
    log_q_pairs = tfd.Normal(loc[tf.newaxis], scale[tf.newaxis]).log_prob(z[:, tf.newaxis])  # [M(i), M(j), d]
    batch = tf.cast(tf.shape(z)[0], tf.float32)
    log_nm = tf.math.log(batch) + math.log(dataset_size)
    log_q_z_given_x = tf.reduce_sum(tfd.Normal(loc, scale).log_prob(z), axis=1)
    log_q_z = tf.reduce_logsumexp(tf.reduce_sum(log_q_pairs, axis=2), axis=1) - log_nm
    log_prod_q_zj = tf.reduce_sum(tf.reduce_logsumexp(log_q_pairs, axis=1) - log_nm, axis=1)
    return {
        "mi": log_q_z_given_x - log_q_z,
        "tc": log_q_z - log_prod_q_zj,
        "dim_kl": log_prod_q_zj - log_prior,
    }


@keras.saving.register_keras_serializable(package="keras_vae")
class BetaTCVAE(VAE):
    """A VAE penalizing the total correlation of the aggregate posterior with weight ``beta``.

    Args:
        dataset_size: number of training examples N (for the minibatch-weighted-sampling estimator).
        beta: weight of the total correlation (Chen et al. use 6 on dSprites).
        alpha: weight of the index-code mutual information.
        gamma: weight of the dimension-wise KL.
        **kwargs: as for `VAE`; ``kl_warmup_steps`` ramps all three weights together. ``free_bits`` is not used.

    Metrics add ``mi``, ``tc`` and ``dim_kl`` (MWS estimates, nats); ``kl`` stays the analytic
    (or, for a mixture prior, Monte Carlo) KL(q(z|x) || p(z)) of the plain VAE.
    Needs a diagonal Gaussian posterior (the default).
    """

    def __init__(self, encoder, decoder, latent_dim, dataset_size=None, beta=6.0, alpha=1.0, gamma=1.0, **kwargs):
        if dataset_size is None or int(dataset_size) < 1:
            raise ValueError(
                "BetaTCVAE needs dataset_size, the number of training examples (a positive int), for the "
                f"minibatch-weighted-sampling estimate of q(z); got {dataset_size!r}."
            )
        if float(alpha) < 0 or float(gamma) < 0:
            raise ValueError(f"alpha and gamma must be >= 0, got {alpha}, {gamma}")
        super().__init__(encoder, decoder, latent_dim, beta=beta, **kwargs)
        self.dataset_size = int(dataset_size)
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        for name in DECOMPOSITION:
            self.trackers[name] = keras.metrics.Mean(name=name)

    def _warmup(self):
        if not self.beta:
            return tf.constant(1.0)
        return self.current_beta() / self.beta

    def compute_terms(self, x, training=False):
        posterior, z, reconstruction, kl = self.elbo_parts(x, training=training)
        parts = total_correlation_terms(
            z, posterior.mean(), posterior.stddev(), self.prior.log_prob(z), self.dataset_size
        )
        penalty = self.alpha * parts["mi"] + self.beta * parts["tc"] + self.gamma * parts["dim_kl"]
        loss = reconstruction + self._warmup() * penalty
        return {"loss": loss, "reconstruction": reconstruction, "kl": kl, "elbo": -(reconstruction + kl), **parts}

    def get_config(self):
        return {**super().get_config(), "dataset_size": self.dataset_size, "alpha": self.alpha, "gamma": self.gamma}
