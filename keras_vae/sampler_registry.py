"""The samplers a `VAE` draws its codes from: its prior, and ex-post samplers fitted to its codes and saved with it.

`SamplerRegistry` is a mixin of `VAE` that also gives the seeds of the model's random draws; the samplers
themselves are in `keras_vae.samplers`.

Example:

>>> vae.fit_sampler(images, kind="gmm", num_components=10)       # kept as "gmm", saved with the model
>>> vae.sample(16, sampler="gmm", seed=0).shape
TensorShape([16, 28, 28, 1])
>>> vae.sample_prior(4, temperature=0.8, seed=0).shape             # codes from the prior
TensorShape([4, 16])
"""

import keras
import tensorflow as tf

from keras_vae.limits import check_size, finite_float, integer_at_least
from keras_vae.samplers import get_sampler


def checked_sampling(num_samples, temperature, bytes_per_sample=0, what="samples"):
    """``(num_samples, temperature)`` as int and float; a ValueError unless ``num_samples`` is an integer >= 1
    whose ``bytes_per_sample`` each fit `keras_vae.limits.MAX_ARRAY_BYTES` and ``temperature`` is finite and > 0."""
    num_samples = integer_at_least("num_samples", num_samples, 1)
    temperature = finite_float("temperature", temperature, above=0.0)
    check_size("num_samples", num_samples, bytes_per_sample, "MAX_ARRAY_BYTES", what,
               "draw them in batches (one call per batch, each with its own seed)")
    return num_samples, temperature


class SamplerRegistry:
    """Mixin of `VAE`: its samplers by name (``"prior"`` and those in ``samplers``), and the seeds of its draws.

    Reads the model's ``prior``, ``latent_dim``, ``samplers`` (a dict) and ``seed_generator``.
    """

    def sampler(self, name="prior"):
        """The code sampler ``name``: ``"prior"`` (the prior) or an ex-post sampler added by `fit_sampler`."""
        if name == "prior":
            return self.prior
        if name not in self.samplers:
            raise ValueError(f"Unknown sampler {name!r}; this model has {['prior', *self.samplers]}. "
                             "Fit one with model.fit_sampler(images, kind=...).")
        return self.samplers[name]

    def add_sampler(self, name, sampler, dataset=None):
        """Keeps ``sampler`` under ``name``; a ValueError when it was fitted for another latent size, or (when
        both are known) on another ``dataset`` than the one given."""
        if name == "prior" or not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"A sampler name must be an identifier other than 'prior', got {name!r}.")
        if dataset is not None and sampler.dataset is not None and sampler.dataset != dataset:
            raise ValueError(f"Sampler {name!r} was fitted to codes of {sampler.dataset!r}, not {dataset!r}: it "
                             "belongs to another model.")
        if sampler.built and getattr(sampler, "latent_dim", None) != self.latent_dim:
            raise ValueError(f"Sampler {name!r} was fitted to {sampler.latent_dim}-dimensional codes; this model's "
                             f"codes have {self.latent_dim}: it belongs to another model.")
        if not sampler.built:
            sampler.build((None, self.latent_dim))
        sampler.freeze()  # fitted after training: the model's fit never moves it
        # Popped first: Keras' tracked dict keeps a replaced value's weights in the model's layers, and the
        # saved file would then load the old sampler's weights under this name.
        self.samplers.pop(name, None)
        self.samplers[name] = sampler
        return sampler

    def fit_sampler(self, images, labels=None, kind="gmm", name=None, batch_size=256, seed=0, verbose=False,
                    dataset=None, **options):
        """Fits an ex-post sampler (`keras_vae.samplers`) to the posterior means of ``images`` and keeps it.

        Returns the sampler; ``model.sample(n, sampler=name)`` then draws from it (``name`` defaults to ``kind``).
        ``dataset`` (a name) is recorded with the sampler, so it can be told apart from one of another dataset.
        """
        from keras_vae.latent import encode_means
        from keras_vae.precision import float32_compute

        batch_size = integer_at_least("batch_size", batch_size, 1)
        seed = integer_at_least("seed", seed, 0, 2**31 - 1)
        sampler = get_sampler(kind, dataset=dataset, **options)
        sampler.check_examples(len(images), self.latent_dim)  # before any weight or code exists
        sampler.build((None, self.latent_dim))
        with float32_compute(self):  # a model trained in mixed precision: codes to float32's digits
            codes = encode_means(self, images, labels, batch_size=batch_size)
        sampler.fit(codes, seed=seed, verbose=verbose)
        return self.add_sampler(name or kind, sampler)

    def sample_prior(self, num_samples, temperature=1.0, seed=None, sampler="prior"):
        """Codes ``[num_samples, latent_dim]`` from the prior (or ``sampler``); ``temperature`` scales the spread."""
        num_samples, temperature = checked_sampling(num_samples, temperature, 4 * self.latent_dim,
                                                    f"{self.latent_dim}-dimensional codes")
        return self.sampler(sampler).sample(num_samples, temperature=temperature, seed=self._sampling_seed(seed))

    def _sampling_seed(self, seed):
        """A stateless seed from ``seed``, or the model's next one when it is None."""
        seed = keras.random.SeedGenerator(seed).next() if seed is not None else self.seed_generator.next()
        return tf.cast(seed, tf.int32)

    def noise_seed(self):
        """A fresh stateless seed for this step, distinct on every replica of a tf.distribute strategy."""
        seed = tf.cast(self.seed_generator.next(), tf.int32)
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            seed = tf.random.experimental.stateless_fold_in(seed, ctx.replica_id_in_sync_group)
        return seed
