"""TF Serving's REST JSON text: parsing as its rapidjson parser does, values quoted in messages, errors.

`loads` reads the first JSON value of a body and ignores what follows, keeps the first of repeated
keys, accepts ``NaN``/``Infinity``/``-Infinity`` and raises `ServingError` with rapidjson's messages;
like TF Serving's rapidjson (``kParseIterativeFlag``) it has no nesting limit: a document too deep for
Python's decoder is parsed with an explicit stack, and containers past ``MAX_BUILT_DEPTH`` levels are
checked but not built. `dumps` writes those tokens back bare. `debug_string` and `json_type` quote values the way TF
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
import sys

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


def _offset(text, pos):
    return len(text[:pos].encode("utf-8", "surrogateescape"))  # rapidjson counts bytes


def _parse_error(text, err):
    offset = _offset(text, err.pos)
    message = next((rj for py, rj in _PARSE_ERRORS if err.msg.startswith(py)), None)
    if err.msg.startswith("Expecting ',' delimiter"):
        message = _comma_error(text, err.pos)
    return ServingError(f"JSON Parse error: {message or err.msg} at offset: {offset}")


def loads(raw):
    """Parses the first JSON value of ``raw`` (bytes or str) and ignores what follows, as TF Serving does.

    NaN/Infinity tokens are accepted; malformed JSON raises ServingError with rapidjson's message. Nesting
    depth is not limited (TF Serving's rapidjson parses iteratively): containers nested more than
    ``MAX_BUILT_DEPTH`` levels deep are checked but stand as `DEEP_ARRAY` / `DEEP_OBJECT`.

    >>> loads(b'{"instances": [[NaN, 1]]} trailing')
    {'instances': [[nan, 1]]}
    >>> loads(b'{"ignored": ' + b"[" * 100000 + b"]" * 100000 + b', "x": 1}')["x"]
    1
    """
    if not raw:
        raise ServingError("JSON Parse error: The document is empty")
    text = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
    start = _WHITESPACE.match(text).end()
    if start == len(text):
        raise ServingError(f"JSON Parse error: The document is empty. at offset: {start}")
    try:
        try:
            return _DECODER.raw_decode(text, start)[0]
        except (RecursionError, ValueError) as err:
            if isinstance(err, json.JSONDecodeError):
                raise
            # too deep for the C decoder, or an integer past Python's digit limit: parse without recursion
            return _iterative_decode(text, start)
    except json.JSONDecodeError as err:
        raise _parse_error(text, err) from None


# ----------------------------------------------------------------------------- parsing without recursion
# Containers nested deeper than this are checked but not built: no tensor has that many dimensions (TF's
# limit is 254), and error messages quote at most 256 bytes, one or more per level.
MAX_BUILT_DEPTH = 512


class _DeepValue:
    """A JSON array or object nested deeper than ``MAX_BUILT_DEPTH``: well formed, not built."""

    __slots__ = ("kind",)

    def __init__(self, kind):
        self.kind = kind

    def __repr__(self):
        return "[...]" if self.kind == "Array" else "{...}"


DEEP_ARRAY, DEEP_OBJECT = _DeepValue("Array"), _DeepValue("Object")
_NUMBER = re.compile(r"(-?(?:0|[1-9][0-9]*))(\.[0-9]+)?([eE][-+]?[0-9]+)?")
# A run of openers (arrays, objects with a plain first key) and a run of closers, taken in one step when unbuilt;
# runs are cut at 4096 levels (the regex engine keeps state per repetition).
_OPEN_RUN = re.compile(r'(?:\[[ \t\n\r]*|\{[ \t\n\r]*"[^"\\\x00-\x1f\[{]*"[ \t\n\r]*:[ \t\n\r]*){1,4096}')
_CLOSE_RUN = re.compile(r"[\]}](?:[ \t\n\r]*[\]}]){0,4095}")
_CLOSER = re.compile(r"[ \t\n\r]*[\]}]")
_NOT_OPENERS = bytes(b for b in range(256) if b not in b"[{")
_CLOSER_TO_OPENER = str.maketrans("]}", "[{", " \t\n\r")
_LITERALS = (("null", None), ("true", True), ("false", False), ("NaN", float("nan")),
             ("Infinity", float("inf")), ("-Infinity", float("-inf")))


def _scalar(text, pos):
    """``(value, end)`` of the string, number or literal at ``pos`` (Python's json messages on errors)."""
    if text.startswith('"', pos):
        return json.decoder.scanstring(text, pos + 1, True)
    for token, value in _LITERALS:
        if text.startswith(token, pos):
            return value, pos + len(token)
    match = _NUMBER.match(text, pos)
    if match is None:
        raise json.JSONDecodeError("Expecting value", text, pos)
    integer, fraction, exponent = match.groups()
    if fraction or exponent:
        return float(integer + (fraction or "") + (exponent or "")), match.end()
    if len(integer.lstrip("-")) > sys.get_int_max_str_digits() > 0:  # what Python's decoder cannot read either
        raise ServingError(f"JSON Parse error: Number too big to be stored in double. at offset: {_offset(text, pos)}")
    return int(integer), match.end()


class _Parents:
    """The open containers around the parse position: built ones, then (past MAX_BUILT_DEPTH) kinds only."""

    def __init__(self):
        self.built = []  # [container, pending key]
        self.deep = bytearray()  # b"[" / b"{" per open container that is not built

    def __len__(self):
        return len(self.built) + len(self.deep)

    def innermost_is_object(self):
        return self.deep[-1:] == b"{" if self.deep else isinstance(self.built[-1][0], dict)

    def open(self, opener):
        if len(self) >= MAX_BUILT_DEPTH:
            self.deep.append(ord(opener))
        else:
            self.built.append([{} if opener == "{" else [], None])

    def close(self):
        """The value of the innermost container, now closed."""
        if self.deep:
            return DEEP_OBJECT if self.deep.pop() == ord("{") else DEEP_ARRAY
        return self.built.pop()[0]

    def add(self, value):
        if self.deep:
            return
        container, key = self.built[-1]
        if isinstance(container, dict):
            container.setdefault(key, value)  # the first of repeated keys, as rapidjson's FindMember
        else:
            container.append(value)

    def set_key(self, key):
        if not self.deep:
            self.built[-1][1] = key


def _skip(text, pos):
    return _WHITESPACE.match(text, pos).end()


def _key(text, pos, parents):
    """Reads ``"name" :`` at ``pos``; returns the position of the member's value."""
    pos = _skip(text, pos)
    if not text.startswith('"', pos):
        raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, pos)
    key, pos = json.decoder.scanstring(text, pos + 1, True)
    pos = _skip(text, pos)
    if not text.startswith(":", pos):
        raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
    parents.set_key(key)
    return pos + 1


def _open(text, pos, char, parents):
    """Opens the container(s) at ``pos``: ``(position of what follows, whether the innermost one is empty)``.

    Past ``MAX_BUILT_DEPTH`` a whole run of openers (with the first keys of objects) is taken at once.
    """
    run = _OPEN_RUN.match(text, pos) if len(parents) >= MAX_BUILT_DEPTH else None
    if run is not None:
        parents.deep += run.group().encode("utf-8", "surrogateescape").translate(None, _NOT_OPENERS)
        return run.end(), parents.deep[-1] == ord("[") and text.startswith("]", run.end())
    parents.open(char)
    pos = _skip(text, pos + 1)
    if text.startswith("}" if char == "{" else "]", pos):
        return pos, True
    return (_key(text, pos, parents) if char == "{" else pos), False


def _close_deep_run(text, pos, parents):
    """Closes a run of unbuilt containers at once, all but the outermost unbuilt one (its value is kept)."""
    run = _CLOSE_RUN.match(text, pos)
    count = len(parents.deep) - 1
    if run is None or count <= 0:
        return pos
    closers = run.group().translate(_CLOSER_TO_OPENER)
    count = min(count, len(closers))
    if closers[:count][::-1].encode("ascii") != parents.deep[len(parents.deep) - count :]:
        return pos  # mismatched brackets: the step by step loop reports where
    del parents.deep[len(parents.deep) - count :]
    if count == len(closers):
        return run.end()
    if len(closers) == len(run.group()):
        return pos + count
    for _, match in zip(range(count), _CLOSER.finditer(text, pos)):
        pos = match.end()
    return pos


def _iterative_decode(text, pos):
    """``_DECODER.raw_decode(text, pos)[0]`` with an explicit stack instead of recursion."""
    parents = _Parents()
    while True:
        pos = _skip(text, pos)
        char = text[pos : pos + 1]
        if char in ("[", "{"):
            pos, empty = _open(text, pos, char, parents)
            if not empty:
                continue
            pos += 1
            value = parents.close()
        else:
            value, pos = _scalar(text, pos)
        while True:  # a value is complete: add it to its container, then read what follows it
            if not parents:
                return value
            parents.add(value)
            pos = _skip(text, _close_deep_run(text, _skip(text, pos), parents))
            char = text[pos : pos + 1]
            is_object = parents.innermost_is_object()
            if char == ",":
                pos = _key(text, pos + 1, parents) if is_object else pos + 1
                break
            if char != ("}" if is_object else "]"):
                container = "'}' after an object member" if is_object else "']' after an array element"
                raise ServingError(f"JSON Parse error: Missing a comma or {container}. at offset: {_offset(text, pos)}")
            pos += 1
            value = parents.close()


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
    elif isinstance(value, _DeepValue):
        yield repr(value)  # never reached within the 256 bytes quoted: one or more bytes per level
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
    if isinstance(value, _DeepValue):
        return value.kind
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def format_error(doc, message):
    """TF Serving's error about the JSON value ``doc``: ``JSON Value: <doc> <message>``."""
    return ServingError(f"JSON Value: {debug_string(doc)} {message}")
