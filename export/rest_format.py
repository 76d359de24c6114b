"""TF Serving's REST JSON format for predict, from both sides (client requests, server responses).

Request: ``{"signature_name"?: str, "instances": [...]}`` (row format: one list entry per example;
entries are plain values for a one-input signature, or ``{input_name: value}`` objects) or
``{"signature_name"?: str, "inputs": value | {input_name: value}}`` (columnar format: whole tensors).
Response: ``{"predictions": ...}`` for row requests, ``{"outputs": ...}`` for columnar ones; a
signature with one output drops its name. Errors: ``{"error": "<message>"}``.

The server side follows TF Serving's parser (tensorflow_serving/util/json_tensor.cc): other top-level
keys and extra keys of a columnar ``inputs`` object are ignored, anything after the root object is
ignored, ``NaN``/``Infinity``/``-Infinity`` are accepted and written as bare tokens, float32 outputs
are written in their shortest form that reads back as the same float32, and errors carry TF Serving's
texts (``... is not of expected type: float``, ``Missing named input: z in 'inputs' object.``, ...).

Example:

>>> body = predict_body({"z": np.zeros([2, 8])})          # {"instances": [{"z": [...]}, {"z": [...]}]}
>>> predict_body({"num_samples": 4, "temperature": 1.0, "seed": 0}, "sample", columnar=True)
>>> outputs_from_response({"predictions": [[0.5], [0.25]]})
array([[0.5 ], [0.25]])
>>> dumps(predict_response({"p": np.float32([0.1, 1 / 3])}, columnar=True))
'{"outputs":[0.1,0.33333334]}'
"""

import base64
import binascii
import collections
import json
import re

import numpy as np

SIGNATURE_KEY = "signature_name"
ROW_KEY = "instances"
COLUMNAR_KEY = "inputs"
DEFAULT_SIGNATURE = "serving_default"

InputSpec = collections.namedtuple("InputSpec", ["dtype", "shape"])  # numpy dtype, shape tuple (None = any size)

