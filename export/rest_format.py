"""TF Serving's REST JSON format for predict, from both sides (client requests, server responses).

Request: ``{"signature_name"?: str, "instances": [...]}`` (row format: one list entry per example;
entries are plain values for a one-input signature, or ``{input_name: value}`` objects) or
``{"signature_name"?: str, "inputs": value | {input_name: value}}`` (columnar format: whole tensors).
Response: ``{"predictions": ...}`` for row requests, ``{"outputs": ...}`` for columnar ones; a
signature with one output drops its name. Errors: ``{"error": "<message>"}``. ``NaN``, ``Infinity``
and ``-Infinity`` are accepted and written as bare tokens, as TF Serving does.

Example:

>>> body = predict_body({"z": np.zeros([2, 8])})          # {"instances": [{"z": [...]}, {"z": [...]}]}
>>> predict_body({"num_samples": 4, "temperature": 1.0, "seed": 0}, "sample", columnar=True)
>>> outputs_from_response({"predictions": [[0.5], [0.25]]})
array([[0.5 ], [0.25]])
"""

import collections
import json

import numpy as np

SIGNATURE_KEY = "signature_name"
ROW_KEY = "instances"
COLUMNAR_KEY = "inputs"
REQUEST_KEYS = (SIGNATURE_KEY, ROW_KEY, COLUMNAR_KEY)

InputSpec = collections.namedtuple("InputSpec", ["dtype", "shape"])  # numpy dtype, shape tuple (None = any size)

# Canonical error codes -> HTTP status, as TF Serving's HTTP server maps them.
HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "NOT_FOUND": 404,
    "PAYLOAD_TOO_LARGE": 413,  # the local server bounds request bodies; TF Serving has no such code
    "LENGTH_REQUIRED": 411,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "UNKNOWN": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
}


class ServingError(Exception):
    """An error answered as ``{"error": message}``: ``code`` is the canonical code, ``http_status`` its HTTP status."""

    def __init__(self, message, code="INVALID_ARGUMENT", http_status=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status or HTTP_STATUS.get(code, 500)

    def __str__(self):
        return f"{self.message} (HTTP {self.http_status})"


def dumps(obj):
    """JSON text with NaN/Infinity written as bare tokens (TF Serving's convention)."""
    return json.dumps(obj, allow_nan=True, separators=(",", ":"))


def loads(text):
    """Parses a JSON document; NaN/Infinity tokens are accepted. Raises ServingError on malformed JSON."""
    if not text:
        raise ServingError("JSON Parse error: The document is empty")
    try:
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ServingError(f"JSON Parse error: {err}") from None


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


# ----------------------------------------------------------------------------- server side
def _contains_bool(value):
    if isinstance(value, bool):
        return True
    return isinstance(value, list) and any(_contains_bool(v) for v in value)


_KIND_NAMES = {"f": "floats", "b": "booleans", "U": "strings", "S": "strings", "O": "null, objects, mixed values or out-of-range integers"}


def _array(value, dtype, name, check_bools):
    """``value`` as a dense numpy array of ``dtype``, with TF Serving's type rules (no bools, strings, nulls)."""
    wanted = np.dtype(dtype)
    try:
        array = np.asarray(value)
    except ValueError:
        raise ServingError(f"Input '{name}': the JSON values are not a dense (rectangular) array.") from None
    kind = array.dtype.kind
    if kind == "O" and _contains_b64(value):
        raise ServingError(
            f'Input \'{name}\': binary {{"b64": ...}} values are for string inputs; it takes {wanted.name} numbers.'
        )
    accepted = {"b": "b", "f": "fiu"}.get(wanted.kind, "iu")
    # numpy turns [1.5, true] into floats: look for booleans when the body had any.
    mixed_bools = kind in "fiu" and wanted.kind != "b" and check_bools and _contains_bool(value)
    if kind not in accepted or mixed_bools:
        found = "booleans mixed with numbers" if mixed_bools else _KIND_NAMES.get(kind, array.dtype.name)
        raise ServingError(f"Input '{name}': expected {wanted.name} values, got {found}.")
    if wanted.kind in "iu" and array.size:
        info = np.iinfo(wanted)
        if array.min() < info.min or array.max() > info.max:
            raise ServingError(f"Input '{name}': values out of range for {wanted.name}.")
    with np.errstate(over="ignore"):
        converted = array.astype(wanted)
    if wanted.kind == "f" and np.any(np.isinf(converted) & np.isfinite(array)):
        raise ServingError(f"Input '{name}': values too large for {wanted.name} (they would become Infinity).")
    return converted


def _is_named(item):
    """An object of named inputs, as opposed to a value (TF Serving counts {"b64": "..."} as a value)."""
    return isinstance(item, dict) and not _is_b64(item)


def _is_b64(value):
    return isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str)


def _contains_b64(value):
    return _is_b64(value) or (isinstance(value, list) and any(_contains_b64(v) for v in value))


