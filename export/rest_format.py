"""TF Serving's REST JSON format for predict, from both sides (client requests, server responses).

Request: ``{"signature_name"?: str, "instances": [...]}`` (row format: one list entry per example;
entries are plain values for a one-input signature, or ``{input_name: value}`` objects) or
``{"signature_name"?: str, "inputs": value | {input_name: value}}`` (columnar format: whole tensors).
Response: ``{"predictions": ...}`` for row requests, ``{"outputs": ...}`` for columnar ones; a
signature with one output drops its name. Errors: ``{"error": "<message>"}``.

This module writes request bodies and reads responses (the client side), and writes responses as
TF Serving does (the server side): float32 outputs in their shortest form that reads back as the
same float32, ``NaN``/``Infinity``/``-Infinity`` as bare tokens, ``*_bytes`` string outputs as
``{"b64": ...}``. Parsing a request into tensors is `keras_vae.export.rest_request`'s job, JSON text
and error messages `keras_vae.export.rest_json`'s; their public names import from here too.

Example:

>>> body = predict_body({"z": np.zeros([2, 8])})          # {"instances": [{"z": [...]}, {"z": [...]}]}
>>> predict_body({"num_samples": 4, "temperature": 1.0, "seed": 0}, "sample", columnar=True)
>>> outputs_from_response({"predictions": [[0.5], [0.25]]})
array([[0.5 ], [0.25]])
>>> dumps(predict_response({"p": np.float32([0.1, 1 / 3])}, columnar=True))
'{"outputs":[0.1,0.33333334]}'
"""

import base64

import numpy as np

from keras_vae.export.rest_json import HTTP_STATUS, ServingError, debug_string, dumps, json_type, loads
from keras_vae.export.rest_request import (
    COLUMNAR_KEY,
    DEFAULT_SIGNATURE,
    ROW_KEY,
    SIGNATURE_KEY,
    InputSpec,
    parse_predict_body,
    request_tensors,
    tensor_from_json,
)

__all__ = [
    "COLUMNAR_KEY", "DEFAULT_SIGNATURE", "HTTP_STATUS", "ROW_KEY", "SIGNATURE_KEY", "InputSpec", "ServingError",
    "debug_string", "dumps", "json_type", "loads", "outputs_from_response", "parse_predict_body", "predict_body",
    "predict_response", "request_tensors", "shortest_float32", "tensor_from_json",
]


# ----------------------------------------------------------------------------- client side
def _as_list(value):
    return np.asarray(value).tolist()


def predict_body(inputs, signature_name=None, columnar=False):
    """A predict request body: ``inputs`` is one array-like (one-input signatures) or ``{name: array-like}``.

    Row format (default) splits every input along its first dimension, so all must share it; use
    ``columnar=True`` for scalar inputs such as those of the ``sample`` signature.
    """
    body = {}
    if signature_name:
        body[SIGNATURE_KEY] = signature_name
    if columnar:
        body[COLUMNAR_KEY] = {k: _as_list(v) for k, v in inputs.items()} if isinstance(inputs, dict) else _as_list(inputs)
        return body
    if not isinstance(inputs, dict):
        body[ROW_KEY] = _as_list(inputs)
        return body
    arrays = {k: np.asarray(v) for k, v in inputs.items()}
    sizes = {k: (a.shape[0] if a.ndim else None) for k, a in arrays.items()}
    if None in sizes.values() or len(set(sizes.values())) != 1:
        raise ValueError(
            f"Row format needs every input to share its first dimension, got sizes {sizes}; "
            "use columnar=True for scalar inputs."
        )
    count = next(iter(sizes.values()))
    body[ROW_KEY] = [{k: a[i].tolist() for k, a in arrays.items()} for i in range(count)]
    return body