# Canonical error codes -> HTTP status, as TF Serving's HTTP server maps them (http_server.cc).
HTTP_STATUS = {  # the first code of each status is the one a client reports for it
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ABORTED": 409,
    "ALREADY_EXISTS": 409,
    "PAYLOAD_TOO_LARGE": 413,  # the local server bounds request bodies; TF Serving has no such code
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNKNOWN": 500,
    "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
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


# ----------------------------------------------------------------------------- parsing JSON like rapidjson
# Python's json messages -> rapidjson's (rapidjson/error/en.h), the parser TF Serving uses.
_PARSE_ERRORS = (
    ("Expecting value", "Invalid value."),
    ("Expecting property name enclosed in double quotes", "Missing a name for object member."),
    ("Expecting ':' delimiter", "Missing a colon after a name of object member."),
    ("Unterminated string", "Missing a closing quotation mark in string."),
    ("Invalid control character", "Invalid encoding in string."),
    ("Invalid \\uXXXX escape", "Incorrect hex digit after \\u escape in string."),
    ("Invalid \\escape", "Invalid escape character in string."),
)


def _first_kept(pairs):
    """A JSON object as a dict that keeps the first of repeated keys, as rapidjson's FindMember does."""
    result = {}
    for key, value in pairs:
        result.setdefault(key, value)
    return result


_DECODER = json.JSONDecoder(object_pairs_hook=_first_kept)
_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _comma_error(text, pos):
    """rapidjson's message for a missing comma: it names the innermost open container."""
    depth = []
    in_string = escaped = False
    for char in text[:pos]:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth.append(char)
        elif char in "]}" and depth:
            depth.pop()
    inside_object = bool(depth) and depth[-1] == "{"
    return "Missing a comma or '}' after an object member." if inside_object else "Missing a comma or ']' after an array element."


def _parse_error(text, err):
    offset = len(text[: err.pos].encode("utf-8", "surrogateescape"))  # rapidjson counts bytes
    message = next((rj for py, rj in _PARSE_ERRORS if err.msg.startswith(py)), None)
    if err.msg.startswith("Expecting ',' delimiter"):
        message = _comma_error(text, err.pos)
    return ServingError(f"JSON Parse error: {message or err.msg} at offset: {offset}")


def loads(raw):
    """Parses the first JSON value of ``raw`` (bytes or str) and ignores what follows, as TF Serving does.

    NaN/Infinity tokens are accepted; malformed JSON raises ServingError with rapidjson's message.

    >>> loads(b'{"instances": [[NaN, 1]]} trailing')
    {'instances': [[nan, 1]]}
    """
    if not raw:
        raise ServingError("JSON Parse error: The document is empty")
    text = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
    start = _WHITESPACE.match(text).end()
    if start == len(text):
        raise ServingError(f"JSON Parse error: The document is empty. at offset: {start}")
    try:
        return _DECODER.raw_decode(text, start)[0]
    except json.JSONDecodeError as err:
        raise _parse_error(text, err) from None
    except RecursionError:
        raise ServingError("JSON Parse error: the document nests too deeply for this server") from None


# ----------------------------------------------------------------------------- JSON values in messages
_DEBUG_LIMIT = 256  # TF Serving cuts values quoted in messages at 256 bytes


def _debug_tokens(value, depth=0):
    """Tokens of ``value`` as rapidjson's PrettyWriter (single-line arrays) writes them."""
    if isinstance(value, dict):
        if not value:
            yield "{}"
            return
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            yield ("," if i else "") + "\n" + "    " * (depth + 1) + json.dumps(key) + ": "
            yield from _debug_tokens(item, depth + 1)
        yield "\n" + "    " * depth + "}"
    elif isinstance(value, list):
        yield "["
        for i, item in enumerate(value):
            if i:
                yield ", "
            yield from _debug_tokens(item, depth + 1)
        yield "]"
    else:
        yield json.dumps(value, allow_nan=True)


def debug_string(value):
    """``value`` as TF Serving quotes it in error messages (cut after 256 bytes)."""
    text = ""
    for token in _debug_tokens(value):
        if len(text) >= _DEBUG_LIMIT:
            break
        text += token
    return text


def _format_error(doc, message):
    return ServingError(f"JSON Value: {debug_string(doc)} {message}")


def parse_predict_body(raw):
    """The parsed request object and its signature name (TF Serving's ParseJson + FillSignature)."""
    doc = loads(raw)
    if not isinstance(doc, dict):
        raise _format_error(doc, "Is not object")
    signature_name = doc.get(SIGNATURE_KEY, "")
    if not isinstance(signature_name, str):
        raise _format_error(doc, "not formatted correctly. 'signature_name' key must be a string value.")
    return doc, signature_name or DEFAULT_SIGNATURE


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


# ----------------------------------------------------------------------------- server side: JSON -> tensors
def _dtype_name(dtype):
    """TF's DataTypeString for a numpy dtype (float32 -> "float", object/bytes -> "string")."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OSU":
        return "string"
    return {"float32": "float", "float64": "double", "float16": "half"}.get(dtype.name, dtype.name)


def json_type(value):
    """rapidjson's type name of a parsed JSON value."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def _is_b64(value):
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _is_named(item):
    """An object of named inputs, as opposed to a value (TF Serving counts {"b64": "..."} as a value)."""
    return isinstance(item, dict) and not _is_b64(item)


_INT_RANGES = {"i": lambda bits: (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1), "u": lambda bits: (0, 2**bits - 1)}
# The dtypes TF Serving's AddValueToTensor converts JSON to (others answer "Conversion of JSON Value ...").
_JSON_DTYPES = {"float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint32", "uint64", "bool"}


def _int_range(dtype):
    """rapidjson's IsInt/IsInt64/IsUint/IsUint64 bounds for ``dtype`` (8/16-bit types use IsInt, as TF Serving)."""
    dtype = np.dtype(dtype)
    return _INT_RANGES[dtype.kind](max(dtype.itemsize * 8, 32))


def _b64_decode(text):
    """absl::Base64Unescape's leniency: padding is optional."""
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _string_leaf_error(value):
    if isinstance(value, str):
        return None
    if not isinstance(value, dict):
        return False  # a type error
    if not _is_b64(value):
        return f"JSON Value: {debug_string(value)} not formatted correctly for base64 data"
    try:
        _b64_decode(value["b64"])
    except (binascii.Error, ValueError):
        return "Unable to base64 decode"
    return None


def _number_ok(value, dtype):
    if dtype.kind == "b":
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if dtype.kind == "f":
        return True
    low, high = _int_range(dtype)
    return isinstance(value, int) and low <= value <= high


def _leaf_error(value, dtype):
    """TF Serving's message when the JSON leaf ``value`` cannot be a ``dtype`` element, else None."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OSU":
        error = _string_leaf_error(value)
        if error is not False:
            return error
    elif dtype.name not in _JSON_DTYPES:
        return f"Conversion of JSON Value: {debug_string(value)} to type: {_dtype_name(dtype)}"
    elif not isinstance(value, dict) and _number_ok(value, dtype):
        return None
    return f"JSON Value: {debug_string(value)} Type: {json_type(value)} is not of expected type: {_dtype_name(dtype)}"


def _dense_shape(value):
    """The shape TF Serving reads off a JSON value: the length of the first list at each level."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill_error(value, level, shape, dtype):
    """The first error TF Serving's FillTensorProto finds in ``value``, else None (walks in document order)."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            return (
                f"JSON Value: {debug_string(value)} found at incorrect level: {level + 1} in the JSON DOM. "
                f"Expected at level: {rank}"
            )
        return _leaf_error(value, dtype)
    if level >= rank:
        return f"Encountered list at unexpected level: {level} expected < {rank}"
    if len(value) != shape[level]:
        return f"Encountered list at unexpected size: {len(value)} at level: {level} expected size: {shape[level]}"
    for item in value:
        error = _fill_error(item, level + 1, shape, dtype)
        if error:
            return error
    return None


def _contains_bool(value):
    if isinstance(value, bool):
        return True
    return isinstance(value, list) and any(_contains_bool(v) for v in value)


def _fast_array(value, dtype, check_bools):
    """``value`` as a numpy array of ``dtype`` when it is a dense list of acceptable numbers, else None."""
    wanted = np.dtype(dtype)
    if wanted.name not in _JSON_DTYPES:
        return None
    try:
        array = np.asarray(value)
    except (ValueError, OverflowError):
        return None
    if array.size == 0 and array.dtype.kind == "f":
        return array.astype(wanted)  # no values to check: TF Serving accepts an empty tensor of any type
    accepted = {"b": "b", "f": "iuf"}.get(wanted.kind, "iu")
    if array.dtype.kind not in accepted or (wanted.kind != "b" and check_bools and _contains_bool(value)):
        return None
    if wanted.kind in "iu" and array.size:
        low, high = _int_range(wanted)
        if array.min() < low or array.max() > high:
            return None
    with np.errstate(over="ignore"):
        return array.astype(wanted)  # 1e39 becomes inf in float32, as rapidjson's GetFloat() makes it


def _slow_array(value, dtype):
    """``value`` as an array of ``dtype`` (strings, b64), or ServingError with TF Serving's message."""
    shape = _dense_shape(value)
    error = _fill_error(value, 0, shape, dtype)
    if error:
        raise ServingError(error)
    flat = []
    _flatten(value, flat)
    if np.dtype(dtype).kind in "OSU":
        flat = [_b64_decode(v["b64"]) if isinstance(v, dict) else v.encode("utf-8", "surrogateescape") for v in flat]
        return np.array(flat, dtype=object).reshape(shape)
    with np.errstate(over="ignore"):
        return np.array(flat, dtype=np.float64 if np.dtype(dtype).kind == "f" else dtype).astype(dtype).reshape(shape)


def _flatten(value, out):
    if isinstance(value, list):
        for item in value:
            _flatten(item, out)
    else:
        out.append(value)


def tensor_from_json(value, dtype, check_bools=True):
    """One input tensor from its JSON value, with TF Serving's type rules and messages.

    >>> tensor_from_json([[1, 2.5]], np.float32).dtype
    dtype('float32')
    >>> tensor_from_json(["a"], np.float32)
    ServingError: JSON Value: "a" Type: String is not of expected type: float (HTTP 400)
    """
    array = _fast_array(value, dtype, check_bools)
    return array if array is not None else _slow_array(value, dtype)


def _shape_text(shape):
    return "[" + ",".join(str(d) for d in shape) + "]"


def _instance_item(item, name, specs, columns, shapes):
    """Adds one instance's value of input ``name``; TF Serving's AddInstanceItem checks."""
    if name not in specs:
        raise ServingError(f"JSON object: does not have named input: {name}")
    shape = _dense_shape(item)
    error = _fill_error(item, 0, shape, specs[name].dtype)
    if error:
        raise ServingError(error)
    if name in shapes:
        size, expected = int(np.prod(shape)), int(np.prod(shapes[name]))
        if size != expected:
            raise ServingError(f"Expecting tensor size: {expected} but got: {size}")
        if shape != shapes[name]:
            raise ServingError(f"Expecting shape {_shape_text(shapes[name])} but got: {_shape_text(shape)}")
    shapes.setdefault(name, shape)
    columns.setdefault(name, []).append(item)


def _wrapped(err, prefix):
    return ServingError(f"{prefix} Error: INVALID_ARGUMENT: {err.message}")


def _check_instance(i, item, names, specs, columns, shapes, objects):
    if objects and not _is_named(item):
        raise ServingError(f"Expecting object but got list at item {i} of input list")
    if not objects:
        if _is_named(item):
            raise ServingError(f"Expecting value/list but got object at item {i} of input list")
        try:
            return _instance_item(item, names[0], specs, columns, shapes)
        except ServingError as err:
            raise _wrapped(err, f"Failed to process element: {i} of 'instances' list.") from None
    for name, value in item.items():
        try:
            _instance_item(value, name, specs, columns, shapes)
        except ServingError as err:
            raise _wrapped(err, f"Failed to process element: {i} key: {name} of 'instances' list.") from None
    if set(item) != set(names):
        raise ServingError(
            f"Failed to process element: {i} of 'instances' list. JSON object: {debug_string(item)} "
            f"keys must be equal to: {','.join(names)}"
        )


def _row_tensors(doc, specs, check_bools):
    instances = doc[ROW_KEY]
    if not isinstance(instances, list):
        raise _format_error(doc, f"Expecting '{ROW_KEY}' to be an list/array")
    if not instances:
        raise _format_error(doc, f"No values in '{ROW_KEY}' array")
    names = sorted(specs)
    if not isinstance(instances[0], dict) and len(names) > 1:
        raise ServingError(
            "instances is a plain list, but expecting list of objects as multiple input tensors required "
            f"as per tensorinfo_map ({', '.join(names)})"
        )
    objects = _is_named(instances[0])
    fast = _fast_rows(instances, names, specs, check_bools, objects)
    if fast is not None:
        return fast
    columns, shapes = {}, {}
    for i, item in enumerate(instances):
        _check_instance(i, item, names, specs, columns, shapes, objects)
    return {name: tensor_from_json(columns[name], specs[name].dtype, check_bools) for name in names}


def _fast_rows(instances, names, specs, check_bools, objects):
    """The batched arrays when every instance is well formed (the common case), else None."""
    if objects:
        if not all(_is_named(item) and len(item) == len(names) and all(n in item for n in names) for item in instances):
            return None
        columns = {name: [item[name] for item in instances] for name in names}
    elif any(isinstance(item, dict) and not _is_b64(item) for item in instances):
        return None
    else:
        columns = {names[0]: instances}
    arrays = {name: _fast_array(columns[name], specs[name].dtype, check_bools) for name in names}
    return None if any(a is None for a in arrays.values()) else arrays


def _columnar_tensors(doc, specs, check_bools):
    inputs = doc[COLUMNAR_KEY]
    names = sorted(specs)
    if not _is_named(inputs):
        if len(names) > 1:
            raise ServingError(
                "inputs is a plain value/list, but expecting an object as multiple input tensors required "
                f"as per tensorinfo_map ({', '.join(names)})"
            )
        return {names[0]: tensor_from_json(inputs, specs[names[0]].dtype, check_bools)}
    for name in names:  # other keys of the object are ignored, as TF Serving ignores them
        if name not in inputs:
            raise ServingError(f"Missing named input: {name} in '{COLUMNAR_KEY}' object.")
    return {name: tensor_from_json(inputs[name], specs[name].dtype, check_bools) for name in names}


def _check_shapes(tensors, specs, signature_name, columnar, max_batch_size):
    """The signature's shapes (TF's session would reject others less clearly) and this server's batch cap."""
    batch_sizes = {}
    for name, array in tensors.items():
        shape = specs[name].shape
        if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)):
            hint = "" if columnar or len(shape) else " (scalar inputs need the columnar 'inputs' format)"
            wanted = "[" + ", ".join("batch" if d is None else str(d) for d in shape) + "]"
            raise ServingError(
                f"Input '{name}' of signature '{signature_name}' must have shape {wanted}, "
                f"got {list(array.shape)}{hint}."
            )
        if len(shape) and shape[0] is None:
            batch_sizes[name] = array.shape[0]
    if len(set(batch_sizes.values())) > 1:
        raise ServingError(f"Inputs must share their batch size, got {batch_sizes}.")
    for size in set(batch_sizes.values()):
        if size > max_batch_size:
            raise ServingError(f"Batch size {size} exceeds this server's maximum of {max_batch_size}.")