def _row_tensors(instances, specs, check_bools):
    if not isinstance(instances, list):
        raise ServingError("Excepting 'instances' to be an list/array")
    if not instances:
        raise ServingError("No values in 'instances' array")
    names = sorted(specs)
    objects = _is_named(instances[0])
    if not objects and len(names) > 1:
        raise ServingError(
            "instances is a plain list, but expecting list of objects as multiple input tensors required "
            f"as per tensorinfo_map ({', '.join(names)})"
        )
    columns = {name: [] for name in names}
    for i, item in enumerate(instances):
        if _is_named(item) != objects:
            raise ServingError(f"Item {i} of 'instances': every item must be an object, or none may be.")
        if not objects:
            columns[names[0]].append(item)
            continue
        if set(item) != set(names):
            raise ServingError(
                f"Failed to process element: {i} of 'instances' list. JSON object keys {sorted(item)} "
                f"must be equal to: {','.join(names)}"
            )
        for name in names:
            columns[name].append(item[name])
    return {name: _array(columns[name], specs[name].dtype, name, check_bools) for name in names}


def _columnar_tensors(inputs, specs, check_bools):
    names = sorted(specs)
    if not _is_named(inputs):
        if len(names) > 1:
            raise ServingError(
                "inputs is a plain value/list, but expecting an object as multiple input tensors required "
                f"as per tensorinfo_map ({', '.join(names)})"
            )
        return {names[0]: _array(inputs, specs[names[0]].dtype, names[0], check_bools)}
    unknown = sorted(set(inputs) - set(names))
    if unknown:
        raise ServingError(f"Unknown named input(s) {unknown} in 'inputs' object; expected: {','.join(names)}")
    for name in names:
        if name not in inputs:
            raise ServingError(f"Missing named input: {name} in 'inputs' object.")
    return {name: _array(inputs[name], specs[name].dtype, name, check_bools) for name in names}


def _shape_text(shape):
    return "[" + ", ".join("batch" if d is None else str(d) for d in shape) + "]"


def _check_shapes(tensors, specs, signature_name, columnar, max_batch_size):
    batch_sizes = {}
    for name, array in tensors.items():
        shape = specs[name].shape
        if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)):
            hint = "" if columnar or len(shape) else " (scalar inputs need the columnar 'inputs' format)"
            raise ServingError(
                f"Input '{name}' of signature '{signature_name}' must have shape {_shape_text(shape)}, "
                f"got {list(array.shape)}{hint}."
            )
        if len(shape) and shape[0] is None:
            batch_sizes[name] = array.shape[0]
    if len(set(batch_sizes.values())) > 1:
        raise ServingError(f"Inputs must share their batch size, got {batch_sizes}.")
    for size in set(batch_sizes.values()):
        if size == 0:
            raise ServingError("Empty batch: send at least one example.")
        if size > max_batch_size:
            raise ServingError(f"Batch size {size} exceeds this server's maximum of {max_batch_size}.")


def request_tensors(body, specs, signature_name, max_batch_size, check_bools=True):
    """Input arrays from a parsed predict body, checked against ``specs`` ({name: InputSpec}).

    ``check_bools=False`` skips the (slow) search for booleans mixed into numeric lists; pass it
    only when the raw body has no ``true``/``false`` token.

    Returns ``(arrays, columnar)``. Stricter than TF Serving in one way: unknown top-level keys are
    rejected instead of ignored (a typo such as "instance" otherwise yields a confusing error).
    """
    unknown = sorted(set(body) - set(REQUEST_KEYS))
    if unknown:
        raise ServingError(
            f"Unknown key(s) {unknown} in the request; expected '{SIGNATURE_KEY}' and one of "
            f"'{ROW_KEY}' or '{COLUMNAR_KEY}'."
        )
    if ROW_KEY in body and COLUMNAR_KEY in body:
        raise ServingError(f"Not formatted correctly expecting only one of '{COLUMNAR_KEY}' or '{ROW_KEY}' keys to exist")
    if ROW_KEY in body:
        tensors, columnar = _row_tensors(body[ROW_KEY], specs, check_bools), False
    elif COLUMNAR_KEY in body:
        tensors, columnar = _columnar_tensors(body[COLUMNAR_KEY], specs, check_bools), True
    else:
        raise ServingError("Missing 'inputs' or 'instances' key")
    _check_shapes(tensors, specs, signature_name, columnar, max_batch_size)
    return tensors, columnar


def predict_response(outputs, columnar):
    """The response body for ``outputs`` ({name: array}) in the request's format."""
    if columnar:
        if len(outputs) == 1:
            return {"outputs": next(iter(outputs.values())).tolist()}
        return {"outputs": {k: v.tolist() for k, v in outputs.items()}}
    sizes = {k: (v.shape[0] if v.ndim else None) for k, v in outputs.items()}
    if None in sizes.values() or len(set(sizes.values())) != 1:
        raise ServingError(f"Outputs do not share a batch dimension ({sizes}); use the columnar 'inputs' format.")
    if len(outputs) == 1:
        return {"predictions": next(iter(outputs.values())).tolist()}
    names = list(outputs)
    lists = {k: outputs[k].tolist() for k in names}
    return {"predictions": [{k: lists[k][i] for k in names} for i in range(next(iter(sizes.values())))]}
