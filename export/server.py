"""`keras-vae serve`: a local HTTP server that follows TF Serving's REST API, for development and tests.

Production serving is TF Serving (tensorflow_model_server or the tensorflow/serving image); this
server mirrors its REST behaviour (tensorflow_serving/model_servers/http_rest_api_handler.cc and
util/json_tensor.cc), so a client written against one works unchanged against the other:

- ``GET  /v1/models/NAME[/versions/N | /labels/L]``            model status, newest version first
- ``GET  /v1/models/NAME[/versions/N | /labels/L]/metadata``   the signature_def map
- ``POST /v1/models/NAME[/versions/N | /labels/L]:predict``    row (``instances``) or columnar (``inputs``)
  requests, optional ``signature_name``; answers ``predictions`` / ``outputs``
- ``POST ...:classify`` / ``...:regress``: TF Serving's 400 errors (keras-vae models have no such signatures)
- errors as ``{"error": "..."}`` with TF Serving's texts and status codes; chunked and
  ``Content-Encoding: gzip`` request bodies are accepted.

Versions follow TF Serving's file-system source and availability-preserving policy: it serves the
highest version under ``BASE/NAME`` (or the versions a models.config ``model_version_policy`` names),
polls the folder, loads new versions before unloading old ones, and retries a version that failed to
load (e.g. one still being copied). Version labels come from a models.config file or ``version_labels``.
Differences from TF Serving: request bodies and batch sizes are bounded (413 / 400); the server
refuses to start on a folder without versions.

Example:

>>> server = make_server("saved_models/vae", port=0)        # port 0: any free port
>>> threading.Thread(target=server.serve_forever, daemon=True).start()
>>> RestClient(f"http://127.0.0.1:{server.server_port}", "vae").status()
{'model_version_status': [{'version': '1', 'state': 'AVAILABLE', 'status': {'error_code': 'OK', ...}}]}
>>> server.close()
"""

import os
import re
import sys
import threading
import time
import traceback
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from keras_vae.export.layout import existing_versions
from keras_vae.export.rest_format import (
    InputSpec,
    ServingError,
    debug_string,
    dumps,
    json_type,
    parse_predict_body,
    predict_response,
    request_tensors,
)
from keras_vae.export.signatures import error_message
from keras_vae.export.warmup import read_warmup

DEFAULT_PORT = 8501
MAX_REQUEST_BYTES = 32 * 1024 * 1024
MAX_BATCH_SIZE = 1024
POLL_SECONDS = 1.0
MAX_LOAD_RETRIES = 5  # TF Serving's --max_num_load_retries default

# TF Serving's path patterns (http_rest_api_util.cc), matched against the path and query as sent.
_API_PATH = re.compile(r"(?i)/v1/.*")
_VERSION_OR_LABEL = r"(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
_PREDICT_PATH = re.compile(rf"(?i)/v1/models/([^/:]+){_VERSION_OR_LABEL}:(classify|regress|predict)")
_STATUS_PATH = re.compile(rf"(?i)/v1/models(?:/([^/:]+))?{_VERSION_OR_LABEL}(?:/(metadata))?")
_MAX_VERSION = 2**63 - 1

# tf.errors.OpError.error_code -> canonical code name
_TF_CODES = {
    3: "INVALID_ARGUMENT",
    5: "NOT_FOUND",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    14: "UNAVAILABLE",
}


def _error_codes():
    from tensorflow_serving.apis import get_model_status_pb2

    status = get_model_status_pb2.ModelVersionStatus.DESCRIPTOR.fields_by_name["status"].message_type
    return status.fields_by_name["error_code"].enum_type


def _json_proto(message):
    from google.protobuf import json_format

    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