def request_tensors(doc, specs, signature_name, max_batch_size, check_bools=True):
    """Input arrays from a parsed predict body ``doc``, checked against ``specs`` ({name: InputSpec}).

    ``check_bools=False`` skips the (slow) search for booleans mixed into numeric lists; pass it
    only when the raw body has no ``true`` token. Returns ``(arrays, columnar)``.

    >>> request_tensors({"inputs": {"z": [[0.0] * 4], "request_id": 7}}, {"z": InputSpec(np.float32, (None, 4))},
    ...                 "serving_default", 64)
    ({'z': array([[0., 0., 0., 0.]], dtype=float32)}, True)
    """
    if not specs:
        raise ServingError(f"Failed to get input map for signature: {signature_name}")
    if ROW_KEY in doc and COLUMNAR_KEY in doc:
        raise _format_error(
            doc, f"Not formatted correctly expecting only one of '{COLUMNAR_KEY}' or '{ROW_KEY}' keys to exist "
        )
    if ROW_KEY in doc:
        tensors, columnar = _row_tensors(doc, specs, check_bools), False
    elif COLUMNAR_KEY in doc:
        tensors, columnar = _columnar_tensors(doc, specs, check_bools), True
    else:
        raise ServingError(f"Missing '{COLUMNAR_KEY}' or '{ROW_KEY}' key")
    _check_shapes(tensors, specs, signature_name, columnar, max_batch_size)
    return tensors, columnar


# ----------------------------------------------------------------------------- server side: tensors -> JSON
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
