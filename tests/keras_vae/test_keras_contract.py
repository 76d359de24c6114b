"""The Keras Model contract as a Keras user expects it: predict, export, compile, sample weights, strategies,
mixed precision, non-finite data and data checks."""

import numpy as np
import pytest
import tensorflow as tf

import keras
import keras_vae
from tests.conftest import rectangles


def small_vae(**options):
    return keras_vae.build_vae((28, 28, 1), 4, architecture="mlp", hidden_units=(32,), seed=0, **options)


def finite_weights(model):
    return all(np.all(np.isfinite(keras.ops.convert_to_numpy(w))) for w in model.weights)


def test_predict_returns_reconstructions_in_data_space():
    images = rectangles(32)
    vae = small_vae()
    out = vae.predict(images, batch_size=16, verbose=0)
    assert out.shape == images.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_allclose(out, vae.reconstruct(images).numpy(), atol=1e-5)


def test_predict_of_a_conditional_model_takes_labels():
    cvae = small_vae(variant="cvae", num_classes=3)
    images, labels = rectangles(8), np.arange(8) % 3
    out = cvae.predict((images, labels), verbose=0)
    np.testing.assert_allclose(out, cvae.reconstruct(images, labels).numpy(), atol=1e-5)


def test_keras_export_after_fit_and_after_load(tmp_path):
    images = rectangles(64)
    vae = small_vae()
    vae.compile(optimizer="adam")
    vae.fit(images, epochs=1, batch_size=32, verbose=0)
    vae.export(str(tmp_path / "fitted"), verbose=False)
    vae.save(tmp_path / "vae.keras")
    loaded = keras.saving.load_model(tmp_path / "vae.keras")
    loaded.export(str(tmp_path / "loaded"), verbose=False)
    expected = vae.predict(images[:4], verbose=0)
    for name in ("fitted", "loaded"):
        restored = tf.saved_model.load(str(tmp_path / name))  # kept: its variables live as long as it does
        served = restored.serve(tf.constant(images[:4]))
        np.testing.assert_allclose(np.asarray(served), expected, atol=1e-5)


@pytest.mark.parametrize("argument", ["loss", "metrics", "loss_weights"])
def test_compile_refuses_a_loss_or_metrics(argument):
    vae = small_vae()
    value = {"loss": "mse", "metrics": ["mae"], "loss_weights": [1.0]}[argument]
    with pytest.raises(ValueError, match=f"takes no {argument}="):
        vae.compile(optimizer="adam", **{argument: value})


def test_sample_weight_weighs_the_objective():
    images = rectangles(64)
    vae = small_vae()
    vae.compile(optimizer="adam")
    before = [w.numpy().copy() for w in vae.trainable_weights]
    history = vae.fit(images, sample_weight=np.zeros(64, "float32"), epochs=1, batch_size=32, verbose=0)
    assert history.history["loss"][-1] == 0.0
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, vae.trainable_weights))  # no gradient at all

    weights = np.zeros(64, "float32")
    weights[:16] = 1.0
    weighted = vae.evaluate(images, sample_weight=weights, batch_size=64, return_dict=True, verbose=0)
    first = vae.evaluate(images[:16], batch_size=64, return_dict=True, verbose=0)
    # Same seed stream position differs between the two calls: compare the deterministic parts.
    assert weighted["reconstruction"] == pytest.approx(first["reconstruction"], rel=0.05)
    assert vae.evaluate(images, batch_size=64, return_dict=True, verbose=0)["loss"] > 0


def test_a_replica_left_empty_by_the_last_batch_trains_and_evaluates():
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs two logical CPUs (tests/conftest.py)")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    images = rectangles(129)
    for variant, options in (("vae", {}), ("beta_tcvae", {}), ("ladder", {"lower_latent_dims": (4,)})):
        with strategy.scope():
            vae = small_vae(variant=variant, **options)
            vae.compile(optimizer="adam")
        history = vae.fit(images, epochs=1, batch_size=128, verbose=0)
        assert np.isfinite(history.history["loss"][-1]), variant
        result = vae.evaluate(images, batch_size=128, return_dict=True, verbose=0)
        assert np.isfinite(result["loss"]) and result["loss"] > 0, variant
        assert finite_weights(vae), variant


