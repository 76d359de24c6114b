"""The TFLite variants: they load and run in ai_edge_litert, match the SavedModel, and use builtin ops only."""

import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae
from keras_vae.export import tflite as tflite_module
from keras_vae.export.tflite import VARIANTS, TFLiteModel, convert_tflite, decode_chunks, fixed_batches
from keras_vae.networks import build_networks

# Parity with the SavedModel on fresh random codes, pixels in [0, 1]: (statistic, bound).
PARITY = {"float32": ("max", 1e-5), "float16": ("max", 1e-2), "dynamic_range": ("max", 0.05), "int8": ("mean", 0.05)}


@pytest.fixture(scope="module")
def decode_signature(exported):
    return tf.saved_model.load(exported.saved_model_dir).signatures["serving_default"]


def builtin_ops(path, capfd):
    """``{signature: [op names]}`` of a .tflite file, from TF's model analyzer."""
    capfd.readouterr()
    tf.lite.experimental.Analyzer.analyze(model_path=path)
    text = capfd.readouterr().out
    ops = {}
    for name, body in re.findall(r"Subgraph#\d+ (\w+)\(.*?\n(.*?)\n\n", text, flags=re.S):
        ops[name] = re.findall(r"Op#\d+ (\w+)\(", body)
    return ops


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_runs_both_signatures_and_matches_the_saved_model(variant, exported, decode_signature):
    model = TFLiteModel(exported.tflite_paths[variant])
    assert model.latent_dim == 4 and not model.conditional
    z = np.random.default_rng(42).standard_normal((64, 4)).astype(np.float32)
    images = model.decode(z)
    reference = decode_signature(z=tf.constant(z))["images"].numpy()
    assert images.shape == reference.shape == (64, 16, 16, 1)
    # Finite and varying: weights left as uninitialised variables would give NaN or constants.
    assert np.all(np.isfinite(images)) and images.std(axis=0).mean() > 0.02
    statistic, bound = PARITY[variant]
    difference = getattr(np.abs(images - reference), statistic)()
    assert difference <= bound, (variant, statistic, difference)

    first, second = model.sample(256), model.sample(256)
    assert first["images"].shape == (256, 16, 16, 1) and first["z"].shape == (256, 4)
    assert np.all(np.isfinite(first["images"])) and np.abs(first["z"] - second["z"]).max() > 0.1
    assert abs(first["z"].mean()) < 0.2 and 0.8 < first["z"].std() < 1.2  # N(0, I) prior
    # The sampled images are the decoded z (int8: each signature has its own calibrated quantization).
    again = np.abs(first["images"] - model.decode(first["z"]))
    assert (again.mean() <= 0.05) if variant == "int8" else (again.max() <= 1e-5)


def test_files_embed_the_weights_and_quantization_shrinks_them(exported, vae):
    decoder_weights = vae.decoder.count_params()
    sizes = {v: os.path.getsize(p) for v, p in exported.tflite_paths.items()}
    assert sizes["float32"] > 4 * decoder_weights  # float32 weights are in the flatbuffer, not variables
    assert sizes["float16"] < sizes["float32"] and sizes["dynamic_range"] < sizes["float32"]
    # int8: about a byte per weight, stored once for all the signatures (each signature adds its own
    # quantization parameters, a fixed cost that outweighs the weights of a model this small).
    assert constant_bytes(exported.tflite_paths["int8"]) < 2 * decoder_weights < constant_bytes(exported.tflite_paths["float32"])


def constant_bytes(path):
    """Bytes of constant data (weights) stored in a .tflite file."""
    from tensorflow.lite.tools import flatbuffer_utils

    return sum(len(b.data) for b in flatbuffer_utils.read_model(path).buffers if b.data is not None)


@pytest.mark.parametrize("variant", ["float32", "int8"])
def test_only_builtin_ops_and_on_device_random_sampling(variant, exported, capfd):
    ops = builtin_ops(exported.tflite_paths[variant], capfd)
    assert set(ops) == {"decode", "sample", *fixed_batches()}
    # The seeded generator: integer hash and Box-Muller from builtins, no random op (its seed is fixed at conversion).
    assert {"BITCAST", "BITWISE_XOR", "RIGHT_SHIFT", "LOG", "SQRT", "COS"} <= set(ops["sample"])
    assert not [op for op in ops["sample"] if op.startswith("RANDOM")]
    assert not [op for ops_ in ops.values() for op in ops_ if op.startswith("Flex") or op == "CUSTOM"]
    # The noise computes in int32 and float32 in every file: int8 quantization leaves it alone.
    assert noise_tensor_types(exported.tflite_paths[variant]) == {"INT32", "FLOAT32"}
    if variant == "int8":
        assert "FULLY_CONNECTED" in ops["decode"] and "QUANTIZE" in ops["decode"]


