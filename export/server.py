"""`keras-vae serve`: a local HTTP server that follows TF Serving's REST API, for development and tests.

Production serving is TF Serving (tensorflow_model_server or the tensorflow/serving image); this
server mirrors its REST contract for what it implements, so a client written against one works
against the other:

- ``GET  /v1/models/NAME[/versions/N]``            model status (``model_version_status``)
- ``GET  /v1/models/NAME[/versions/N]/metadata``   the signature_def map
- ``POST /v1/models/NAME[/versions/N]:predict``    row (``instances``) or columnar (``inputs``) requests,
  optional ``signature_name``; answers ``predictions`` / ``outputs``
- errors as ``{"error": "..."}`` with TF Serving's status codes (400 bad input, 404 unknown model,
  version or path, 413 body too large, 500 internal).

Like TF Serving's default version policy it serves the highest version under ``BASE/NAME`` and
polls the folder, loading new versions as they appear (warm-up records are replayed at load).
Differences: classify/regress are not implemented (501); request bodies and batch sizes are
bounded; unknown top-level request keys are rejected instead of ignored.

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
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from keras_vae.export.layout import existing_versions
from keras_vae.export.rest_format import InputSpec, ServingError, dumps, loads, predict_response, request_tensors
from keras_vae.export.signatures import error_message
from keras_vae.export.warmup import read_warmup

DEFAULT_PORT = 8501
MAX_REQUEST_BYTES = 32 * 1024 * 1024
MAX_BATCH_SIZE = 1024
POLL_SECONDS = 1.0

_PREDICT_PATH = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+))?:(classify|regress|predict)", re.IGNORECASE)
_STATUS_PATH = re.compile(r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+))?(?:/(metadata))?", re.IGNORECASE)

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

    def metadata(self, model_name):
        from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2

        spec = model_pb2.ModelSpec(name=model_name)
        spec.version.value = self.version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in self.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(value)
        return {"model_spec": _json_proto(spec), "metadata": {"signature_def": _json_proto(signature_map)}}


class ModelRepository:
    """Serves the highest version under ``base_path``, polling for new ones (TF Serving's default policy).

    A version that fails to load is reported in the status as END with its error, and the previous
    version keeps serving.
    """

    def __init__(self, base_path, model_name=None, poll_seconds=POLL_SECONDS, log=None):
        self.base_path = os.path.abspath(os.fspath(base_path))
        if not os.path.isdir(self.base_path):
            raise FileNotFoundError(f"No model folder at {self.base_path!r} (expected BASE/NAME with version folders).")
        self.model_name = model_name or os.path.basename(self.base_path)
        self.poll_seconds = poll_seconds
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self._lock = threading.Lock()
        self._current = None
        self._states = {}  # version -> (state, error_code, error_message)
        self._failed = set()  # versions that failed to load; not retried (as TF Serving)
        self._stop = threading.Event()
        self._poller = None

    def refresh(self):
        """Serves the highest complete version (one with saved_model.pb that has not failed to load)."""
        versions = [
            v
            for v in existing_versions(self.base_path)
            if v not in self._failed and os.path.isfile(os.path.join(self.base_path, str(v), "saved_model.pb"))
        ]
        target = versions[-1] if versions else None
        current = self._current
        if current is not None and current.version not in versions:
            self.log(f"keras-vae serve: {current.path} was removed; it is no longer served")
            with self._lock:
                self._states[current.version] = ("END", "OK", "")
                self._current = current = None
        if target is None or (current is not None and target <= current.version):
            return
        with self._lock:
            self._states[target] = ("LOADING", "OK", "")
        try:
            servable = Servable(target, os.path.join(self.base_path, str(target)))
        except Exception as err:  # a broken version must not take the server down
            message = f"{type(err).__name__}: {err}".strip()
            self._failed.add(target)
            with self._lock:
                self._states[target] = ("END", "UNKNOWN", message)
            self.log(f"keras-vae serve: version {target} of {self.model_name!r} failed to load: {message}")
            return
        with self._lock:
            if current is not None:
                self._states[current.version] = ("END", "OK", "")
            self._states[target] = ("AVAILABLE", "OK", "")
            self._current = servable
        self.log(f"keras-vae serve: serving version {target} of {self.model_name!r} from {servable.path}")

    def start(self):
        self.refresh()
        self._poller = threading.Thread(target=self._poll, name="version-poller", daemon=True)
        self._poller.start()

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

    def servable(self, model_name, version=None):
        current = self._current
        if model_name != self.model_name or current is None or (version is not None and version != current.version):
            request = f"Latest({model_name})" if version is None else f"Specific({model_name}, {version})"
            raise ServingError(f"Servable not found for request: {request}", "NOT_FOUND")
        return current

    def status(self, model_name, version=None):
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
        for v, (state, code, message) in sorted(states.items()):
            entry = response.model_version_status.add(version=v)
            entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
            entry.status.error_code = _error_codes().values_by_name[code].number
            entry.status.error_message = message
        return _json_proto(response)


class RestApi:
    """Routes a request (method, path, body) to a ``(status, JSON object)`` answer."""

    def __init__(self, repository, max_batch_size=MAX_BATCH_SIZE):
        self.repository = repository
        self.max_batch_size = max_batch_size

    def handle(self, method, path, body):
        path = urllib.parse.urlsplit(path).path
        if method == "POST" and (match := _PREDICT_PATH.fullmatch(path)):
            name, version, verb = match.groups()
            if verb.lower() != "predict":
                raise ServingError(f"'{verb}' is not implemented by this server (predict only).", "UNIMPLEMENTED")
            return 200, self.predict(urllib.parse.unquote(name), _version(version), body)
        if method == "GET" and (match := _STATUS_PATH.fullmatch(path)):
            name, version, metadata = match.groups()
            if not name:
                raise ServingError("Missing model name in request.")
            name, version = urllib.parse.unquote(name), _version(version)
            if metadata:
                return 200, self.repository.servable(name, version).metadata(name)
            return 200, self.repository.status(name, version)
        if path.lower().startswith("/v1/"):
            raise ServingError(f"Malformed request: {method} {path}")
        raise ServingError(f"Not found: {method} {path} (the API lives under /v1/models/)", "NOT_FOUND")

    def predict(self, model_name, version, raw):
        servable = self.repository.servable(model_name, version)
        body = loads(raw)
        if not isinstance(body, dict):
            raise ServingError(f"JSON Value: {raw[:80]!r} Is not object")
        signature_name = body.get("signature_name", "serving_default") or "serving_default"
        if not isinstance(signature_name, str):
            raise ServingError("'signature_name' key must be a string value.")
        if signature_name not in servable.signatures:
            raise ServingError(f'Serving signature key "{signature_name}" not found.', "FAILED_PRECONDITION")
        check_bools = b"true" in raw or b"false" in raw
        inputs, columnar = request_tensors(
            body, servable.input_specs[signature_name], signature_name, self.max_batch_size, check_bools
        )
        return predict_response(servable.run(signature_name, inputs), columnar)


def _version(text):
    return None if text is None else int(text)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "keras-vae-serve"
    timeout = 60  # seconds a client may stall mid-request before its connection is dropped

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def do_DELETE(self):
        self._handle()

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise ServingError("Chunked request bodies are not supported: send a Content-Length.", "LENGTH_REQUIRED")
        length = self.headers.get("Content-Length")
        if length is None:
            if self.command == "POST":
                self.close_connection = True
                raise ServingError("A POST request needs a Content-Length header.", "LENGTH_REQUIRED")
            return b""
        try:
            length = int(length)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise ServingError(f"Invalid Content-Length {length!r}.") from None
        limit = self.server.max_request_bytes
        if length > limit:
            self.close_connection = True  # the unread body must not be parsed as the next request
            raise ServingError(f"Request body of {length} bytes exceeds the limit of {limit} bytes.", "PAYLOAD_TOO_LARGE")
        return self.rfile.read(length)

    def _handle(self):
        try:
            body = self._read_body()
            status, payload = self.server.api.handle(self.command, self.path, body)
        except ServingError as err:
            status, payload = err.http_status, {"error": err.message}
        except Exception as err:  # the server keeps serving whatever one request hit
            self.server.repository.log(traceback.format_exc())
            status, payload = 500, {"error": f"Internal error: {type(err).__name__}: {err}"}
        data = dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
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

    def __init__(self, repository, host, port, max_request_bytes, max_batch_size, verbose):
        super().__init__((host, port), _Handler)
        self.repository = repository
        self.api = RestApi(repository, max_batch_size)
        self.max_request_bytes = max_request_bytes
        self.verbose = verbose

    def close(self):
        self.shutdown()
        self.server_close()
        self.repository.stop()


def make_server(
    model_base_path,
    host="127.0.0.1",
    port=DEFAULT_PORT,
    model_name=None,
    max_request_bytes=MAX_REQUEST_BYTES,
    max_batch_size=MAX_BATCH_SIZE,
    poll_seconds=POLL_SECONDS,
    verbose=False,
):
    """A started repository behind a bound (not yet serving) `RestServer`; call ``serve_forever()``."""
    repository = ModelRepository(model_base_path, model_name, poll_seconds)
    repository.start()
    try:
        return RestServer(repository, host, port, max_request_bytes, max_batch_size, verbose)
    except OSError:
        repository.stop()
        raise