def test_mixed_float16_reports_skipped_steps_and_the_real_loss():
    images = rectangles(256)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        vae = small_vae()
        vae.compile(optimizer="adam")
        assert isinstance(vae.optimizer, keras.optimizers.LossScaleOptimizer)
        history = vae.fit(images, epochs=1, batch_size=16, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # The initial scale of 2**15 overflows float16 gradients: the first steps are skipped and counted.
    assert history.history["skipped_steps"][-1] >= 1
    loss = history.history["loss"][-1]
    assert np.isfinite(loss) and loss > 100  # the mean over applied steps, not diluted by skipped ones
    assert finite_weights(vae)


def test_nan_in_the_data_never_reaches_the_weights():
    images = rectangles(128)
    images[5, 3, 3, 0] = np.nan
    images[70] = np.inf
    vae = small_vae()
    vae.compile(optimizer="adam")
    with pytest.warns(RuntimeWarning, match="non-finite"):
        history = vae.fit(images, epochs=2, batch_size=32, verbose=0, shuffle=False)
    assert history.history["skipped_steps"] == [2.0, 2.0]
    assert finite_weights(vae)
    assert np.isfinite(history.history["loss"]).all()


def test_the_stop_policy_stops_fit_at_a_nonfinite_step():
    images = rectangles(64)
    images[40] = np.nan
    vae = small_vae()
    vae.compile(optimizer="adam", nonfinite="stop")
    with pytest.raises(keras_vae.NonFiniteLossError, match="batch 2"):
        vae.fit(images, epochs=1, batch_size=32, verbose=0, shuffle=False)
    assert finite_weights(vae)


def colour_blobs(n, size=16, seed=0):
    """Smooth colour images in [0, 1]: a coloured disc on a coloured background."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[:size, :size]
    images = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        cy, cx, r = rng.uniform(4, size - 4), rng.uniform(4, size - 4), rng.uniform(2, 5)
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2 < r**2)[..., None]
        images[i] = np.where(disc, rng.uniform(0, 1, 3), rng.uniform(0, 1, 3))
    return images


def test_a_learned_gaussian_scale_gives_a_usable_model_after_two_epochs():
    images = colour_blobs(512)
    vae = keras_vae.build_vae((16, 16, 3), 8, architecture="mlp", likelihood="gaussian", hidden_units=(128,), seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    vae.fit(images, epochs=2, batch_size=32, verbose=0)
    error = np.mean((vae.reconstruct(images[:256]).numpy() - images[:256]) ** 2)
    baseline = np.mean((images[:256] - images.mean(axis=0)) ** 2)  # the pixel mean
    assert error < 0.8 * baseline


def test_likelihood_scale_fixes_the_gaussian_scale():
    vae = keras_vae.build_vae((16, 16, 3), 4, architecture="mlp", likelihood="gaussian", likelihood_scale=0.1)
    assert not vae.likelihood.trainable_weights
    x = np.full((2, 16, 16, 3), 0.5, np.float32)
    expected = 16 * 16 * 3 * (-np.log(0.1) - 0.5 * np.log(2 * np.pi))
    np.testing.assert_allclose(vae.likelihood.log_prob(x, x).numpy(), [expected, expected], rtol=1e-5)
    with pytest.raises(ValueError, match="likelihood='gaussian'"):
        keras_vae.build_vae((16, 16, 3), 4, likelihood="bernoulli", likelihood_scale=0.1)


def test_bernoulli_data_must_be_floats_in_the_unit_interval():
    vae = small_vae()
    vae.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"must lie in \[0.0, 1.0\].*span \[0, 255\]"):
        vae.fit(rectangles(32) * 255.0, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="integer dtype uint8.*images / 255"):
        vae.fit((rectangles(32) * 255).astype(np.uint8), epochs=1, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices((rectangles(32) * 255).astype(np.uint8)).batch(8)
    with pytest.raises(ValueError, match="integer dtype uint8"):
        vae.fit(dataset, epochs=1, verbose=0)


def test_conditional_data_as_a_dict_or_a_pair():
    images, labels = rectangles(64), np.arange(64) % 4
    cvae = small_vae(variant="cvae", num_classes=4)
    cvae.compile(optimizer="adam")
    pairs = cvae.fit(images, labels, epochs=1, batch_size=32, verbose=0)
    dicts = cvae.fit(tf.data.Dataset.from_tensor_slices({"images": images, "labels": labels}).batch(32),
                     epochs=1, verbose=0)
    assert np.isfinite(pairs.history["loss"][-1]) and np.isfinite(dicts.history["loss"][-1])
    with pytest.raises(ValueError, match=r"conditional \(class labels in \[0, 4\)\): give the labels"):
        cvae.fit(images, epochs=1, batch_size=32, verbose=0)


def test_beta_tcvae_takes_its_dataset_size_from_fit():
    images = rectangles(96)
    vae = small_vae(variant="beta_tcvae")
    assert vae.objective.dataset_size is None
    vae.compile(optimizer="adam")
    vae.fit(images, epochs=1, batch_size=32, verbose=0, validation_split=0.25)
    assert vae.objective.dataset_size == 72
    unsized = small_vae(variant="beta_tcvae")
    unsized.compile(optimizer="adam")
    with pytest.raises(ValueError, match="needs dataset_size"):
        unsized.fit(tf.data.Dataset.from_tensor_slices(images).batch(32), epochs=1, verbose=0)
