"""The train step under MirroredStrategy over two logical CPUs matches the single-device step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae
from keras_vae import VAE


@keras.saving.register_keras_serializable(package="keras_vae_tests")
class FixedNoiseVAE(VAE):
    """A deterministic 'sample' per example, so both runs see the same latent draws."""

    def sample_posterior(self, posterior):
        return posterior.mean() + 0.5 * posterior.stddev()


def _two_cpus():
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) < 2:
        pytest.skip("needs two logical CPUs (configured in tests/conftest.py before TF starts)")
    return [d.name for d in cpus[:2]]


def _mirrored(devices):
    # Collective all-reduce instances of two MirroredStrategy objects in one process can collide.
    return tf.distribute.MirroredStrategy(devices, cross_device_ops=tf.distribute.ReductionToOneDevice())


def _build(weights=None):
    enc = keras_vae.mlp_encoder((8, 8, 1), 3, hidden_units=(16,))
    dec = keras_vae.mlp_decoder((8, 8, 1), 3, hidden_units=(16,))
    vae = FixedNoiseVAE(enc, dec, latent_dim=3)
    if weights is not None:
        vae.set_weights(weights)
    # Plain SGD: an adaptive optimizer would hide a gradient that is N times too large.
    vae.compile(optimizer=keras.optimizers.SGD(0.05))
    return vae


def test_mirrored_step_equals_single_device_step():
    devices = _two_cpus()
    x = (np.random.RandomState(0).rand(8, 8, 8, 1) > 0.5).astype(np.float32)
    single = _build()
    start = [w.copy() for w in single.get_weights()]
    single_loss = single.fit(x, batch_size=8, epochs=1, shuffle=False, verbose=0).history["loss"][0]

    strategy = _mirrored(devices)
    with strategy.scope():
        mirrored = _build(start)
    mirrored_loss = mirrored.fit(x, batch_size=8, epochs=1, shuffle=False, verbose=0).history["loss"][0]

    assert mirrored_loss == pytest.approx(single_loss, rel=1e-5)
    moved = 0.0
    for w0, ws, wm in zip(start, single.get_weights(), mirrored.get_weights()):
        np.testing.assert_allclose(wm, ws, rtol=1e-4, atol=1e-6)
        moved = max(moved, np.abs(ws - w0).max())
    assert moved > 1e-3  # the step did change the weights


def test_replicas_draw_distinct_noise():
    devices = _two_cpus()
    strategy = _mirrored(devices)
    with strategy.scope():
        vae = keras_vae.build_vae((8, 8, 1), 3, architecture="mlp", hidden_units=(8,), seed=3)

    @tf.function
    def seeds():
        return strategy.run(vae.noise_seed)

    per_replica = strategy.experimental_local_results(seeds())
    assert len(per_replica) == 2
    assert not np.array_equal(per_replica[0].numpy(), per_replica[1].numpy())