def noise_tensor_types(path):
    """The types of the inputs and outputs of the Box-Muller and hash ops of every ``sample`` signature."""
    from tensorflow.lite.tools import flatbuffer_utils, visualize

    model = flatbuffer_utils.read_model(path)
    codes = {value: name for name, value in vars(visualize.schema_fb.BuiltinOperator).items() if name.isupper()}
    types = {value: name for name, value in vars(visualize.schema_fb.TensorType).items() if name.isupper()}
    found = set()
    for graph in model.subgraphs:
        if graph.name.decode().startswith("sample"):
            for op in graph.operators:
                if codes[max(model.operatorCodes[op.opcodeIndex].builtinCode,
                             model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)] in NOISE_OPS:
                    found |= {types[graph.tensors[i].type] for i in [*op.inputs, *op.outputs] if i >= 0}
    return found


NOISE_OPS = {"LOG", "SQRT", "COS", "BITWISE_XOR", "RIGHT_SHIFT"}


@pytest.fixture(scope="module")
def sample_signature(exported):
    signature = tf.saved_model.load(exported.saved_model_dir).signatures["sample"]
    return lambda n, temperature, seed: {k: v.numpy() for k, v in signature(
        num_samples=tf.constant(n), temperature=tf.constant(temperature), seed=tf.constant(seed, tf.int64)).items()}


# Codes drawn from the same seed on device and by the SavedModel: (statistic of |difference|, bound). The noise
# computes in float32 in every file; int8 quantizes the codes it yields (a step of about 0.04).
SEEDED_CODES = {"float32": ("max", 1e-5), "float16": ("max", 1e-5), "dynamic_range": ("max", 1e-5),
                "int8": ("mean", 0.03)}


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_seed_gives_the_same_images_in_fresh_interpreters_and_the_saved_models(variant, exported, sample_signature):
    from ai_edge_litert.interpreter import Interpreter

    path = exported.tflite_paths[variant]
    first = TFLiteModel(path).sample(64, seed=123)
    runner = Interpreter(model_path=path).get_signature_runner("sample")  # a second interpreter, LiteRT alone
    again = runner(num_samples=np.array(64, np.int32), temperature=np.array(1.0, np.float32), seed=np.array(123))
    np.testing.assert_array_equal(first["images"], again["images"])
    np.testing.assert_array_equal(first["z"], again["z"])
    other = TFLiteModel(path).sample(64, seed=124)
    assert np.abs(first["z"] - other["z"]).mean() > 0.5 and np.abs(first["images"] - other["images"]).max() > 0.1
    assert abs(first["z"].mean()) < 0.3 and 0.7 < first["z"].std() < 1.3

    served = sample_signature(64, 1.0, 123)
    statistic, bound = SEEDED_CODES[variant]
    assert getattr(np.abs(first["z"] - served["z"]), statistic)() <= bound
    statistic, bound = PARITY[variant]
    assert getattr(np.abs(first["images"] - served["images"]), statistic)() <= bound


@pytest.mark.parametrize("variant", ["float32", "int8"])
def test_temperature_scales_the_codes_and_zero_gives_the_mean_image(variant, exported):
    model = TFLiteModel(exported.tflite_paths[variant])
    warm, cold = model.sample(256, seed=5, temperature=1.0), model.sample(256, seed=5, temperature=0.5)
    np.testing.assert_allclose(cold["z"], 0.5 * warm["z"], atol=1e-6 if variant == "float32" else 0.05)
    assert cold["images"].std(axis=0).mean() < 0.9 * warm["images"].std(axis=0).mean()
    frozen = model.sample(8, seed=5, temperature=0.0)
    assert np.all(frozen["z"] == 0)  # the prior's mean code
    mean_image = model.decode(np.zeros([8, 4], np.float32))
    assert np.abs(frozen["images"] - mean_image).max() <= (1e-6 if variant == "float32" else 0.05)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        model.sample(2, temperature=-1.0)
    with pytest.raises(ValueError, match="seed must fit in an int64"):
        model.sample(2, seed=2**70)
    with pytest.raises(ValueError, match="seed must be an integer"):
        model.sample(2, seed=1.5)


