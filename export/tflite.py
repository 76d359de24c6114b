"""TFLite (LiteRT) models for on-device generation, in four variants, and a runner for them.

Variants (``VARIANTS``): ``float32``; ``float16`` (float16 weights); ``dynamic_range`` (int8 weights,
float activations); ``int8`` (full integer quantization of weights and activations, calibrated on
codes drawn from the prior; float32 inputs and outputs; for class-conditional models the label's ONE_HOT
stays float, working around a quantizer bug, and so does the seeded noise; label vectors are calibrated on
[0, 1)). Each has the signatures ``decode`` (``z`` -> ``images``) and ``sample`` (``num_samples``,
``temperature``, ``seed`` -> ``images``, ``z``: the same seed, the same codes as the SavedModel's ``sample``,
see `export.device_noise`), plus a ``label`` input for conditional models (as in `export.signatures`), using
builtin ops only (no Flex ops, which the pip LiteRT runtime cannot run). ``decode_1``, ``decode_8`` and
``decode_64`` (`DECODE_BATCHES`) decode exactly that many codes with static shapes: on device, call the one that fits
(`TFLiteModel.decode` splits any batch into them, see `decode_chunks`) and allocate its tensors once.

They are converted with ``tf.lite.TFLiteConverter.from_saved_model`` from a SavedModel written by
`keras.export.ExportArchive`, whose variables the converter freezes into constants; `convert_tflite`
then runs each file and refuses to write one whose outputs are not finite.

Example:

>>> paths = convert_tflite(vae, "saved_models/vae/tflite/1")
>>> model = TFLiteModel(paths["int8"], num_threads=2)
>>> model.sample(16, seed=0, temperature=0.8)["images"].shape
(16, 28, 28, 1)
"""

import os
import secrets
import tempfile
import warnings

import numpy as np

from keras_vae.export.labels import condition_of_input, label_batch, placeholder_labels

VARIANTS = ("float32", "float16", "dynamic_range", "int8")
SIGNATURES = ("decode", "sample")
CALIBRATION_BATCHES = 16
CALIBRATION_BATCH_SIZE = 32
CHUNK_SIZE = 1024  # samples per on-device `sample` call
# The int8 file's `sample` signatures are calibrated at these temperatures: hotter draws saturate there (the
# temperature input and the codes' quantization range stop at the largest).
CALIBRATION_TEMPERATURES = (1.0, 0.5, 1.5)
# Batch sizes of the fixed-batch signatures ``decode_<b>``: static shapes, so XNNPACK runs every op (with a
# dynamic batch, TRANSPOSE_CONV's computed output shape keeps it on the slow builtin kernel) and the
# interpreter never resizes or reallocates. `TFLiteModel.decode` splits any batch into these.
DECODE_BATCHES = (1, 8, 64)


def fixed_batch_signature(batch):
    """The name of the signature decoding exactly ``batch`` codes: ``decode_64`` for 64."""
    return f"decode_{int(batch)}"


def fixed_batches(batches=None):
    """``{signature name: batch}`` of the fixed-batch decode signatures (default `DECODE_BATCHES`)."""
    return {fixed_batch_signature(b): int(b) for b in (DECODE_BATCHES if batches is None else batches)}


def _calibration_labels(condition, rng, count=CALIBRATION_BATCH_SIZE):
    # Class indices over every class; label vectors over [0, 1) (their range is the data's, unknown here).
    if condition.kind == "class":
        return rng.integers(0, condition.size, count).astype(np.int32)
    return rng.random((count, condition.size)).astype(np.float32)


