"""TFLite (LiteRT) models for on-device generation, in four variants, and a runner for them.

Variants (``VARIANTS``): ``float32``; ``float16`` (float16 weights); ``dynamic_range`` (int8 weights,
float activations); ``int8`` (full integer quantization of weights and activations, calibrated on
codes drawn from the prior; float32 inputs and outputs; for conditional models the label's ONE_HOT
stays float, working around a quantizer bug). Each has the signatures ``decode``
(``z`` -> ``images``) and ``sample`` (``num_samples`` -> ``images``, ``z``), using builtin ops only
(no Flex ops, which the pip LiteRT runtime cannot run).

They are converted with ``tf.lite.TFLiteConverter.from_saved_model`` from a SavedModel written by
`keras.export.ExportArchive`, whose variables the converter freezes into constants; `convert_tflite`
then runs each file and refuses to write one whose outputs are not finite.

Example:

>>> paths = convert_tflite(vae, "saved_models/vae/tflite/1")
>>> model = TFLiteModel(paths["int8"], num_threads=2)
>>> model.sample(16)["images"].shape
(16, 28, 28, 1)
"""

import os
import tempfile
import warnings

import numpy as np

VARIANTS = ("float32", "float16", "dynamic_range", "int8")
SIGNATURES = ("decode", "sample")
CALIBRATION_BATCHES = 16
CALIBRATION_BATCH_SIZE = 32


def _representative_dataset(model):
    """Calibration inputs for full-integer quantization: codes drawn from the prior, fixed seeds."""
    conditional = bool(getattr(model, "conditional", False))
    rng = np.random.default_rng(0)

    def batches():
        for i in range(CALIBRATION_BATCHES):
            z = model.prior.sample(CALIBRATION_BATCH_SIZE, temperature=1.0, seed=(i, 17))
            inputs = {"z": np.asarray(z, np.float32)}
            if conditional:
                inputs["label"] = rng.integers(0, model.num_classes, CALIBRATION_BATCH_SIZE).astype(np.int32)
            yield "decode", inputs
            sample_inputs = {"num_samples": np.array(CALIBRATION_BATCH_SIZE, np.int32)}
            if conditional:
                sample_inputs["label"] = inputs["label"]
            yield "sample", sample_inputs

    return batches


def _convert(saved_model_dir, variant, model):
    """The flatbuffer of one variant, converted from the SavedModel at ``saved_model_dir``."""
    import tensorflow as tf

    from keras_vae.export.signatures import is_conditional

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=list(SIGNATURES))
    if variant == "float32":
        return converter.convert()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        converter.representative_dataset = _representative_dataset(model)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if is_conditional(model):
            # TF 2.21's quantizer gives ONE_HOT (the label encoding) an int8 output whose scale differs
            # from its on/off values', corrupting the label; that one op stays float.
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter,
                debug_dataset=converter.representative_dataset,
                debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=["ONE_HOT"]),
            )
            return debugger.get_nondebug_quantized_model()
    elif variant != "dynamic_range":
        raise ValueError(f"Unknown TFLite variant {variant!r}; expected one of {VARIANTS}.")
    return converter.convert()


def convert_tflite(model, out_dir, variants=VARIANTS):
    """Writes ``out_dir/<variant>.tflite`` for each variant; returns ``{variant: path}``."""
    from keras_vae.export.saved_model import write_archive
    from keras_vae.export.signatures import tflite_endpoints

    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"Unknown TFLite variants {unknown}; expected some of {list(VARIANTS)}.")
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    with tempfile.TemporaryDirectory(prefix="keras-vae-tflite-") as source:
        write_archive(model, tflite_endpoints(model), source)
        for variant in variants:
            with warnings.catch_warnings():
                # int8 calibration runs TF's own deprecated interpreter internally.
                warnings.filterwarnings("ignore", message=".*lite.Interpreter is deprecated")
                flatbuffer = _convert(source, variant, model)
            path = os.path.join(out_dir, f"{variant}.tflite")
            with open(path, "wb") as f:
                f.write(flatbuffer)
            _check_runs(path, model)
            paths[variant] = path
    return paths


def _check_runs(path, model):
    # Weights left as variables convert "fine" and then produce NaN: never ship such a file.
    runner = TFLiteModel(path)
    z = np.asarray(model.prior.sample(4, temperature=1.0, seed=(0, 1)), np.float32)
    labels = np.zeros([4], np.int32) if runner.conditional else None
    images = runner.decode(z, labels)
    if not np.all(np.isfinite(images)):
        raise ValueError(f"{path!r} produces non-finite images: the conversion is broken, not writing it.")


class TFLiteModel:
    """Runs an exported ``.tflite`` VAE with ``ai_edge_litert``: ``decode(z)`` and ``sample(n)``.

    Inputs are checked here (shape, finiteness, label range), since TFLite models carry no checks.
    """

    def __init__(self, path, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No TFLite file at {path!r}.")
        try:
            self.interpreter = Interpreter(model_path=path, num_threads=num_threads)
        except ValueError as err:
            raise ValueError(f"{path!r} is not a valid TFLite model: {err}") from err
        signatures = self.interpreter.get_signature_list()
        missing = [s for s in SIGNATURES if s not in signatures]
        if missing:
            raise ValueError(f"{path!r} lacks the signatures {missing}: was it written by `keras-vae export --tflite`?")
        self.path = path
        self._decode = self.interpreter.get_signature_runner("decode")
        self._sample = self.interpreter.get_signature_runner("sample")
        z_details = self._decode.get_input_details()["z"]
        self.latent_dim = int(z_details["shape_signature"][-1])
        self.conditional = "label" in signatures["decode"]["inputs"]

    def decode(self, z, labels=None):
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim or z.shape[0] < 1:
            raise ValueError(f"Expected z of shape (batch >= 1, {self.latent_dim}), got {z.shape}.")
        if not np.all(np.isfinite(z)):
            raise ValueError("z must be finite (it contains NaN or Inf).")
        return self._decode(**{"z": z, **self._label_inputs(labels, z.shape[0])})["images"]

    def sample(self, num_samples, labels=None):
        """``{"images", "z"}`` for ``num_samples`` codes drawn on device (not reproducible: no seed)."""
        num_samples = int(num_samples)
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
        return self._sample(num_samples=np.array(num_samples, np.int32), **self._label_inputs(labels, num_samples))

    def _label_inputs(self, labels, count):
        if not self.conditional:
            if labels is not None:
                raise ValueError("This model is not conditional: it takes no labels.")
            return {}
        if labels is None:
            raise ValueError("This model is conditional: pass labels (one per example, or one for all).")
        labels = np.broadcast_to(np.asarray(labels, np.int32).reshape(-1), [count]).copy()
        if labels.min() < 0:
            raise ValueError(f"labels must be >= 0, got {labels.min()}.")
        return {"label": labels}
