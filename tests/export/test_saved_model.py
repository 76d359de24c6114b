"""The SavedModel export: signatures (as saved_model_cli and a fresh process see them), layout, configs, warm-up."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.config import model_server_config_pb2

import keras_vae
from keras_vae.export import layout
from keras_vae.export.metadata import read_metadata
from keras_vae.export.saved_model import export_model
from keras_vae.export.signatures import MAX_SAMPLES, SCORE_SAMPLES, SCORE_SEED
from keras_vae.export.warmup import read_warmup

VENV_BIN = os.path.dirname(sys.executable)
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

EXPECTED_SIGNATURES = {
    "serving_default": ({"z": ("DT_FLOAT", "(-1, 4)")}, {"images": ("DT_FLOAT", "(-1, 16, 16, 1)")}),
    "sample": (
        {"num_samples": ("DT_INT32", "()"), "temperature": ("DT_FLOAT", "()"), "seed": ("DT_INT64", "()")},
        {"images": ("DT_FLOAT", "(-1, 16, 16, 1)"), "z": ("DT_FLOAT", "(-1, 4)")},
    ),
    "encode": ({"images": ("DT_FLOAT", "(-1, 16, 16, 1)")}, {"loc": ("DT_FLOAT", "(-1, 4)"), "scale": ("DT_FLOAT", "(-1, 4)")}),
    "reconstruct": ({"images": ("DT_FLOAT", "(-1, 16, 16, 1)")}, {"images": ("DT_FLOAT", "(-1, 16, 16, 1)")}),
    "score": ({"images": ("DT_FLOAT", "(-1, 16, 16, 1)")}, {"score": ("DT_FLOAT", "(-1)")}),
}


def parse_saved_model_cli(text):
    """``{signature: (inputs, outputs, method)}`` from ``saved_model_cli show --all`` output."""
    signatures = {}
    for block in re.split(r"\nsignature_def\['", text)[1:]:
        name = block.split("'", 1)[0]
        inputs_text, _, outputs_text = block.partition("contains the following output(s):")
        tensors = r"(inputs|outputs)\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\([^)]*\)|unknown_rank)"
        inputs = {m[1]: (m[2], m[3]) for m in re.findall(tensors, inputs_text)}
        outputs = {m[1]: (m[2], m[3]) for m in re.findall(tensors, outputs_text)}
        method = re.search(r"Method name is: (\S*)", block)
        signatures[name] = (inputs, outputs, method[1] if method else "")
    return signatures


def test_saved_model_cli_shows_every_signature_with_named_typed_dynamic_batch_tensors(exported):
    result = subprocess.run(
        [os.path.join(VENV_BIN, "saved_model_cli"), "show", "--dir", exported.saved_model_dir, "--all"],
        capture_output=True, text=True, timeout=180, env=ENV,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "MetaGraphDef with tag-set: 'serve'" in result.stdout
    seen = parse_saved_model_cli(result.stdout)
    for name, (inputs, outputs) in EXPECTED_SIGNATURES.items():
        assert name in seen, sorted(seen)
        assert seen[name] == (inputs, outputs, "tensorflow/serving/predict"), name
    assert set(seen) - {"__saved_model_init_op"} == set(EXPECTED_SIGNATURES)


FRESH_PROCESS = """
import sys
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
data = np.load(sys.argv[2])
run = lambda name, **kw: {k: v.numpy() for k, v in loaded.signatures[name](**{a: tf.constant(b) for a, b in kw.items()}).items()}
out = {}
out["decode"] = run("serving_default", z=data["z"])["images"]
for tag, seed in (("a", 7), ("b", 7), ("c", 8)):
    s = run("sample", num_samples=np.int32(6), temperature=np.float32(1.0), seed=np.int64(seed))
    out["sample_images_" + tag], out["sample_z_" + tag] = s["images"], s["z"]
