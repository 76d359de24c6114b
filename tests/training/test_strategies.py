"""Strategy selection by name, mixed precision and XLA through real (tiny) training runs."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_vae.training import strategies
from keras_vae.training.config import load_config
from keras_vae.training.train import train


@pytest.fixture(autouse=True)
def float32_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_named_strategies(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("TPU_NAME", raising=False)
    assert strategies.make_strategy("default") is tf.distribute.get_strategy()
    assert strategies.make_strategy("auto") is tf.distribute.get_strategy()  # no TPU, cluster or GPUs here
    assert isinstance(strategies.make_strategy("one_device"), tf.distribute.OneDeviceStrategy)
    mirrored = strategies.make_strategy("mirrored")
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert mirrored.num_replicas_in_sync == len(tf.config.list_logical_devices("CPU"))
    assert strategies.is_chief(mirrored)
    with pytest.raises(ValueError, match="no TPU found"):
        strategies.make_strategy("tpu")
    with pytest.raises(ValueError, match="Unknown strategy 'gpu'"):
        strategies.make_strategy("gpu")


def test_bad_tf_config_is_reported(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        strategies.make_strategy("auto")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1"]}}))
    with pytest.raises(ValueError, match="no 'task'"):
        strategies.make_strategy("multi_worker")


def _tiny(tmp_path, **values):
    return load_config(None, {
        "dataset": "sprites", "architecture": "mlp", "latent_dim": 2, "model_options": {"hidden_units": [8]},
        "batch_size": 8, "epochs": 1, "steps_per_epoch": 4, "validation_steps": 1, "image_grid_size": 4,
        "verbose": 0, "run_dir": str(tmp_path / "run"), **values,
    })


@pytest.mark.parametrize("precision, strategy", [("mixed_bfloat16", "mirrored"), ("mixed_float16", "default")])
def test_mixed_precision_training(tmp_path, precision, strategy):
    model, metrics = train(_tiny(tmp_path, precision=precision, strategy=strategy))
    assert model.distribute_strategy.num_replicas_in_sync == (len(tf.config.list_logical_devices("CPU"))
                                                              if strategy == "mirrored" else 1)
    assert model.dtype_policy.name == precision
    assert all(w.dtype == "float32" for w in model.trainable_weights)  # float32 master weights
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    assert np.isfinite(metrics["final"]["val_elbo"])
    scale = float(model.optimizer.dynamic_scale.numpy())
    if precision == "mixed_float16":
        assert scale > 1.0  # dynamic loss scaling, as Keras sets up for float16
    else:
        assert scale == 1.0


@pytest.mark.parametrize("flags, native", [("fpu avx512f amx_bf16 amx_tile", True), ("fpu avx512f avx512_bf16", True),
                                           ("fpu avx2 avx512f", False)])
def test_auto_precision_is_bfloat16_only_on_a_cpu_that_multiplies_it_natively(tmp_path, monkeypatch, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n")
    assert strategies.cpu_has_native_bfloat16(str(cpuinfo)) is native
    assert strategies.cpu_has_native_bfloat16(str(tmp_path / "missing")) is False
    monkeypatch.setattr(strategies, "cpu_has_native_bfloat16", lambda: native)
    expected = "mixed_bfloat16" if native else "float32"
    assert strategies.set_precision("auto") == expected == keras.mixed_precision.global_policy().name
    assert strategies.resolve_precision("mixed_float16") == "mixed_float16"
    with pytest.raises(ValueError, match="Unknown precision 'bfloat16'"):
        strategies.resolve_precision("bfloat16")


def test_a_run_with_auto_precision_records_the_policy_and_evaluates_in_float32(tmp_path, monkeypatch):
    monkeypatch.setattr(strategies, "cpu_has_native_bfloat16", lambda: True)
    from keras_vae.precision import float32_compute
    from keras_vae.training.data import get_dataset
    from keras_vae.training.evaluate import evaluate_model

    config = _tiny(tmp_path, precision="auto", eval_iw_samples=4, eval_max_examples=32)
    model, metrics = train(config)
    assert model.dtype_policy.name == metrics["precision"] == "mixed_bfloat16"
    assert model.decoder.compute_dtype == "bfloat16"  # evaluation's float32 did not stay in the model

    def nll():
        data = get_dataset(config.dataset, config.eval_split, batch_size=config.eval_batch_size)
        return evaluate_model(model, data, iw_samples=4, max_examples=32, seed=config.seed)["nll"]

    with float32_compute(model):
        in_float32 = nll()
    assert metrics["evaluation"]["nll"] == pytest.approx(in_float32, abs=1e-4)
    assert abs(nll() - in_float32) > 1e-4  # the same evaluation in bfloat16 differs


def test_jit_compile(tmp_path):
    model, metrics = train(_tiny(tmp_path, strategy="default", jit_compile=True))
    assert model.jit_compile is True
    assert int(model.optimizer.iterations.numpy()) == 4
    assert np.isfinite(metrics["final"]["val_elbo"])


def test_jit_compile_over_several_local_devices_is_refused(tmp_path):
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs two logical CPUs (configured in tests/conftest.py)")
    with pytest.raises(ValueError, match="jit_compile with MirroredStrategy over 2 devices is not supported"):
        train(_tiny(tmp_path, strategy="mirrored", jit_compile=True))


def test_mirrored_strategies_one_after_another_in_one_process_each_train():
    # TF caches collective all-reduces per key for the whole process; without fresh keys the second strategy's
    # differently shaped all-reduce fails with "Shape mismatch in the collective instance".
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs two logical CPUs (configured in tests/conftest.py)")
    x = np.random.RandomState(0).rand(32, 6).astype(np.float32)
    for width in (4, 96):
        strategy = strategies.make_strategy("mirrored")
        assert strategy.num_replicas_in_sync == 2
        with strategy.scope():
            model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(width), keras.layers.Dense(6)])
            model.compile(optimizer="adam", loss="mse")
        history = model.fit(x, x, epochs=1, batch_size=8, verbose=0)
        assert np.isfinite(history.history["loss"][-1])


def test_jit_compile_for_a_conv_model_on_cpu_is_refused_before_anything_is_written(tmp_path):
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("the refusal is for machines without GPU or TPU")
    config = _tiny(tmp_path, strategy="default", jit_compile=True, architecture="conv",
                   model_options={"filters": [4, 8], "dense_units": 8})
    with pytest.raises(ValueError, match="jit_compile with architecture 'conv' on a machine without a GPU"):
        train(config)
    assert not (tmp_path / "run").exists()
