"""`FusedAdam`: Keras' Adam arithmetic in one fused kernel per variable, on one device, under MirroredStrategy,
under XLA, and through a .keras round trip."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae


def _images(n=256, seed=0):
    return (np.random.default_rng(seed).random((n, 8, 8, 1)) > 0.5).astype("float32")


def _vae():
    keras.utils.set_random_seed(0)
    return keras_vae.build_vae((8, 8, 1), 3, "mlp", hidden_units=(16,), seed=0)


def _weights(model):
    return [np.asarray(w) for w in model.weights]


def _max_diff(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def _fit(optimizer, epochs=2, **compile_args):
    vae = _vae()
    start = _weights(vae)
    vae.compile(optimizer=optimizer, **compile_args)
    vae.fit(_images(), batch_size=32, epochs=epochs, shuffle=False, verbose=0)
    return vae, start


@pytest.mark.parametrize("options", [{}, {"amsgrad": True}, {"clipnorm": 0.5}], ids=["plain", "amsgrad", "clipnorm"])
def test_fused_adam_takes_the_same_steps_as_keras_adam(options):
    keras_adam, start = _fit(keras.optimizers.Adam(3e-3, **options))
    fused, _ = _fit(keras_vae.FusedAdam(3e-3, **options))
    assert _max_diff(_weights(keras_adam), start) > 1e-2  # 16 steps moved the weights
    assert _max_diff(_weights(fused), _weights(keras_adam)) < 1e-5
    assert int(fused.optimizer.iterations) == int(keras_adam.optimizer.iterations) == 16


def test_fused_adam_under_xla_matches_keras_adam():
    keras_adam, _ = _fit(keras.optimizers.Adam(3e-3), jit_compile=True)  # XLA draws other noise than TF
    fused, _ = _fit(keras_vae.FusedAdam(3e-3), jit_compile=True)
    assert _max_diff(_weights(fused), _weights(keras_adam)) < 1e-4


def _mirrored_fit(optimizer_class):
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) < 2:
        pytest.skip("needs two logical CPUs (configured in tests/conftest.py before TF starts)")
    strategy = tf.distribute.MirroredStrategy([d.name for d in cpus[:2]])
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
        model.compile(optimizer=optimizer_class(1e-2), loss="mse")
    x = np.random.default_rng(1).normal(size=(128, 4)).astype("float32")
    model.fit(x, x.sum(-1, keepdims=True), batch_size=32, epochs=2, shuffle=False, verbose=0)
    return model


def test_fused_adam_under_mirrored_strategy_matches_keras_adam():
    keras_adam = _mirrored_fit(keras.optimizers.Adam)
    fused = _mirrored_fit(keras_vae.FusedAdam)
    assert _max_diff(_weights(fused), _weights(keras_adam)) < 1e-5
    # every replica's copy took the update: the mirrored values agree
    for variable in fused.optimizer.variables:
        copies = [np.asarray(v) for v in getattr(variable.value, "values", [variable.value])]
        assert all(np.array_equal(copies[0], c) for c in copies[1:])


def _regression_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer=keras_vae.FusedAdam(1e-2), loss="mse")
    return model


def _regression_fit(model, seed):
    x = np.random.default_rng(seed).normal(size=(128, 4)).astype("float32")
    model.fit(x, x.sum(-1, keepdims=True), batch_size=32, epochs=1, shuffle=False, verbose=0)


def test_fused_adam_state_survives_a_keras_round_trip(tmp_path):
    model = _regression_model()
    _regression_fit(model, seed=1)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.optimizer) is keras_vae.FusedAdam
    assert int(loaded.optimizer.iterations) == 4
    for model_ in (model, loaded):  # the same next epoch from the restored moments
        _regression_fit(model_, seed=2)
    assert _max_diff(_weights(loaded), _weights(model)) < 1e-6
    fresh = _regression_model()  # without the moments the next epoch goes elsewhere
    fresh.set_weights(keras.saving.load_model(path).get_weights())
    _regression_fit(fresh, seed=2)
    assert _max_diff(_weights(fresh), _weights(model)) > 1e-4


def test_a_vae_keeps_fused_adam_inside_its_guard(tmp_path):
    vae, _ = _fit(keras_vae.FusedAdam(3e-3), epochs=1)
    path = str(tmp_path / "vae.keras")
    vae.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, keras_vae.NonFiniteSkipping)
    assert isinstance(loaded.optimizer.inner_optimizer, keras_vae.FusedAdam)
    assert _max_diff([np.asarray(v) for v in loaded.optimizer.variables],
                     [np.asarray(v) for v in vae.optimizer.variables]) == 0


@pytest.mark.parametrize("values, want", [
    ([1.0, 2.0], True),
    ([3e38, 3e38, -1.0], True),  # the sum overflows to inf, every element is finite
    ([1.0, float("nan")], False),
    ([float("inf"), 1.0], False),
    ([float("inf"), float("-inf")], False),  # the sum is NaN
    ([-3e38, float("-inf")], False),
])
def test_all_finite_is_exact_in_and_out_of_a_graph(values, want):
    from keras_vae.optimizers import all_finite

    tensors = [tf.constant([[0.5]]), tf.constant(values), None]
    assert bool(all_finite(tensors)) is want
    assert bool(tf.function(all_finite)(tensors)) is want


def test_non_finite_skipping_applies_a_finite_step_unchanged_and_skips_a_non_finite_one():
    # The skipping wrapper around SGD(1.0) must move a variable exactly as SGD alone does (no scaling left in
    # the path), and leave it and the step count alone when a gradient is not finite.
    variable = keras.Variable([1.0, 2.0])
    optimizer = keras_vae.NonFiniteSkipping(keras.optimizers.SGD(1.0))
    optimizer.apply_gradients([(tf.constant([0.25, -0.5]), variable)])
    np.testing.assert_array_equal(variable.numpy(), [0.75, 2.5])
    assert int(optimizer.iterations) == 1
    optimizer.apply_gradients([(tf.constant([0.25, float("nan")]), variable)])
    np.testing.assert_array_equal(variable.numpy(), [0.75, 2.5])
    assert int(optimizer.iterations) == 1
    assert float(optimizer.scale_loss(tf.constant(3.0))) == 3.0


def test_non_finite_skipping_takes_the_callers_verdict_in_and_out_of_a_graph():
    # The verdict alone decides: a finite gradient with verdict False is skipped (the gradients are not tested
    # again), and the next plain apply tests the gradients itself once more.
    variable = keras.Variable([1.0, 2.0])
    optimizer = keras_vae.NonFiniteSkipping(keras.optimizers.SGD(1.0))
    grad = tf.constant([0.25, -0.5])
    optimizer.apply_with_verdict([grad], [variable], tf.constant(False))
    np.testing.assert_array_equal(variable.numpy(), [1.0, 2.0])
    assert int(optimizer.iterations) == 0

    @tf.function
    def step(g, verdict):
        optimizer.apply_with_verdict([g], [variable], verdict)

    step(grad, tf.constant(True))
    np.testing.assert_array_equal(variable.numpy(), [0.75, 2.5])
    step(grad, tf.constant(False))
    np.testing.assert_array_equal(variable.numpy(), [0.75, 2.5])
    assert int(optimizer.iterations) == 1
    optimizer.apply_gradients([(tf.constant([float("inf"), 0.0]), variable)])
    np.testing.assert_array_equal(variable.numpy(), [0.75, 2.5])


def test_non_finite_skipping_refuses_a_verdict_under_several_replicas():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        variable = keras.Variable([1.0])
        optimizer = keras_vae.NonFiniteSkipping(keras.optimizers.SGD(1.0))
        optimizer.build([variable])

    def step():
        optimizer.apply_with_verdict([tf.constant([1.0])], [variable], tf.constant(True))

    with pytest.raises(ValueError, match="one replica"):
        strategy.run(tf.function(step))