e = run("encode", images=data["images"])
out["loc"], out["scale"] = e["loc"], e["scale"]
out["reconstruct"] = run("reconstruct", images=data["images"])["images"]
out["score"] = run("score", images=data["images"])["score"]
np.savez(sys.argv[3], **out)
"""


def test_a_fresh_process_loads_the_export_and_reproduces_the_keras_model(exported, vae, bar_data, tmp_path):
    images = bar_data[0][:5]
    z = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    np.savez(tmp_path / "inputs.npz", z=z, images=images)
    script = tmp_path / "load.py"
    script.write_text(FRESH_PROCESS)
    result = subprocess.run(
        [sys.executable, str(script), exported.saved_model_dir, str(tmp_path / "inputs.npz"), str(tmp_path / "out.npz")],
        capture_output=True, text=True, timeout=180, env=ENV,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(out["decode"], vae.decode(z).numpy(), atol=1e-5)
    assert out["decode"].min() >= 0 and out["decode"].max() <= 1 and out["decode"].std() > 0.01
    posterior = vae.encode(images)
    np.testing.assert_allclose(out["loc"], posterior.mean().numpy(), atol=1e-5)
    np.testing.assert_allclose(out["scale"], posterior.stddev().numpy(), atol=1e-5)
    np.testing.assert_allclose(out["reconstruct"], vae.reconstruct(images).numpy(), atol=1e-5)
    # Same seed, same images; another seed, other images; z decodes to the returned images.
    np.testing.assert_array_equal(out["sample_images_a"], out["sample_images_b"])
    assert np.abs(out["sample_z_a"] - out["sample_z_c"]).max() > 0.1
    assert out["sample_images_a"].shape == (6, 16, 16, 1)
    np.testing.assert_allclose(out["sample_images_a"], vae.decode(out["sample_z_a"]).numpy(), atol=1e-5)
    assert out["score"].shape == (5,) and np.all(out["score"] > 0)


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported.saved_model_dir)


def test_score_is_a_deterministic_per_image_negative_elbo(loaded, vae, bar_data):
    images = bar_data[0][:8]
    score = loaded.signatures["score"](images=tf.constant(images))["score"].numpy()
    alone = loaded.signatures["score"](images=tf.constant(images[3:4]))["score"].numpy()
    assert alone[0] == pytest.approx(score[3], abs=1e-4)  # does not depend on the rest of the batch
    np.testing.assert_array_equal(score, loaded.signatures["score"](images=tf.constant(images))["score"].numpy())
    # Exactly the Keras model's -ELBO over the same SCORE_SAMPLES seeded posterior draws...
    same_draws = [-vae.log_importance_weights(images[i:i + 1], SCORE_SAMPLES, seed=tf.constant(SCORE_SEED))
                  .numpy().mean() for i in range(len(images))]
    np.testing.assert_allclose(score, same_draws, rtol=1e-5)
    # ...with the expectation of the training metric: within 4 standard errors of a 200-draw average, as is
    # keras_vae.anomaly_scores with 200 draws.
    draws = -vae.log_importance_weights(images, 200, seed=(3, 4)).numpy()  # single-draw -ELBO estimates
    standard_error = draws.std(axis=0) / np.sqrt(SCORE_SAMPLES) + 1e-3
    assert np.all(np.abs(score - draws.mean(axis=0)) < 4 * standard_error)
    many = keras_vae.anomaly_scores(vae, images, "elbo", num_samples=200)
    assert np.all(np.abs(many - draws.mean(axis=0)) < 4 * draws.std(axis=0) / np.sqrt(100) + 1e-3)
    # Anomaly detection: random noise scores far worse than the bars the model was trained on.
    noise = (np.random.default_rng(0).random((4, 16, 16, 1)) > 0.5).astype(np.float32)
    assert loaded.signatures["score"](images=tf.constant(noise))["score"].numpy().min() > score.max() + 50


def _sample(loaded, num_samples, temperature=1.0, seed=0):
    return loaded.signatures["sample"](
        num_samples=tf.constant(num_samples, tf.int32),
        temperature=tf.constant(temperature, tf.float32),
        seed=tf.constant(seed, tf.int64),
    )


def test_sample_is_bounded_and_temperature_scales_the_codes(loaded):
    assert _sample(loaded, MAX_SAMPLES)["images"].shape[0] == MAX_SAMPLES
    for bad, message in ((MAX_SAMPLES + 1, f"num_samples must be <= {MAX_SAMPLES}"), (0, "num_samples must be >= 1")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            _sample(loaded, bad)
    with pytest.raises(tf.errors.InvalidArgumentError, match="temperature must be > 0"):
        _sample(loaded, 4, temperature=0.0)
    cold, warm = _sample(loaded, 4, 0.5, seed=3)["z"].numpy(), _sample(loaded, 4, 1.0, seed=3)["z"].numpy()
    np.testing.assert_allclose(cold, 0.5 * warm, atol=1e-6)


def test_non_finite_codes_and_out_of_range_images_are_rejected_in_the_graph(loaded):
    with pytest.raises(tf.errors.InvalidArgumentError, match="z must be finite"):
        loaded.signatures["serving_default"](z=tf.constant([[np.nan, 0, 0, 0]], tf.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images must be in \[0, 1\]"):
        loaded.signatures["score"](images=tf.fill([1, 16, 16, 1], 255.0))


PY_FUNCS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}


def test_the_graph_uses_only_stock_tensorflow_ops(exported):
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(exported.saved_model_dir, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    graph = saved_model.meta_graphs[0].graph_def
    ops = {node.op for node in graph.node}
    functions = {f.signature.name for f in graph.library.function}
    for function in graph.library.function:
        ops |= {node.op for node in function.node_def}
    ops -= functions  # calls of the graph's own functions
    assert {"MatMul", "Sigmoid", "StatelessRandomNormalV2"} <= ops or {"MatMul", "Sigmoid"} <= ops
    assert not ops & PY_FUNCS
    unknown = sorted(op for op in ops if not hasattr(tf.raw_ops, op))
    assert not unknown, f"ops outside core TensorFlow: {unknown}"


def test_versions_count_up_and_are_never_overwritten_silently(vae, tmp_path):
    first = export_model(vae, base_dir=tmp_path, name="m")
    second = export_model(vae, base_dir=tmp_path, name="m")
    assert (first.version, second.version) == (1, 2)
    assert layout.existing_versions(tmp_path / "m") == [1, 2]
    with pytest.raises(ValueError, match="Version 2 already exists.*--overwrite"):
        export_model(vae, base_dir=tmp_path, name="m", version=2)
    marker = os.path.join(second.saved_model_dir, "old-file")
    open(marker, "w").close()
    replaced = export_model(vae, base_dir=tmp_path, name="m", version=2, overwrite=True)
    assert replaced.saved_model_dir == second.saved_model_dir and not os.path.exists(marker)
    assert export_model(vae, base_dir=tmp_path, name="m", version=10).version == 10
    assert export_model(vae, base_dir=tmp_path, name="m").version == 11
    assert not [e for e in os.listdir(tmp_path / "m") if e.startswith(".")]  # no temporary folders left
    with pytest.raises(ValueError, match="Invalid model name"):
        export_model(vae, base_dir=tmp_path, name="../escape")


def test_a_failed_export_leaves_no_version_behind(vae, tmp_path, monkeypatch):
    import errno

    import keras_vae.export.saved_model as saved_model_module

    def broken_warmup(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(saved_model_module, "write_warmup", broken_warmup)
    with pytest.raises(layout.ExportError, match=r"Could not write the export into '.*m': No space left on device"):
        export_model(vae, base_dir=tmp_path, name="m", tflite=True)
    assert os.listdir(tmp_path) == []  # not even the model folder this export created
    monkeypatch.undo()
    export_model(vae, base_dir=tmp_path, name="m")
    monkeypatch.setattr(saved_model_module, "write_warmup", broken_warmup)
    with pytest.raises(layout.ExportError):
        export_model(vae, base_dir=tmp_path, name="m", tflite=True)
    assert sorted(os.listdir(tmp_path / "m")) == ["1", "batching_parameters.txt", "models.config"]


def test_server_configs_beside_the_versions(exported):
    with open(os.path.join(exported.model_dir, "models.config")) as f:
        config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    (entry,) = config.model_config_list.config
    assert (entry.name, entry.base_path, entry.model_platform) == ("vae", os.path.abspath(exported.model_dir), "tensorflow")
    with open(os.path.join(exported.model_dir, "batching_parameters.txt")) as f:
        lines = [line for line in f.read().splitlines() if line and not line.startswith("#")]
    fields = dict(re.fullmatch(r"(\w+) \{ value: (\d+) \}", line).groups() for line in lines)
    assert set(fields) == {"max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"}
    assert all(int(v) > 0 for v in fields.values())


def test_warmup_records_are_valid_requests_for_the_export(exported, loaded):
    requests = read_warmup(exported.saved_model_dir)
    assert [r.model_spec.signature_name for r in requests] == [
        "serving_default", "serving_default", "encode", "reconstruct", "score"
    ]
    for request in requests:
        assert request.model_spec.name == "vae"
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        outputs = loaded.signatures[request.model_spec.signature_name](**inputs)
        assert all(np.all(np.isfinite(v.numpy())) for v in outputs.values())


def test_metadata_beside_each_export(exported):
    meta = read_metadata(exported.saved_model_dir)
    assert meta["latent_dim"] == 4 and meta["image_shape"] == [16, 16, 1]
    assert (meta["likelihood"], meta["dataset"], meta["version"]) == ("bernoulli", "bars", 1)
    assert meta["condition"] == {"kind": "none", "size": 0} and meta["data_range"] == [0.0, 1.0]
    assert meta["keras_vae_version"] == keras_vae.__version__
    assert set(meta["signatures"]) == set(EXPECTED_SIGNATURES)
    assert meta["max_samples"] == MAX_SAMPLES
    tflite_dir = os.path.dirname(exported.tflite_paths["float32"])
    tflite_meta = read_metadata(tflite_dir)
    assert tflite_meta["variants"] == {v: f"{v}.tflite" for v in ("float32", "float16", "dynamic_range", "int8")}
    assert (tflite_meta["version"], tflite_meta["dataset"], tflite_meta["latent_dim"]) == (1, "bars", 4)


def test_image_checks_follow_the_likelihoods_data_range(tmp_path):
    """Bernoulli models ([0, 1] data) refuse images outside it; Gaussian ones (data_range None) take any finite value."""
    images = tf.fill([1, 8, 8, 1], 2.5)
    for likelihood in ("bernoulli", "gaussian"):
        model = keras_vae.build_vae((8, 8, 1), 2, architecture="mlp", hidden_units=(8,), likelihood=likelihood, seed=0)
        result = export_model(model, base_dir=tmp_path, name=likelihood, with_encoder=True)
        encode = tf.saved_model.load(result.saved_model_dir).signatures["encode"]
        if model.likelihood.data_range is None:
            loc = encode(images=images)["loc"].numpy()
            np.testing.assert_allclose(loc, model.encode(images.numpy()).mean().numpy(), atol=1e-5)
        else:
            with pytest.raises(tf.errors.InvalidArgumentError, match=r"images must be in \[0, 1\]"):
                encode(images=images)
        with pytest.raises(tf.errors.InvalidArgumentError, match="images must be finite"):
            encode(images=tf.fill([1, 8, 8, 1], np.nan))
        assert read_metadata(result.saved_model_dir)["data_range"] == (None if likelihood == "gaussian" else [0.0, 1.0])


def test_served_and_device_images_of_a_gaussian_model_are_clipped_to_the_image_range(tmp_path):
    """A Gaussian mean can leave [0, 1]; the signatures clip it there, while `vae.decode` keeps the raw mean."""
    from keras_vae.export.tflite import TFLiteModel, convert_tflite

    model = keras_vae.build_vae((8, 8, 1), 2, architecture="mlp", hidden_units=(8,), likelihood="gaussian", seed=0)
    bias = [w for w in model.decoder.weights if w.path.endswith("bias")][-1]
    bias.assign(np.tile(np.array([-1.5, 2.5], np.float32), bias.shape[0] // 2))  # means far outside [0, 1]
    z = np.random.default_rng(0).standard_normal((16, 2)).astype(np.float32)
    raw = model.decode(z).numpy()
    assert raw.min() < -0.5 and raw.max() > 1.5  # the Python API returns the unclipped mean
    result = export_model(model, base_dir=tmp_path, name="g", with_encoder=True)
    assert read_metadata(result.saved_model_dir)["image_range"] == [0.0, 1.0]
    signatures = tf.saved_model.load(result.saved_model_dir).signatures
    decoded = signatures["serving_default"](z=tf.constant(z))["images"].numpy()
    np.testing.assert_allclose(decoded, np.clip(raw, 0, 1), atol=1e-6)
    assert decoded.min() == 0 and decoded.max() == 1
    drawn = signatures["sample"](num_samples=tf.constant(16), temperature=tf.constant(1.0),
                                 seed=tf.constant(0, tf.int64))
    np.testing.assert_allclose(drawn["images"].numpy(), np.clip(model.decode(drawn["z"]).numpy(), 0, 1), atol=1e-6)
    images = np.random.default_rng(1).random((4, 8, 8, 1)).astype(np.float32)
    reconstructed = signatures["reconstruct"](images=tf.constant(images))["images"].numpy()
    np.testing.assert_allclose(reconstructed, np.clip(model.reconstruct(images).numpy(), 0, 1), atol=1e-6)

    for variant, path in convert_tflite(model, tmp_path / "tflite", variants=("float32", "int8")).items():
        device = TFLiteModel(path)
        on_device = device.decode(z)
        assert on_device.min() >= 0 and on_device.max() <= 1, variant
        assert np.abs(on_device - np.clip(raw, 0, 1)).mean() <= (1e-6 if variant == "float32" else 0.05), variant
        sampled = device.sample(64, seed=0)["images"]
        assert sampled.min() >= 0 and sampled.max() <= 1 and (sampled == 0).any(), variant