def test_draws_beyond_one_chunk_take_seeds_derived_from_the_seed(exported, monkeypatch):
    model = TFLiteModel(exported.tflite_paths["float32"])
    monkeypatch.setattr(tflite_module, "CHUNK_SIZE", 16)
    drawn = model.sample(40, seed=9)["z"]
    np.testing.assert_array_equal(drawn, model.sample(40, seed=9)["z"])
    np.testing.assert_allclose(drawn[:16], model.sample(16, seed=9)["z"], atol=1e-6)  # first chunk: the seed
    assert np.abs(drawn[:16] - drawn[16:32]).min() > 0  # other chunks: other codes


def test_bad_inputs_are_rejected_before_running(exported):
    model = TFLiteModel(exported.tflite_paths["float32"], num_threads=2)
    with pytest.raises(ValueError, match=r"Expected z of shape \(batch >= 1, 4\)"):
        model.decode(np.zeros([2, 5], np.float32))
    with pytest.raises(ValueError, match="must be finite"):
        model.decode(np.full([1, 4], np.inf, np.float32))
    with pytest.raises(ValueError, match="num_samples must be >= 1"):
        model.sample(0)
    with pytest.raises(ValueError, match="not conditional"):
        model.sample(2, labels=[1])
    with pytest.raises(FileNotFoundError):
        TFLiteModel(os.path.join(os.path.dirname(exported.tflite_paths["float32"]), "missing.tflite"))


def test_a_corrupt_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "broken.tflite"
    path.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ValueError, match="not a valid TFLite model"):
        TFLiteModel(path)


