"""FactorVAE and VAE-GAN: both optimizers step in one train_step, both networks and optimizers survive a .keras
round trip, training works under MirroredStrategy, a non-finite discriminator skips the step, and both export."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae
from tests.conftest import rectangles

SMALL = {
    "factor_vae": dict(architecture="mlp", hidden_units=[32], gamma=6.0, discriminator_units=[16]),
    "vae_gan": dict(architecture="conv", filters=[8], dense_units=16, discriminator_filters=[8]),
}


def _build(variant, seed=0):
    keras.utils.set_random_seed(seed)
    options = dict(SMALL[variant])
    vae = keras_vae.build_vae((16, 16, 1), 3, options.pop("architecture"), variant=variant, seed=seed, **options)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3), adversary_optimizer=keras.optimizers.Adam(1e-3))
    return vae


@pytest.fixture(scope="module")
def images():
    return rectangles(64, size=16, seed=2)


def _weights(variables):
    return [np.array(v) for v in variables]


def _moved(before, variables):
    return any(not np.array_equal(b, np.array(v)) for b, v in zip(before, variables))


@pytest.mark.parametrize("variant", ["factor_vae", "vae_gan"])
def test_one_train_step_moves_the_model_and_the_discriminator(variant, images):
    vae = _build(variant)
    model_before = _weights(vae.model_variables())
    disc_before = _weights(vae.adversary.trainable_variables)
    logs = vae.train_on_batch(images[:32], return_dict=True)
    assert _moved(model_before, vae.model_variables()) and _moved(disc_before, vae.adversary.trainable_variables)
    assert int(vae.optimizer.iterations) == 1 and int(vae.adversary_optimizer.iterations) == 1
    assert np.isfinite(logs["discriminator_loss"]) and logs["skipped_steps"] == 0
    assert not {id(v) for v in vae.model_variables()} & {id(v) for v in vae.adversary.trainable_variables}


@pytest.mark.parametrize("variant", ["factor_vae", "vae_gan"])
def test_keras_round_trip_keeps_both_networks_and_both_optimizers(variant, images, tmp_path):
    vae = _build(variant)
    vae.fit(images, epochs=1, batch_size=16, verbose=0)
    path = str(tmp_path / f"{variant}.keras")
    vae.save(path)
    loaded = keras_vae.load_vae(path)
    assert type(loaded.adversary) is type(vae.adversary)
    for a, b in zip(loaded.adversary.weights, vae.adversary.weights):
        np.testing.assert_array_equal(a, b)
    assert int(loaded.optimizer.iterations) == int(vae.optimizer.iterations) == 4
    assert int(loaded.adversary_optimizer.iterations) == int(vae.adversary_optimizer.iterations) == 4
    for a, b in zip(loaded.adversary_optimizer.variables, vae.adversary_optimizer.variables):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(loaded.sample(4, seed=1), vae.sample(4, seed=1), atol=1e-6)
    loaded.fit(images, epochs=1, batch_size=16, verbose=0)  # training continues from the restored state
    assert int(loaded.adversary_optimizer.iterations) == 8


def test_factor_vae_trains_under_mirrored_strategy(images):
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs the two logical CPUs tests/conftest.py sets up")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        vae = _build("factor_vae")
    disc_before = _weights(vae.adversary.trainable_variables)
    history = vae.fit(images, epochs=1, batch_size=16, verbose=0)
    assert int(np.array(vae.adversary_optimizer.iterations)) == 4
    assert _moved(disc_before, vae.adversary.trainable_variables)
    assert np.isfinite(history.history["loss"][-1]) and np.isfinite(history.history["tc"][-1])
    assert all(np.all(np.isfinite(v)) for v in vae.weights)


def test_a_discriminator_with_non_finite_output_skips_the_step(images):
    vae = _build("factor_vae")
    first, last = (layer for layer in vae.adversary.discriminator.layers if isinstance(layer, keras.layers.Dense))
    # Finite weights whose product overflows: every logit is +-inf (the codes are never all exactly 0).
    first.kernel.assign(np.full(first.kernel.shape, 1e30, np.float32))
    last.kernel.assign(np.full(last.kernel.shape, 1e30, np.float32))
    before = _weights(vae.weights)
    logs = vae.train_on_batch(images[:32], return_dict=True)
    assert logs["skipped_steps"] == 1
    for b, v in zip(before, vae.weights):
        if v.trainable:
            np.testing.assert_array_equal(b, np.array(v))
    assert all(np.all(np.isfinite(v)) for v in vae.weights)


@pytest.mark.parametrize("variant", ["factor_vae", "vae_gan"])
def test_exports_through_export_model_and_the_saved_model_decodes(variant, images, tmp_path):
    from keras_vae.export.saved_model import export_model

    vae = _build(variant)
    vae.fit(images, epochs=1, batch_size=32, verbose=0)
    result = export_model(vae, base_dir=str(tmp_path), name=variant, version=1)
    loaded = tf.saved_model.load(result.saved_model_dir)
    z = np.random.default_rng(0).normal(size=(3, 3)).astype("float32")
    decoded = loaded.signatures["serving_default"](z=tf.constant(z))["images"].numpy()
    np.testing.assert_allclose(decoded, vae.decode(z).numpy(), atol=1e-5)
