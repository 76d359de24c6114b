"""A joint draw of a model's stochastic layers: the records `VAE.draw` returns, and the helpers that build them.

Everything in a draw is per example and sample, ``[n, ...]`` with n = samples * batch, sample-major (copy k of
the batch is rows ``k * batch`` ..).

Example:

>>> draw = vae.draw(images, num_samples=4)             # a `Draw` of 64 images, latent_dim 16
>>> draw.layers[-1].z.shape                             # the top layer's codes, a `LatentLayer`
TensorShape([256, 16])
>>> tile_samples(tf.zeros([64, 10]), 4).shape
TensorShape([256, 10])
"""

import collections

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

# One stochastic layer of a draw, all per example (``[n]``): its codes ``z`` [n, d], its posterior ``q``,
# ``log_q`` = log q(z), ``log_p`` = log p(z | layer above), the KL (analytic where both are diagonal Gaussians
# or the prior is factorized, else log_q - log_p) and the per-dimension KL [n, d] when it exists (else None).
LatentLayer = collections.namedtuple("LatentLayer", ["z", "q", "log_q", "log_p", "kl", "kl_per_dim"])
# A joint draw: the layers, log p(x | z) [n], the decoder output [n, H, W, C] and the condition it saw (or None).
Draw = collections.namedtuple("Draw", ["layers", "log_px_z", "decoder_output", "condition"])


def diagonal_gaussian_layer(q_loc, q_scale, p_loc, p_scale, seed):
    """A `LatentLayer` drawn from N(q_loc, q_scale) against the prior N(p_loc, p_scale), analytic KL per dimension."""
    z = q_loc + q_scale * tf.random.stateless_normal(tf.shape(q_loc), seed=seed)
    q, p = tfd.Normal(q_loc, q_scale), tfd.Normal(p_loc, p_scale)
    kl_per_dim = tfd.kl_divergence(q, p)
    log_q, log_p = (tf.reduce_sum(d.log_prob(z), axis=-1) for d in (q, p))
    return LatentLayer(z, tfd.MultivariateNormalDiag(q_loc, q_scale), log_q, log_p,
                       tf.reduce_sum(kl_per_dim, axis=-1), kl_per_dim)


def tile_samples(t, num_samples):
    """``[batch, ...]`` -> ``[num_samples * batch, ...]``, sample-major (copy k of the batch is rows k*batch...)."""
    return tf.tile(t, tf.concat([[num_samples], tf.ones([tf.rank(t) - 1], tf.int32)], 0))