def _representative_dataset(model, decode_batches):
    """Calibration inputs for full-integer quantization: codes drawn from the prior, fixed seeds.

    Every signature sees as many codes (``CALIBRATION_BATCHES * CALIBRATION_BATCH_SIZE``), so the fixed-batch
    ``decode_<b>`` signatures get the same activation ranges as ``decode``.
    """
    condition = model.condition
    rng = np.random.default_rng(0)
    total = CALIBRATION_BATCHES * CALIBRATION_BATCH_SIZE

    def codes(count, i):
        return np.asarray(model.prior.sample(count, temperature=1.0, seed=(i, 17)), np.float32)

    def labels(count):
        return {"label": _calibration_labels(condition, rng, count)} if condition else {}

    from keras_vae.export.signatures import sample_signature, sampler_names
    from keras_vae.progress import progress_bar

    samplings = [sample_signature(name) for name in sampler_names(model)]

    def batches():
        bar = progress_bar(CALIBRATION_BATCHES * (1 + len(samplings)) + sum(total // b for b in decode_batches.values()),
                           unit="calibration batch")
        for i in range(CALIBRATION_BATCHES):
            yield "decode", {"z": codes(CALIBRATION_BATCH_SIZE, i), **labels(CALIBRATION_BATCH_SIZE)}
            for signature in samplings:  # sample, and sample_<name> for each ex-post sampler
                yield signature, {"num_samples": np.array(CALIBRATION_BATCH_SIZE, np.int32),
                                  "temperature": np.array(CALIBRATION_TEMPERATURES[i % len(CALIBRATION_TEMPERATURES)],
                                                          np.float32),
                                  "seed": np.array(i, np.int64),
                                  **labels(CALIBRATION_BATCH_SIZE)}
            bar.add(1 + len(samplings))
        for name, batch in decode_batches.items():
            all_codes = codes(total, 1000 + batch)
            for start in range(0, total - batch + 1, batch):
                yield name, {"z": all_codes[start:start + batch], **labels(batch)}
                bar.add(1)

    return batches


def _convert(saved_model_dir, variant, model, decode_batches):
    """The flatbuffer of one variant, converted from the SavedModel at ``saved_model_dir``."""
    import tensorflow as tf

    from keras_vae.export.signatures import sample_signature, sampler_names

    # decode, sample (the prior), one sample_<name> per ex-post sampler, the fixed-batch decodes
    keys = [SIGNATURES[0], *[sample_signature(n) for n in sampler_names(model)], *decode_batches]
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=keys)
    if variant == "float32":
        return converter.convert()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        converter.representative_dataset = _representative_dataset(model, decode_batches)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # TF 2.21's quantizer gives ONE_HOT (the class label encoding) an int8 output whose scale differs
        # from its on/off values', corrupting the label; that one op stays float.
        return _full_integer(converter, ["ONE_HOT"] if model.condition.kind == "class" else [])
    elif variant != "dynamic_range":
        raise ValueError(f"Unknown TFLite variant {variant!r}; expected one of {VARIANTS}.")
    return converter.convert()


def _full_integer(converter, denylisted_ops):
    """The int8 flatbuffer, with the seeded noise (`export.device_noise`) left in float32.

    Quantized, its uniforms would be rounded to 256 levels before the LOG of Box-Muller; only the codes it
    yields are quantized, as a decoded code is. The noise's ops are found by their name scope in the
    calibrated model, then kept out of quantization with the converter's debugger (its public denylist).
    """
    import tensorflow as tf
    from tensorflow.lite.tools import flatbuffer_utils

    from keras_vae.export.device_noise import SCOPE

    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter,
                                                         debug_dataset=converter.representative_dataset)
    calibrated = flatbuffer_utils.convert_bytearray_to_object(bytearray(debugger.calibrated_model))
    noise = sorted({name for subgraph in calibrated.subgraphs for tensor in subgraph.tensors
                    for name in [tensor.name.decode()] if SCOPE in name})
    if noise or denylisted_ops:
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=denylisted_ops or None,
                                                                         denylisted_nodes=noise or None)
    return debugger.get_nondebug_quantized_model()


