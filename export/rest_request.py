"""The server side of a TF Serving predict request: its JSON body parsed into checked input tensors.

Follows TF Serving's parser (tensorflow_serving/util/json_tensor.cc): a row request
(``{"instances": [...]}``, one entry per example, plain values or ``{input_name: value}`` objects)
or a columnar one (``{"inputs": value | {input_name: value}}``) becomes ``{input_name: numpy array}``
of the signature's dtypes, with TF Serving's type rules (``{"b64": ...}`` strings, integer ranges,
no booleans among numbers) and its error texts (``... is not of expected type: float``,
``Missing named input: z in 'inputs' object.``, ...). Other top-level keys, and extra keys of a
columnar ``inputs`` object, are ignored as TF Serving ignores them.

Example:

>>> doc, signature_name = parse_predict_body(b'{"inputs": {"z": [[0, 0]]}}')
>>> request_tensors(doc, {"z": InputSpec(np.float32, (None, 2))}, signature_name, max_batch_size=64)
({'z': array([[0., 0.]], dtype=float32)}, True)
"""

import base64
import binascii
import collections

import numpy as np

from keras_vae.export.rest_json import ServingError, debug_string, format_error, json_type, loads

SIGNATURE_KEY = "signature_name"
ROW_KEY = "instances"
COLUMNAR_KEY = "inputs"
DEFAULT_SIGNATURE = "serving_default"

# TF's TensorShape holds at most 254 dimensions; TF Serving answers "tensor parsing error" past that.
MAX_RANK = 254
InputSpec = collections.namedtuple("InputSpec", ["dtype", "shape"])  # numpy dtype, shape tuple (None = any size)


def parse_predict_body(raw):
    """The parsed request object and its signature name (TF Serving's ParseJson + FillSignature)."""
    doc = loads(raw)
    if not isinstance(doc, dict):
        raise format_error(doc, "Is not object")
    signature_name = doc.get(SIGNATURE_KEY, "")
    if not isinstance(signature_name, str):
        raise format_error(doc, "not formatted correctly. 'signature_name' key must be a string value.")
    return doc, signature_name or DEFAULT_SIGNATURE


# ----------------------------------------------------------------------------- JSON values -> tensors
def _dtype_name(dtype):
    """TF's DataTypeString for a numpy dtype (float32 -> "float", object/bytes -> "string")."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OSU":
        return "string"
    return {"float32": "float", "float64": "double", "float16": "half"}.get(dtype.name, dtype.name)


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
    """The first error TF Serving's FillTensorProto finds in ``value``, else None (walks in document order).

    The walk keeps its own stack: a JSON value may nest deeper than Python's recursion limit.
    """
    rank = len(shape)
    pending = [(value, level)]
    while pending:
        value, level = pending.pop()
        if not isinstance(value, list):
            if level != rank:
                return (
                    f"JSON Value: {debug_string(value)} found at incorrect level: {level + 1} in the JSON DOM. "
                    f"Expected at level: {rank}"
                )
            error = _leaf_error(value, dtype)
            if error:
                return error
            continue
        if level >= rank:
            return f"Encountered list at unexpected level: {level} expected < {rank}"
        if len(value) != shape[level]:
            return f"Encountered list at unexpected size: {len(value)} at level: {level} expected size: {shape[level]}"
        if level + 1 < rank:
            pending.extend((item, level + 1) for item in reversed(value))
            continue
        for item in value:  # the innermost lists, checked in place (most of the work)
            if isinstance(item, list):
                return f"Encountered list at unexpected level: {level + 1} expected < {rank}"
            error = _leaf_error(item, dtype)
            if error:
                return error
    return None


def _leaves(value):
    """The non-list values of nested lists, in document order, without recursion."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(reversed(item))
        else:
            yield item


def _contains_bool(value):
    return any(isinstance(leaf, bool) for leaf in _leaves(value))


def _check_rank(value, name):
    """TF Serving's error for a value with more dimensions than a TF tensor can have (TensorShape's 254)."""
    if len(_dense_shape(value)) > MAX_RANK:
        raise ServingError(f"tensor parsing error: {name}")


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
    flat = list(_leaves(value))
    if np.dtype(dtype).kind in "OSU":
        flat = [_b64_decode(v["b64"]) if isinstance(v, dict) else v.encode("utf-8", "surrogateescape") for v in flat]
        array = np.array(flat, dtype=object)
    else:
        try:
            with np.errstate(over="ignore"):
                array = np.array(flat, dtype=np.float64 if np.dtype(dtype).kind == "f" else dtype).astype(dtype)
        except OverflowError:  # an integer of hundreds of digits; rapidjson refuses it while parsing
            raise ServingError("JSON Parse error: Number too big to be stored in double.") from None
    try:
        return array.reshape(shape)
    except ValueError:  # more dimensions than numpy arrays have: no signature input takes such a value
        raise ServingError(f"JSON Value: {debug_string(value)} has {len(shape)} dimensions, more than this server handles") from None


def tensor_from_json(value, dtype, check_bools=True):
    """One input tensor from its JSON value, with TF Serving's type rules and messages.

    >>> tensor_from_json([[1, 2.5]], np.float32).dtype
    dtype('float32')
    >>> tensor_from_json(["a"], np.float32)
    ServingError: JSON Value: "a" Type: String is not of expected type: float (HTTP 400)
    """
    array = _fast_array(value, dtype, check_bools)
    return array if array is not None else _slow_array(value, dtype)


# ----------------------------------------------------------------------------- row and columnar requests
def _shape_text(shape):
    return "[" + ",".join(str(d) for d in shape) + "]"


def _instance_item(item, name, specs, columns, shapes):
    """Adds one instance's value of input ``name``; TF Serving's AddInstanceItem checks."""
    if name not in specs:
        raise ServingError(f"JSON object: does not have named input: {name}")
    _check_rank([item], name)
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
        raise format_error(doc, f"Expecting '{ROW_KEY}' to be an list/array")
    if not instances:
        raise format_error(doc, f"No values in '{ROW_KEY}' array")
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
        _check_rank(inputs, names[0])
        return {names[0]: tensor_from_json(inputs, specs[names[0]].dtype, check_bools)}
    for name in names:  # other keys of the object are ignored, as TF Serving ignores them
        if name not in inputs:
            raise ServingError(f"Missing named input: {name} in '{COLUMNAR_KEY}' object.")
        _check_rank(inputs[name], name)
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
            # TF Serving's batching scheduler refuses such a task with this InvalidArgument (400) text
            raise ServingError(
                f"Task size {size} is larger than maximum input batch size {max_batch_size}. Batch size {size} exceeds "
                f"this server's maximum of {max_batch_size}: split the request, or raise the server's --max-batch-size."
            )


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
        raise format_error(
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
