"""TF Serving's REST routes: a request's method, path and body to a ``(status, JSON object)`` answer.

Paths and their decoding follow tensorflow_serving/model_servers/http_rest_api_handler.cc and
http_rest_api_util.cc: status, metadata, ``:predict``, and ``:classify`` / ``:regress`` (which answer
TF Serving's errors: keras-vae models have no such signatures). The answer comes from the versions a
`keras_vae.export.repository.ModelRepository` serves; `keras_vae.export.http_transport` carries it over HTTP.

Example:

>>> api = RestApi(repository, max_batch_size=64)
>>> api.handle("POST", "/v1/models/vae:predict", b'{"instances": [[0, 0]]}')
(200, {'predictions': [...]})
>>> api.handle("GET", "/v1/models/vae/versions/1", b"")
(200, {'model_version_status': [{'version': '1', 'state': 'AVAILABLE', ...}]})
"""

import re
import urllib.parse

from keras_vae.export.layout import MAX_VERSION
from keras_vae.export.rest_format import predict_response
from keras_vae.export.rest_json import ServingError, debug_string, json_type
from keras_vae.export.rest_request import parse_predict_body, request_tensors

MAX_BATCH_SIZE = 1024

# TF Serving's path patterns (http_rest_api_util.cc), matched against the path and query as sent.
_API_PATH = re.compile(r"(?i)/v1/.*")
_VERSION_OR_LABEL = r"(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
_PREDICT_PATH = re.compile(rf"(?i)/v1/models/([^/:]+){_VERSION_OR_LABEL}:(classify|regress|predict)")
_STATUS_PATH = re.compile(rf"(?i)/v1/models(?:/([^/:]+))?{_VERSION_OR_LABEL}(?:/(metadata))?")


class RestApi:
    """Routes a request (method, path with query, body) to a ``(status, JSON object)`` answer, as TF Serving."""

    def __init__(self, repository, max_batch_size=MAX_BATCH_SIZE):
        self.repository = repository
        self.max_batch_size = max_batch_size

    def handle(self, method, path, body):
        """``(HTTP status, JSON object)`` for a request; raises `ServingError` with TF Serving's error."""
        if not _API_PATH.fullmatch(path):
            raise ServingError(f"Not found: {method} {path} (the API lives under /v1/models/)", "NOT_FOUND")
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
        if int(version) > MAX_VERSION:
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