def convert_tflite(model, out_dir, variants=VARIANTS):
    """Writes ``out_dir/<variant>.tflite`` for each variant; returns ``{variant: path}``."""
    from keras_vae.export.archive import write_archive
    from keras_vae.export.signatures import tflite_endpoints

    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"Unknown TFLite variants {unknown}; expected some of {list(VARIANTS)}.")
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    # The intermediate SavedModel sits in out_dir: same disk as the result, and gone with a discarded stage.
    decode_batches = fixed_batches()
    with tempfile.TemporaryDirectory(prefix=".source-", dir=out_dir) as source:
        write_archive(model, tflite_endpoints(model, decode_batches), source)
        for variant in variants:
            with warnings.catch_warnings():
                # int8 calibration runs TF's own deprecated interpreter internally.
                warnings.filterwarnings("ignore", message=".*lite.Interpreter is deprecated")
                flatbuffer = _convert(source, variant, model, decode_batches)
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
    labels = placeholder_labels(model.condition, 4) if model.condition else None
    images = runner.decode(z, labels)
    drawn = runner.sample(4, labels=labels, seed=0)["images"]
    if not (np.all(np.isfinite(images)) and np.all(np.isfinite(drawn))):
        raise ValueError(f"{path!r} produces non-finite images: the conversion is broken, not writing it.")


def _fixed_batch_signatures(signature_names):
    """``{name: batch}`` of the fixed-batch decode signatures among ``signature_names``."""
    prefix = fixed_batch_signature(0)[:-1]
    return {name: int(name[len(prefix):]) for name in signature_names
            if name.startswith(prefix) and name[len(prefix):].isdigit()}


def decode_chunks(count, batches):
    """``[(start, size), ...]`` covering ``count`` codes with the largest fixed ``batches`` that fit, in order.

    What no fixed batch covers (none given, or a remainder below the smallest) is one last chunk for the
    dynamic ``decode`` signature.

    >>> decode_chunks(75, (1, 8, 64))
    [(0, 64), (64, 8), (72, 1), (73, 1), (74, 1)]
    """
    chunks, start = [], 0
    for batch in sorted(batches, reverse=True):
        while count - start >= batch:
            chunks.append((start, batch))
            start += batch
    return chunks + ([(start, count - start)] if start < count else [])


def fresh_seed():
    """A random non-negative int64 seed, for a draw nobody asked to repeat."""
    return secrets.randbits(63)


