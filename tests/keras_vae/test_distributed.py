"""Training under MirroredStrategy over two logical CPUs (configured in tests/conftest.py): the step matches
the single-device step, replicas draw distinct noise, and every variant trains."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae
from keras_vae import VAE


@keras.saving.register_keras_serializable(package="keras_vae_tests")
class FixedNoiseVAE(VAE):
    """A deterministic 'sample' per example, z = mean + 0.5 * stddev, so both runs see the same latent draws."""

    def top_layer(self, loc, scale, seed):
        layer = super().top_layer(loc, scale, seed)
        z = loc + 0.5 * scale
        return layer._replace(z=z, log_q=layer.q.log_prob(z), log_p=self.prior.log_prob(z))


def _two_cpus():
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) < 2:
        pytest.skip("needs two logical CPUs (configured in tests/conftest.py before TF starts)")
    return [d.name for d in cpus[:2]]


def _mirrored(devices):
    # Reduction through one device, not collective ops: a second MirroredStrategy in one process reuses
    # collective instance keys, and its all-reduces then fail on the first one's tensor shapes.
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
    mirrored_history = mirrored.fit(x, batch_size=8, epochs=1, shuffle=False, verbose=0).history

    assert mirrored_history["loss"][0] == pytest.approx(single_loss, rel=1e-5)
    assert mirrored_history["skipped_steps"] == [0.0]
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


def test_a_non_finite_batch_on_one_replica_is_skipped_on_every_replica():
    devices = _two_cpus()
    x = (np.random.RandomState(0).rand(16, 8, 8, 1) > 0.5).astype(np.float32)
    x[1, 0, 0, 0] = np.nan  # the first replica's half of the first batch
    strategy = _mirrored(devices)
    with strategy.scope():
        vae = keras_vae.build_vae((8, 8, 1), 2, architecture="mlp", hidden_units=(8,), likelihood="gaussian",
                                  seed=0)
        vae.compile(optimizer=keras.optimizers.SGD(0.01))
    with pytest.warns(RuntimeWarning):
        history = vae.fit(x, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    assert history["skipped_steps"] == [1.0] and np.isfinite(history["loss"][0])
    assert all(np.all(np.isfinite(w.numpy())) for w in vae.weights)


VARIANTS = {
    "beta_vae": {"beta": 2.0},
    "beta_tcvae": {"dataset_size": 64},  # the MWS statistic runs per replica, over the local batch
    "cvae": {"num_classes": 2},
    "ladder": {"lower_latent_dims": (4,), "ladder_units": 8},
    "iaf": {"num_flows": 2, "flow_units": (8,)},
    "vae": {"iw_train_samples": 3},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_fits_under_mirrored_strategy(variant, small_images):
    strategy = _mirrored(_two_cpus())
    with strategy.scope():
        model = keras_vae.build_vae((14, 14, 1), 2, architecture="mlp", hidden_units=(8,), variant=variant,
                                    seed=0, **VARIANTS[variant])
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
    data = (small_images[:32], np.arange(32) % 2) if variant == "cvae" else (small_images[:32],)
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(*data, batch_size=16, epochs=2, verbose=0).history
    assert all(np.all(np.isfinite(v)) for v in history.values()), history
    assert history["elbo"][-1] > history["elbo"][0]
    moved = max(np.abs(w.numpy() - b).max() for w, b in zip(model.trainable_weights, before))
    assert moved > 1e-3


@pytest.mark.parametrize("make_strategy", [lambda: tf.distribute.OneDeviceStrategy("/cpu:0"),
                                           lambda: tf.distribute.MirroredStrategy(["/cpu:0"])],
                         ids=["one_device", "mirrored_one_replica"])
def test_a_non_finite_batch_is_skipped_under_a_one_replica_strategy(make_strategy):
    # One replica takes the verdict path (NonFiniteSkipping.apply_with_verdict), which these strategies run
    # through the loss-scale optimizer's merge call.
    images = (np.random.default_rng(0).random((128, 28, 28, 1)) > 0.5).astype("float32")
    strategy = make_strategy()
    with strategy.scope():
        vae = keras_vae.build_vae((28, 28, 1), 4, architecture="mlp", hidden_units=[32], seed=0)
        vae.compile(optimizer=keras_vae.FusedAdam(1e-3))
    vae.fit(tf.data.Dataset.from_tensor_slices(images).batch(64), epochs=1, verbose=0)
    before = [v.numpy().copy() for v in vae.trainable_variables]
    assert int(vae.optimizer.iterations.numpy()) == 2
    nan_batches = tf.data.Dataset.from_tensor_slices(images).batch(64).map(lambda b: b * float("nan"))
    with pytest.warns(RuntimeWarning, match="skipped"):
        history = vae.fit(nan_batches, epochs=1, verbose=0)
    assert history.history["skipped_steps"] == [2.0]
    assert int(vae.optimizer.iterations.numpy()) == 2
    for old, new in zip(before, vae.trainable_variables):
        np.testing.assert_array_equal(old, new.numpy())
