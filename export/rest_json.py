"""TF Serving's REST JSON text: parsing as its rapidjson parser does, values quoted in messages, errors.

`loads` reads the first JSON value of a body and ignores what follows, keeps the first of repeated
keys, accepts ``NaN``/``Infinity``/``-Infinity`` and raises `ServingError` with rapidjson's messages;
`dumps` writes those tokens back bare. `debug_string` and `json_type` quote values the way TF
Serving's error messages do (tensorflow_serving/util/json_tensor.cc); `HTTP_STATUS` maps canonical
error codes to the HTTP status TF Serving's HTTP server answers with.

Example:

>>> loads(b'{"instances": [[NaN, 1]]} trailing')
{'instances': [[nan, 1]]}
>>> dumps({"outputs": [float("inf")]})
'{"outputs":[Infinity]}'
>>> ServingError("Servable not found for request: Latest(vae)", "NOT_FOUND").http_status
404
"""

import json
import re

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


def json_type(value):
    """rapidjson's type name of a parsed JSON value."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def format_error(doc, message):
    """TF Serving's error about the JSON value ``doc``: ``JSON Value: <doc> <message>``."""
    return ServingError(f"JSON Value: {debug_string(doc)} {message}")