def checked_seed(seed):
    """``seed`` as a Python int in the int64 range the ``sample`` signatures take; ValueError naming it otherwise."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}.")
    if not -(1 << 63) <= int(seed) < 1 << 63:
        raise ValueError(f"seed must fit in an int64 (-2**63 .. 2**63 - 1), got {seed}.")
    return int(seed)


def chunk_seed(seed, index):
    """The seed of chunk ``index`` of a draw from ``seed``: ``seed`` itself for the first, a hash for the others."""
    if index == 0:
        return seed
    words = np.random.SeedSequence([seed & ((1 << 64) - 1), index]).generate_state(2, np.uint32)
    return int(words.view(np.int64)[0])


class TFLiteModel:
    """Runs an exported ``.tflite`` VAE with ``ai_edge_litert``: ``decode(z)`` and ``sample(n)``.

    Inputs are checked here (shape, finiteness, labels), since TFLite models carry no checks. A
    conditional model (``self.condition`` not None) takes ``labels``: one for all examples, or one each.

    >>> TFLiteModel("saved_models/cvae/tflite/1/float32.tflite").sample(4, labels=3)["images"].shape
    (4, 28, 28, 1)
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
        # Files written before the fixed-batch signatures have none: everything then goes through `decode`.
        self._fixed = {batch: self.interpreter.get_signature_runner(name)
                       for name, batch in _fixed_batch_signatures(signatures).items()}
        inputs = self._decode.get_input_details()
        self.latent_dim = int(inputs["z"]["shape_signature"][-1])
        label = inputs.get("label")
        self.condition = None if label is None else condition_of_input(label["dtype"], label["shape_signature"])

    @property
    def seeded(self):
        """Whether the ``sample`` signatures take ``seed`` and ``temperature`` (False for a file whose ``sample``
        takes ``num_samples`` alone, drawn with unseeded random ops)."""
        return "seed" in self.interpreter.get_signature_list()["sample"]["inputs"]

    @property
    def conditional(self):
        return self.condition is not None

    def decode(self, z, labels=None):
        """Images for codes ``z`` ``[batch, latent_dim]``, run through the fixed-batch signatures (`decode_chunks`)."""
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim or z.shape[0] < 1:
            raise ValueError(f"Expected z of shape (batch >= 1, {self.latent_dim}), got {z.shape}.")
        if not np.all(np.isfinite(z)):
            raise ValueError("z must be finite (it contains NaN or Inf).")
        labels = self._label_inputs(labels, z.shape[0])
        if z.shape[0] in self._fixed:  # the common case, without the chunking's per-call cost
            return self._run(self._fixed[z.shape[0]], z=z, **labels)["images"]
        parts = []
        for start, batch in decode_chunks(z.shape[0], self._fixed):
            runner = self._fixed.get(batch, self._decode)
            inputs = {name: value[start:start + batch] for name, value in (("z", z), *labels.items())}
            parts.append(self._run(runner, **inputs)["images"])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def sample(self, num_samples, labels=None, seed=None, temperature=1.0, sampler="prior"):
        """``{"images", "z"}`` for ``num_samples`` codes drawn on device from ``sampler`` ("prior" or an ex-post one).

        The same ``seed`` (an int64) gives the same draws here, in any other variant of the export (within its
        precision) and in the SavedModel's ``sample``; None draws a fresh one. ``temperature`` >= 0 scales the
        spread (0: the sampler's mean codes). Drawn in chunks of `CHUNK_SIZE`, so the interpreter's buffers stay
        small for any ``num_samples``; chunks after the first draw with seeds derived from ``seed``.
        """
        num_samples = int(num_samples)
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
        temperature = float(temperature)
        if not (np.isfinite(temperature) and temperature >= 0):
            raise ValueError(f"temperature must be >= 0 and finite, got {temperature}.")
        name, runner = self._sampler(sampler)
        seeded = "seed" in self.interpreter.get_signature_list()[name]["inputs"]
        if not seeded and (seed is not None or temperature != 1.0):
            raise ValueError(f"{self.path!r} predates seeded sampling (its sample signatures take no seed or "
                             "temperature): export it again.")
        seed = fresh_seed() if seed is None else checked_seed(seed)
        labels = self._label_inputs(labels, num_samples).get("label")
        chunks = []
        for index, start in enumerate(range(0, num_samples, CHUNK_SIZE)):
            count = min(CHUNK_SIZE, num_samples - start)
            inputs = {"num_samples": np.array(count, np.int32)}
            if seeded:
                inputs.update(seed=np.array(chunk_seed(seed, index), np.int64),
                              temperature=np.array(temperature, np.float32))
            if labels is not None:
                inputs["label"] = labels[start : start + count]
            chunks.append(self._run(runner, **inputs))
        return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in ("images", "z")}

    def _sampler(self, sampler):
        """``(signature name, runner)`` sampling with ``sampler``."""
        from keras_vae.export.signatures import sample_signature

        name = sample_signature(sampler)
        if sampler == "prior":
            return name, self._sample
        if name not in self.interpreter.get_signature_list():
            raise ValueError(f"{self.path!r} has no sampler {sampler!r} (no {name!r} signature).")
        return name, self.interpreter.get_signature_runner(name)

    def _run(self, runner, **inputs):
        try:
            return runner(**inputs)
        except RuntimeError as err:  # e.g. a buffer the runtime cannot allocate: say which model failed
            raise ValueError(f"The TFLite model {self.path!r} failed to run: {err}") from None

    def _label_inputs(self, labels, count):
        if self.condition is None:
            if labels is not None:
                raise ValueError("This model is not conditional: it takes no labels.")
            return {}
        return {"label": label_batch(self.condition, labels, count)}