def outputs_from_response(body):
    """Arrays from a predict response: one array (single-output signatures) or ``{name: array}``."""
    if not isinstance(body, dict):
        raise ServingError(f"Expected a JSON object in the response, got {type(body).__name__}.", "INTERNAL")
    if "error" in body:
        raise ServingError(str(body["error"]))
    if "predictions" in body:
        rows = body["predictions"]
        if rows and isinstance(rows[0], dict):
            return {k: np.asarray([row[k] for row in rows]) for k in rows[0]}
        return np.asarray(rows)
    if "outputs" in body:
        outputs = body["outputs"]
        return {k: np.asarray(v) for k, v in outputs.items()} if isinstance(outputs, dict) else np.asarray(outputs)
    raise ServingError(f"The response has neither 'predictions' nor 'outputs': keys {sorted(body)}.", "INTERNAL")


# ----------------------------------------------------------------------------- server side: responses
def _round_to_digits(values, shift):
    """``values`` rounded to ``shift`` decimal places (negative: to tens, hundreds, ...), powers of ten exact."""
    scale = 10.0 ** np.minimum(np.abs(shift), 22)
    return np.where(shift >= 0, np.round(values * scale) / scale, np.round(values / scale) * scale)


def shortest_float32(array):
    """float64 values whose shortest repr is the shortest decimal that reads back as each float32.

    JSON then carries ``0.1`` for float32(0.1) instead of ``0.10000000149011612``.

    >>> shortest_float32(np.float32([0.1, 1 / 3])).tolist()
    [0.1, 0.33333334]
    """
    values = np.asarray(array, np.float32)
    exact = values.astype(np.float64).ravel()
    out = exact.copy()
    index = np.flatnonzero(np.isfinite(exact) & (exact != 0))
    targets, doubles = values.ravel()[index], exact[index]
    exponents = np.floor(np.log10(np.abs(doubles))).astype(np.int64)
    pending = np.arange(len(index))
    for digits in range(1, 10):  # 9 significant digits always suffice for float32
        shift = digits - 1 - exponents[pending]
        candidates = _round_to_digits(doubles[pending], shift)
        with np.errstate(over="ignore"):
            ok = (candidates.astype(np.float32) == targets[pending]) & (np.abs(shift) <= 22)
        out[index[pending[ok]]] = candidates[ok]
        pending = pending[~ok]
        if not len(pending):
            break
    for p in pending:  # magnitudes beyond 1e+-22: numpy's shortest repr through text
        out[index[p]] = float(str(targets[p]))
    return out.reshape(values.shape)


def _json_values(name, array):
    """An output array as JSON-ready lists, the way TF Serving writes each dtype."""
    array = np.asarray(array)
    if array.dtype == np.float32 or array.dtype == np.float16:
        return shortest_float32(array).tolist()
    if array.dtype.kind in "OS":
        as_b64 = name.endswith("_bytes")  # TF Serving's convention for binary string outputs

        def text(v):
            v = v if isinstance(v, bytes) else str(v).encode()
            return {"b64": base64.b64encode(v).decode()} if as_b64 else v.decode("utf-8", "replace")

        return np.vectorize(text, otypes=[object])(array).tolist() if array.size else array.tolist()
    return array.tolist()


def predict_response(outputs, columnar):
    """The response body for ``outputs`` ({name: array}) in the request's format."""
    names = sorted(outputs)
    values = {name: _json_values(name, outputs[name]) for name in names}
    if columnar:
        return {"outputs": values[names[0]] if len(names) == 1 else values}
    batch = None
    for name in names:
        shape = np.shape(outputs[name])
        if not shape:
            raise ServingError(f"Tensor name: {name} has no shape information ")
        if batch is not None and shape[0] != batch:
            raise ServingError(f"Tensor name: {name} has inconsistent batch size: {shape[0]} expecting: {batch}")
        batch = shape[0]
    if len(names) == 1:
        return {"predictions": values[names[0]]}
    return {"predictions": [{name: values[name][i] for name in names} for i in range(batch)]}
