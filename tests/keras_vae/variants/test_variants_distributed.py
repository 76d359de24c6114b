"""The variants train under MirroredStrategy over two logical CPUs (configured in tests/conftest.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae

CASES = {
    "beta_tcvae": {"dataset_size": 64},  # the MWS statistic runs per replica, over the local batch
    "cvae": {"num_classes": 2},
    "ladder": {"lower_latent_dims": (4,), "ladder_units": 8},
    "iaf": {"num_flows": 2, "flow_units": (8,)},
}


@pytest.mark.parametrize("variant", list(CASES))
def test_variant_fits_under_mirrored_strategy(variant, small_images):
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) < 2:
        pytest.skip("needs two logical CPUs (configured in tests/conftest.py before TF starts)")
    # Reduction through one device, not collective ops: a second MirroredStrategy in one process reuses
    # collective instance keys, and its all-reduces then fail on the first one's tensor shapes.
    strategy = tf.distribute.MirroredStrategy([d.name for d in cpus[:2]],
                                              cross_device_ops=tf.distribute.ReductionToOneDevice())
    with strategy.scope():
        model = keras_vae.build_vae((14, 14, 1), 2, architecture="mlp", hidden_units=(8,), variant=variant,
                                    seed=0, **CASES[variant])
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
    data = (small_images[:32], np.arange(32) % 2) if variant == "cvae" else (small_images[:32],)
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(*data, batch_size=16, epochs=2, verbose=0).history
    assert all(np.all(np.isfinite(v)) for v in history.values()), history
    assert history["elbo"][-1] > history["elbo"][0]
    moved = max(np.abs(w.numpy() - b).max() for w, b in zip(model.trainable_weights, before))
    assert moved > 1e-3
