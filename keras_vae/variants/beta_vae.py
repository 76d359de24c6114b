"""beta-VAE (Higgins et al. 2017) with optional capacity annealing (Burgess et al. 2018).

Without a capacity the loss is ``reconstruction + beta * KL``. With ``capacity_max`` set it is
``reconstruction + gamma * |KL - C|``, where the target capacity C (nats) rises linearly from 0 to
``capacity_max`` over ``capacity_steps`` optimizer steps: the KL is pushed towards C rather than to 0,
so latent dimensions switch on one at a time as C grows.

Example:

>>> vae = keras_vae.build_vae((64, 64, 1), 10, variant="beta_vae", beta=4.0)
>>> annealed = keras_vae.build_vae((64, 64, 1), 10, variant="beta_vae", gamma=1000.0,
...                                capacity_max=25.0, capacity_steps=100_000)
"""

import keras
import tensorflow as tf

from keras_vae.model import VAE


@keras.saving.register_keras_serializable(package="keras_vae")
class BetaVAE(VAE):
    """A VAE with KL weight ``beta`` (default 4), or a capacity-annealed KL target.

    Args:
        beta: KL weight when ``capacity_max`` is None (ramped by ``kl_warmup_steps`` as in `VAE`).
        capacity_max: final target KL C_max in nats; None turns capacity annealing off.
        capacity_steps: optimizer steps over which C rises linearly from 0 to ``capacity_max``.
        gamma: weight of ``|KL - C|`` (Burgess et al. use 1000 for dSprites).
        **kwargs: as for `VAE`.

    With annealing the metrics add ``capacity`` (the current C). ``free_bits`` applies only
    without annealing.
    """

    def __init__(self, encoder, decoder, latent_dim, beta=4.0, capacity_max=None, capacity_steps=100_000,
                 gamma=1000.0, **kwargs):
        super().__init__(encoder, decoder, latent_dim, beta=beta, **kwargs)
        if capacity_max is not None and not float(capacity_max) >= 0:
            raise ValueError(f"capacity_max must be >= 0 (nats) or None, got {capacity_max}")
        if int(capacity_steps) < 1 or float(gamma) < 0:
            raise ValueError(f"capacity_steps must be >= 1 and gamma >= 0, got {capacity_steps}, {gamma}")
        self.capacity_max = None if capacity_max is None else float(capacity_max)
        self.capacity_steps = int(capacity_steps)
        self.gamma = float(gamma)
        if self.capacity_max is not None:
            self.trackers["capacity"] = keras.metrics.Mean(name="capacity")

    def capacity(self):
        """The target KL C (nats) at the current optimizer step: ``capacity_max * min(1, step / capacity_steps)``."""
        step = 0.0
        if getattr(self, "optimizer", None) is not None:
            step = tf.cast(self.optimizer.iterations, tf.float32)
        return self.capacity_max * tf.minimum(1.0, step / float(self.capacity_steps))

    def compute_terms(self, x, training=False):
        terms = super().compute_terms(x, training=training)
        if self.capacity_max is None:
            return terms
        capacity = self.capacity()
        loss = terms["reconstruction"] + self.gamma * tf.abs(terms["kl"] - capacity)
        return {**terms, "loss": loss, "capacity": tf.fill(tf.shape(loss), capacity)}

    def get_config(self):
        return {
            **super().get_config(),
            "capacity_max": self.capacity_max,
            "capacity_steps": self.capacity_steps,
            "gamma": self.gamma,
        }