def test_mixture_prior_samples_on_device_from_the_mixture(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras_vae.build_vae((8, 8, 1), 2, architecture="mlp", hidden_units=(8,), prior="mixture")
    locs = np.array([[-4.0, 0.0], [4.0, 0.0], [0.0, 4.0]], np.float32)
    model.prior.locs.assign(np.pad(locs, [(0, 7), (0, 0)]))
    model.prior.logits.assign(np.array([0.0, 0.0, 0.0] + [-30.0] * 7, np.float32))  # three live components
    path = convert_tflite(model, tmp_path, variants=("float32",))["float32"]
    z = TFLiteModel(path).sample(3000)["z"]
    nearest = np.argmin(((z[:, None, :] - locs[None]) ** 2).sum(-1), axis=1)
    shares = np.bincount(nearest, minlength=3) / len(z)
    np.testing.assert_allclose(shares, [1 / 3] * 3, atol=0.05)
    spread = z - locs[nearest]
    assert 0.85 < spread.std() < 1.15  # component scales are softplus(0.5413) = 1


def test_large_on_device_draws_run_in_chunks_and_runtime_failures_name_the_file(exported, monkeypatch):
    from keras_vae.export import tflite as tflite_module

    model = TFLiteModel(exported.tflite_paths["float32"])
    monkeypatch.setattr(tflite_module, "CHUNK_SIZE", 64)
    calls = []
    runner = model._sample
    monkeypatch.setattr(model, "_sample", lambda **inputs: calls.append(int(inputs["num_samples"])) or runner(**inputs))
    drawn = model.sample(150)
    assert calls == [64, 64, 22] and drawn["images"].shape == (150, 16, 16, 1) and drawn["z"].shape == (150, 4)

    def failing(**inputs):
        raise RuntimeError("tensorflow/lite/core/subgraph.cc: Failed to allocate memory")

    monkeypatch.setattr(model, "_sample", failing)
    with pytest.raises(ValueError, match=r"The TFLite model '.*float32.tflite' failed to run: .*allocate"):
        model.sample(4)


def test_fixed_batch_signatures_have_static_shapes_and_decode_any_batch_like_the_dynamic_one(exported, capfd):
    path = exported.tflite_paths["float32"]
    ops = builtin_ops(path, capfd)
    assert "SHAPE" in ops["decode"] or "PACK" in ops["decode"] or len(ops["decode"]) >= len(ops["decode_64"])
    assert not {"SHAPE", "PACK"} & set(ops["decode_64"])  # shape arithmetic folded into constants
    model = TFLiteModel(path)
    assert sorted(model._fixed) == [1, 8, 64]
    z = np.random.default_rng(3).standard_normal((75, 4)).astype(np.float32)
    assert decode_chunks(75, model._fixed) == [(0, 64), (64, 8), (72, 1), (73, 1), (74, 1)]
    dynamic = model.interpreter.get_signature_runner("decode")(z=z)["images"]
    np.testing.assert_allclose(model.decode(z), dynamic, atol=1e-5)


def test_files_without_fixed_batch_signatures_still_decode(vae, tmp_path, monkeypatch):
    monkeypatch.setattr(tflite_module, "DECODE_BATCHES", ())
    path = convert_tflite(vae, tmp_path, variants=("float32",))["float32"]
    model = TFLiteModel(path)
    assert model._fixed == {}
    z = np.random.default_rng(4).standard_normal((9, 4)).astype(np.float32)
    np.testing.assert_allclose(model.decode(z), vae.decode(z), atol=1e-5)


@pytest.mark.parametrize("upsampling", ["depth_to_space", "spatial_broadcast", "implicit"])
def test_the_device_decoder_converts_to_depth_to_space_without_transposed_convolutions(tmp_path, capfd, upsampling):
    keras.utils.set_random_seed(0)
    encoder, decoder = build_networks("conv", (16, 16, 1), 4, 4, filters=(8, 16), dense_units=32,
                                      upsampling=upsampling)
    model = keras_vae.VAE(encoder, decoder, 4, seed=0)
    paths = convert_tflite(model, tmp_path, variants=("float32", "int8"))
    z = np.random.default_rng(5).standard_normal((64, 4)).astype(np.float32)
    images = {}
    for variant, path in paths.items():
        ops = builtin_ops(path, capfd)
        used = {op for ops_ in ops.values() for op in ops_}
        assert "DEPTH_TO_SPACE" in used and "TRANSPOSE_CONV" not in used
        assert not [op for op in used if op.startswith("Flex") or op == "CUSTOM"]
        images[variant] = TFLiteModel(path).decode(z)
        assert np.all(np.isfinite(images[variant])) and images[variant].std(axis=0).mean() > 1e-3
    np.testing.assert_allclose(images["float32"], model.decode(z), atol=1e-5)
    assert np.abs(images["int8"] - images["float32"]).mean() <= 0.05


def test_a_model_trained_under_mixed_bfloat16_exports_float32_signatures(tmp_path):
    from keras_vae.precision import float32_compute
    from keras_vae.export.saved_model import export_model

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        encoder, decoder = build_networks("conv", (16, 16, 1), 4, 4, filters=(8, 16), dense_units=32,
                                          upsampling="depth_to_space", convs_per_level=2, coordinate_channels=True)
        model = keras_vae.VAE(encoder, decoder, 4, seed=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    z = np.random.default_rng(6).standard_normal((8, 4)).astype(np.float32)
    assert model.decoder.layers[-2].compute_dtype == "bfloat16"
    result = export_model(model, base_dir=str(tmp_path), name="bf16", tflite=True)
    assert model.decoder.layers[-2].compute_dtype == "bfloat16"  # the model's own policies are back
    with float32_compute(model):
        expected = np.asarray(model.decode(z))
    assert np.abs(expected - np.asarray(model.decode(z), np.float32)).max() > 1e-4  # bfloat16 differs from float32
    served = tf.saved_model.load(result.saved_model_dir).signatures["serving_default"](z=tf.constant(z))
    np.testing.assert_allclose(served["images"].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(TFLiteModel(result.tflite_paths["float32"]).decode(z), expected, atol=1e-5)


def test_files_whose_sample_takes_no_seed_still_sample_and_refuse_a_seed(vae, tmp_path):
    """Files exported before seeded sampling: ``sample`` takes ``num_samples`` alone (on-device random ops)."""
    from keras_vae.export.archive import write_archive
    from keras_vae.export.signatures import NUM_SAMPLES_SPEC
    from keras_vae.priors import BuiltinNoise

    def decode(z):
        return {"images": vae.decode(z)}

    def sample(num_samples):
        z = vae.prior.draw(num_samples, 1.0, BuiltinNoise())
        return {"images": vae.decode(z), "z": z}

    source = tmp_path / "source"
    write_archive(vae, [("decode", decode, [tf.TensorSpec([None, 4], tf.float32, name="z")]),
                        ("sample", sample, [NUM_SAMPLES_SPEC])], source)
    path = tmp_path / "old.tflite"
    converter = tf.lite.TFLiteConverter.from_saved_model(str(source), signature_keys=["decode", "sample"])
    path.write_bytes(converter.convert())
    model = TFLiteModel(path)
    assert not model.seeded
    drawn = model.sample(5)
    assert drawn["images"].shape == (5, 16, 16, 1) and np.all(np.isfinite(drawn["z"]))
    with pytest.raises(ValueError, match="predates seeded sampling"):
        model.sample(5, seed=1)