class Servable:
    """One loaded SavedModel version: its signatures, their input specs, and the signature_def protos."""

    def __init__(self, version, path):
        import tensorflow as tf
        from tensorflow.core.protobuf import saved_model_pb2

        self.version = version
        self.path = path
        self.loaded = tf.saved_model.load(path)
        self.signatures = dict(self.loaded.signatures)
        self.input_specs = {
            name: {
                key: InputSpec(spec.dtype.as_numpy_dtype, tuple(spec.shape.as_list()))
                for key, spec in fn.structured_input_signature[1].items()
            }
            for name, fn in self.signatures.items()
        }
        saved_model = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            saved_model.ParseFromString(f.read())
        self.signature_defs = saved_model.meta_graphs[0].signature_def
        self._warm_up()

    def _warm_up(self):
        import tensorflow as tf

        for request in read_warmup(self.path):
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            self.run(request.model_spec.signature_name or "serving_default", inputs)

    def run(self, signature_name, inputs):
        """``{output: numpy array}`` from running a signature on ``{input: numpy array}``."""
        import tensorflow as tf

        try:
            outputs = self.signatures[signature_name](**{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.OpError as err:
            raise ServingError(error_message(err), _TF_CODES.get(err.error_code, "INTERNAL")) from None
        return {k: v.numpy() for k, v in outputs.items()}

    def predict_specs(self, signature_name):
        """The input specs of a signature; TF Serving's REST error for an unknown one."""
        if signature_name not in self.input_specs:
            raise ServingError(f'Serving signature name: "{signature_name}" not found in signature def')
        return self.input_specs[signature_name]

    def check_classify_regress(self, verb, signature_name):
        """TF Serving's checks of a classify/regress signature (classifier.cc, regressor.cc), method check off."""
        signature = self.signature_defs.get(signature_name)
        if signature is None:
            raise ServingError(f"No signature was found with the name: {signature_name}")
        kind = "classification" if verb == "classify" else "regression"
        if len(signature.inputs) != 1:
            raise ServingError("Expected one input Tensor.")
        if verb == "classify" and len(signature.outputs) not in (1, 2):
            raise ServingError(f"Expected one or two output Tensors, found {len(signature.outputs)}")
        if verb == "regress" and len(signature.outputs) != 1:
            raise ServingError("Expected one output Tensor.")
        if "inputs" not in signature.inputs:
            raise ServingError(f"No {kind} inputs found in SignatureDef: {signature}")
        raise ServingError(f"'{verb}' with tf.Example inputs is not implemented by this server.", "UNIMPLEMENTED")

    def metadata(self, model_name):
        from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2

        spec = model_pb2.ModelSpec(name=model_name)
        spec.version.value = self.version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in self.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(value)
        return {"model_spec": _json_proto(spec), "metadata": {"signature_def": _json_proto(signature_map)}}


# ----------------------------------------------------------------------------- models.config and policies
def read_model_config(path, model_name=None):
    """``(name, version_labels, version_policy)`` of one model in a models.config (``model_config_list``) file.

    The entry is the one named ``model_name``, or the only one. ``version_policy`` is what
    `aspired_versions` takes: ``("latest", n)``, ``("all", None)`` or ``("specific", {versions})``.

    >>> read_model_config("saved_models/vae/models.config")
    ('vae', {'stable': 1, 'canary': 2}, ('specific', {1, 2}))
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    try:
        with open(path) as f:
            text_format.Parse(f.read(), config)
    except (OSError, text_format.ParseError) as err:
        raise ValueError(f"Cannot read the model config file {path!r}: {err}") from None
    entries = list(config.model_config_list.config)
    chosen = [e for e in entries if e.name == model_name] if model_name else entries
    if len(chosen) != 1:
        names = [e.name for e in entries]
        raise ValueError(f"{path!r} must configure model {model_name or 'exactly one model'}; it configures {names}.")
    entry = chosen[0]
    return entry.name, dict(entry.version_labels), _policy_of(entry.model_version_policy)


def _policy_of(proto):
    kind = proto.WhichOneof("policy_choice")
    if kind == "all":
        return ("all", None)
    if kind == "specific":
        return ("specific", set(proto.specific.versions))
    return ("latest", proto.latest.num_versions or 1)  # TF Serving's default: the latest version


def aspired_versions(versions, policy=("latest", 1)):
    """The versions TF Serving's ServableVersionPolicy wants loaded, out of the version folders ``versions``.

    >>> aspired_versions([1, 2, 3], ("latest", 2)), aspired_versions([1, 3], ("specific", {1, 2}))
    ({2, 3}, {1})
    """
    kind, value = policy
    if kind == "all":
        return set(versions)
    if kind == "specific":
        return set(versions) & set(value)
    return set(sorted(versions)[-value:]) if value > 0 else set()


def _folder_signature(path):
    """Names, sizes and mtimes under ``path``: it changes while a version is still being copied in."""
    entries = []
    for root, _, files in os.walk(path):
        for name in files:
            try:
                stat = os.stat(os.path.join(root, name))
            except OSError:
                continue
            entries.append((os.path.join(root, name), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


class _LoadAttempts:
    """Failed loads of one version: retried on later polls, up to ``MAX_LOAD_RETRIES`` times per folder content."""

    def __init__(self, signature):
        self.signature = signature
        self.failures = 0
        self.next_try = 0.0
        self.error = ("OK", "")


class ModelRepository:
    """The versions of one model under ``base_path``, loaded and unloaded as TF Serving's manager does.

    A version that fails to load is reported LOADING while it is retried (``max_load_retries`` more
    times, ``load_retry_seconds`` apart, the count restarting while its folder still changes) and END
    with its error after that; the version(s) already serving keep serving.
    """

    def __init__(
        self,
        base_path,
        model_name=None,
        poll_seconds=POLL_SECONDS,
        log=None,
        version_policy=("latest", 1),
        version_labels=None,
        max_load_retries=MAX_LOAD_RETRIES,
        load_retry_seconds=None,
    ):
        self.base_path = os.path.abspath(os.fspath(base_path))
        _check_model_folder(self.base_path)
        self.model_name = model_name or os.path.basename(self.base_path)
        self.poll_seconds = poll_seconds
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self.version_policy = version_policy
        self.version_labels = dict(version_labels or {})
        self.max_load_retries = max_load_retries
        self.load_retry_seconds = poll_seconds if load_retry_seconds is None else load_retry_seconds
        self._lock = threading.Lock()
        self._servables = {}  # version -> Servable (AVAILABLE); replaced, never mutated, so readers need no lock
        self._states = {}  # version -> (state, error_code, error_message)
        self._attempts = {}  # version -> _LoadAttempts
        self._stop = threading.Event()
        self._poller = None

    def refresh(self):
        """One poll: loads aspired versions (highest first), then unloads what the policy lets go."""
        on_disk = existing_versions(self.base_path)
        aspired = aspired_versions(on_disk, self.version_policy)
        for version in set(self._attempts) - set(on_disk):
            self._forget_attempts(version)
        for version in sorted(aspired - set(self._servables), reverse=True):
            if self._stop.is_set():
                return
            self._try_load(version)
        self._unload_unaspired(aspired)

    def _try_load(self, version):
        path = os.path.join(self.base_path, str(version))
        attempts = self._attempts.get(version)
        signature = _folder_signature(path)
        if attempts is not None and attempts.signature != signature:
            attempts = None  # the folder changed (a copy in progress): start counting again
        if attempts is not None and (attempts.failures > self.max_load_retries or time.monotonic() < attempts.next_try):
            return
        self._set_state(version, "LOADING")
        try:
            servable = Servable(version, path)
        except Exception as err:  # a broken or incomplete version must not take the server down
            self._load_failed(version, attempts or _LoadAttempts(signature), err)
            return
        self._attempts.pop(version, None)
        with self._lock:
            self._servables = {**self._servables, version: servable}
            self._states[version] = ("AVAILABLE", "OK", "")
        self.log(f"keras-vae serve: serving version {version} of {self.model_name!r} from {path}")

    def _load_failed(self, version, attempts, err):
        attempts.failures += 1
        attempts.next_try = time.monotonic() + self.load_retry_seconds
        attempts.error = ("UNKNOWN", f"{type(err).__name__}: {err}".strip())
        self._attempts[version] = attempts
        final = attempts.failures > self.max_load_retries
        self._set_state(version, *(("END", *attempts.error) if final else ("LOADING",)))
        retry = "giving up" if final else f"will retry ({attempts.failures}/{self.max_load_retries})"
        self.log(f"keras-vae serve: version {version} of {self.model_name!r} failed to load, {retry}: {attempts.error[1]}")

    def _forget_attempts(self, version):
        attempts = self._attempts.pop(version)
        if self._states.get(version, ("",))[0] == "LOADING":
            self._set_state(version, "END", *attempts.error)

    def _unload_unaspired(self, aspired):
        """AvailabilityPreservingPolicy: unload a non-aspired version once an aspired one serves (or none is aspired)."""
        while True:
            unaspired = sorted(set(self._servables) - aspired)
            serving_aspired = bool(aspired & set(self._servables))
            if not unaspired or not (not aspired or serving_aspired or len(unaspired) > 1):
                return
            version = unaspired[0]
            with self._lock:
                self._servables = {v: s for v, s in self._servables.items() if v != version}
                self._states[version] = ("END", "OK", "")
            self.log(f"keras-vae serve: version {version} of {self.model_name!r} is no longer served")

    def _set_state(self, version, state, code="OK", message=""):
        with self._lock:
            self._states[version] = (state, code, message)

    def start(self):
        self.refresh()
        self._check_labels()
        self._poller = threading.Thread(target=self._poll, name="version-poller", daemon=True)
        self._poller.start()

    def _check_labels(self):
        """TF Serving refuses a label on a version that is not available (server_core.cc)."""
        for label, version in sorted(self.version_labels.items()):
            if version not in self._servables:
                raise ValueError(
                    f"Request to assign label to version {version} of model {self.model_name}, which is not "
                    f"currently available for inference (label {label!r}; versions under {self.base_path!r})"
                )

    def _poll(self):
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # keep polling whatever one scan hit (e.g. a folder deleted mid-scan)
                self.log(traceback.format_exc())

    def stop(self):
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=10)

    def resolve(self, model_name, version=None, label=None):
        """The version a request names: its number, its label's version (TF's error if unknown), or None (latest)."""
        if label is None:
            return version
        if model_name == self.model_name and label in self.version_labels:
            return self.version_labels[label]
        raise ServingError(f"Unrecognized servable version label: {label}")

    def servable(self, model_name, version=None, label=None):
        """The Servable a request names; TF Serving's NotFound/InvalidArgument errors otherwise."""
        version = self.resolve(model_name, version, label)
        servables = self._servables if model_name == self.model_name else {}
        if version is None and servables:
            return servables[max(servables)]
        if version in servables:
            return servables[version]
        request = f"Latest({model_name})" if version is None else f"Specific({model_name}, {version})"
        raise ServingError(f"Servable not found for request: {request}", "NOT_FOUND")

    def status(self, model_name, version=None):
        """GetModelStatusResponse as JSON, newest version first (TF's ServableStateMonitor order)."""
        from tensorflow_serving.apis import get_model_status_pb2

        with self._lock:
            states = dict(self._states) if model_name == self.model_name else {}
        if version is not None:
            if version not in states:
                raise ServingError(f"Could not find version {version} of model {model_name}", "NOT_FOUND")
            states = {version: states[version]}
        if not states:
            raise ServingError(f"Could not find any versions of model {model_name}", "NOT_FOUND")
        response = get_model_status_pb2.GetModelStatusResponse()
        for v, (state, code, message) in sorted(states.items(), reverse=True):
            entry = response.model_version_status.add(version=v)
            entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
            entry.status.error_code = _error_codes().values_by_name[code].number
            entry.status.error_message = message
        return _json_proto(response)


def _check_model_folder(path):
    """A clear error at start for a folder TF Serving could serve nothing from."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"No model folder at {path!r} (expected BASE/NAME with version folders 1/, 2/, ...).")
    if existing_versions(path):
        return
    hint = (
        f" It holds a SavedModel itself: serve its parent folder, {os.path.dirname(path)!r}."
        if os.path.isfile(os.path.join(path, "saved_model.pb"))
        else " Export one with `keras-vae export RUN_DIR --base-dir ...`."
    )
    raise FileNotFoundError(f"No model versions in {path!r}: expected version folders (1/, 2/, ...).{hint}")


# ----------------------------------------------------------------------------- the REST API
class RestApi:
    """Routes a request (method, path with query, body) to a ``(status, JSON object)`` answer, as TF Serving."""

    def __init__(self, repository, max_batch_size=MAX_BATCH_SIZE):
        self.repository = repository
        self.max_batch_size = max_batch_size

    def handle(self, method, path, body):
        if method == "POST" and (match := _PREDICT_PATH.fullmatch(path)):
            name, version, label, verb = _model_info(match)
            if verb == "predict":
                return 200, self.predict(name, version, label, body)
            if verb in ("classify", "regress"):
                return 200, self.classify_or_regress(verb, name, version, label, body)
        elif method == "GET" and (match := _STATUS_PATH.fullmatch(path)):
            name, version, label, subresource = _model_info(match)
            if not name:
                raise ServingError("Missing model name in request.")
            if subresource == "metadata":
                return 200, self.repository.servable(name, version, label).metadata(name)
            return 200, self.repository.status(name, version)  # TF Serving's status ignores the label
        raise ServingError(f"Malformed request: {method} {path}")

    def predict(self, model_name, version, label, raw):
        doc, signature_name = parse_predict_body(raw)
        servable = self.repository.servable(model_name, version, label)
        specs = servable.predict_specs(signature_name)
        check_bools = b"true" in raw or b"false" in raw
        inputs, columnar = request_tensors(doc, specs, signature_name, self.max_batch_size, check_bools)
        return predict_response(servable.run(signature_name, inputs), columnar)

    def classify_or_regress(self, verb, model_name, version, label, raw):
        """Always raises: TF Serving's errors in its order (body, servable, signature); keras-vae models have none."""
        doc, signature_name = parse_predict_body(raw)
        _check_examples(doc)
        servable = self.repository.servable(model_name, version, label)
        servable.check_classify_regress(verb, signature_name)


def _model_info(match):
    """(model name, version, label, method or subresource) from a path match, decoded as TF Serving does."""
    name, version, label, last = match.groups()
    if version is not None:
        if int(version) > _MAX_VERSION:
            raise ServingError(f"Failed to convert version: {version} to numeric.")
        version = int(version)
    return urllib.parse.unquote(name or ""), version, None if label is None else urllib.parse.unquote(label), last


def _check_examples(doc):
    """TF Serving's checks of a classify/regress body's ``context`` and ``examples`` (json_tensor.cc)."""
    if "context" in doc:
        _check_example(doc["context"])
    examples = doc.get("examples")
    if examples is None:
        raise ServingError(f"JSON Value: {debug_string(doc)} When method is classify, key 'examples' is expected and was not found")
    if not isinstance(examples, list):
        raise ServingError(f"JSON Value: {debug_string(doc)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise ServingError(f"JSON Value: {debug_string(doc)} 'examples' value is an empty array")
    for example in examples:
        _check_example(example)


def _check_example(example):
    if not isinstance(example, dict):
        raise ServingError(f"Example must be JSON object but got JSON {json_type(example)}")
    for name, content in example.items():
        for value in content if isinstance(content, list) else [content]:
            if value is None or isinstance(value, list) or (isinstance(value, dict) and set(value) != {"b64"}):
                raise ServingError(f"Feature: {name} has element with unexpected JSON type: {json_type(value)}")


# ----------------------------------------------------------------------------- HTTP
def _gunzip(data, limit):
    """The decoded gzip body, refused once it passes ``limit`` bytes (a gzip bomb never fills memory)."""
    out = bytearray()
    try:
        while data:
            decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += decoder.decompress(data, limit + 1 - len(out))
            if len(out) > limit:
                raise ServingError(
                    f"The gzip-encoded request body decodes to more than the limit of {limit} bytes.", "PAYLOAD_TOO_LARGE"
                )
            if not decoder.eof:
                raise zlib.error("truncated gzip data")
            data = decoder.unused_data
    except zlib.error as err:
        # TF Serving reads an undecodable body as empty: keep its message, say why
        raise ServingError(f"JSON Parse error: The document is empty (the gzip body could not be decoded: {err})") from None
    return bytes(out)


class RestHandler(BaseHTTPRequestHandler):
    """TF Serving's REST routes over `RestServer.api`; subclass it to serve more (the studio does)."""

    protocol_version = "HTTP/1.1"
    server_version = "keras-vae-serve"
    timeout = 60  # seconds a client may stall mid-request before its connection is dropped
    # Headers and body go out in separate writes: with Nagle on, each answer waited ~40 ms for the
    # client's delayed ACK.
    disable_nagle_algorithm = True

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def do_DELETE(self):
        self._handle()

    def do_PATCH(self):
        self._handle()

    def do_HEAD(self):
        self._handle()

    def do_OPTIONS(self):
        """A CORS preflight: TF Serving answers 200 with an Origin header, 400 without, both with no body."""
        try:
            self._read_body()
        except ServingError:
            pass
        ok = re.search(r"https?://", self.headers.get("Origin", ""))
        self.send_response(200 if ok else 400)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _read_body(self):
        """The request body, de-chunked and gunzipped, at most ``max_request_bytes`` once decoded."""
        limit = self.server.max_request_bytes
        if self.headers.get("Transfer-Encoding", "").strip().lower() == "chunked":
            body = self._read_chunked(limit)
        else:
            body = self._read_sized(limit)
        if "gzip" in self.headers.get("Content-Encoding", ""):
            body = _gunzip(body, limit)
        return body

    def _read_sized(self, limit):
        length = self.headers.get("Content-Length")
        if length is None:
            return b""  # as libevent: no Content-Length and no chunking means no body
        if not length.strip().isdigit():
            self.close_connection = True
            raise ServingError(f"Invalid Content-Length {length!r}.")
        if int(length) > limit:
            self.close_connection = True  # the unread body must not be parsed as the next request
            raise ServingError(f"Request body of {int(length)} bytes exceeds the limit of {limit} bytes.", "PAYLOAD_TOO_LARGE")
        return self.rfile.read(int(length))

    def _read_chunked(self, limit):
        body = bytearray()
        while size := self._chunk_size():
            if len(body) + size > limit:
                self.close_connection = True
                raise ServingError(f"Request body exceeds the limit of {limit} bytes.", "PAYLOAD_TOO_LARGE")
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.readline(3).strip():
                self._malformed_chunks()
            body += chunk
        while self.rfile.readline(8192).strip():  # trailer fields, ignored
            pass
        return bytes(body)

    def _chunk_size(self):
        line = self.rfile.readline(1024)
        try:
            return int(line.split(b";")[0].strip(), 16)
        except ValueError:
            self._malformed_chunks()

    def _malformed_chunks(self):
        self.close_connection = True
        raise ServingError("Malformed chunked request body.")

    def _target(self):
        """The path and query TF Serving matches (an absolute-form target loses its scheme and host)."""
        if self.path.startswith("/"):
            return self.path
        parts = urllib.parse.urlsplit(self.path)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def _handle(self):
        try:
            body = self._read_body()
            target = self._target()
            if not _API_PATH.fullmatch(target):
                raise ServingError(f"Not found: {self.command} {target} (the API lives under /v1/models/)", "NOT_FOUND")
            status, payload = self.server.api.handle(self.command, target, body)
        except ServingError as err:
            status, payload = err.http_status, {"error": err.message}
        except Exception as err:  # the server keeps serving whatever one request hit
            self.server.repository.log(traceback.format_exc())
            status, payload = 500, {"error": f"Internal error: {type(err).__name__}: {err}"}
        self._send_json(status, payload)

    def _send_json(self, status, payload):
        data = dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)


class RestServer(ThreadingHTTPServer):
    """The HTTP server; ``api`` answers requests, ``repository`` holds the served versions."""

    daemon_threads = True
    # The listen backlog (socketserver's default is 5): a burst of clients beyond it, arriving while the
    # accept loop waits for the GIL, had connections reset.
    request_queue_size = 128

    def __init__(self, repository, host, port, max_request_bytes, max_batch_size, verbose, handler_class=None):
        super().__init__((host, port), handler_class or RestHandler)
        self.repository = repository
        self.api = RestApi(repository, max_batch_size)
        self.max_request_bytes = max_request_bytes
        self.verbose = verbose

    def close(self):
        self.shutdown()
        self.server_close()
        self.repository.stop()

    def serve_until_interrupted(self):
        """Serves until Ctrl-C, then closes the socket and stops polling for versions."""
        try:
            self.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self.server_close()
            self.repository.stop()


def _policy_argument(version_policy):
    """``None``/``"latest"``/N/``"all"``/[versions] as an `aspired_versions` policy."""
    if version_policy is None or version_policy == "latest":
        return ("latest", 1)
    if version_policy == "all":
        return ("all", None)
    if isinstance(version_policy, int) and not isinstance(version_policy, bool) and version_policy > 0:
        return ("latest", version_policy)
    if isinstance(version_policy, (list, tuple, set)) and all(isinstance(v, int) for v in version_policy):
        return ("specific", set(version_policy))
    raise ValueError(f"version_policy must be 'latest', 'all', a positive int or a list of versions, got {version_policy!r}.")


def make_server(
    model_base_path,
    host="127.0.0.1",
    port=DEFAULT_PORT,
    model_name=None,
    max_request_bytes=MAX_REQUEST_BYTES,
    max_batch_size=MAX_BATCH_SIZE,
    poll_seconds=POLL_SECONDS,
    verbose=False,
    model_config_file=None,
    version_labels=None,
    version_policy=None,
    max_load_retries=MAX_LOAD_RETRIES,
    load_retry_seconds=None,
    handler_class=None,
):
    """A started repository behind a bound (not yet serving) `RestServer`; call ``serve_forever()``.

    ``model_config_file``: a models.config (``model_config_list``) whose entry for the model gives its
    name, ``version_labels`` and ``model_version_policy``. ``version_labels`` ({label: version}) adds
    or overrides labels; ``version_policy`` ('latest', N latest, 'all' or a list of versions) overrides
    the policy. A version that fails to load is retried every ``load_retry_seconds`` (default: each
    poll) up to ``max_load_retries`` times. Raises FileNotFoundError for a folder without versions and
    ValueError for a label on a version that is not available.

    >>> server = make_server("saved_models/vae", port=0, version_labels={"stable": 1}, version_policy="all")
    """
    labels, policy = {}, ("latest", 1)
    if model_config_file is not None:
        model_name, labels, policy = read_model_config(model_config_file, model_name)
    if version_policy is not None:
        policy = _policy_argument(version_policy)
    labels.update(version_labels or {})
    repository = ModelRepository(
        model_base_path, model_name, poll_seconds, version_policy=policy, version_labels=labels,
        max_load_retries=max_load_retries, load_retry_seconds=load_retry_seconds,
    )
    try:
        repository.start()
        return RestServer(repository, host, port, max_request_bytes, max_batch_size, verbose, handler_class)
    except BaseException:
        repository.stop()
        raise
