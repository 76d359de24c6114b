"""`keras-vae serve` against TF Serving's REST behaviour, point by point, over real HTTP on 127.0.0.1.

Each expectation comes from TF Serving's source (model_servers/http_rest_api_handler.cc, http_server.cc,
http_rest_api_util.cc, get_model_status_impl.cc, server_core.cc, util/json_tensor.cc, util/net_http).
"""

import contextlib
import gzip
import http.client
import json
import os
import re
import shutil
import threading
import time
import zlib

import numpy as np
import pytest
import tensorflow as tf

from keras_vae.export.client import RestClient
from keras_vae.export.saved_model import export_model
from keras_vae.export.server import make_server
from tests.export.test_server import raw_request, wait_for

ZERO = [0.0, 0.0, 0.0, 0.0]


def send(server, method, path, body=None, headers=None):
    """``(status, headers, raw body)``; ``body`` is sent as is when bytes, else as JSON."""
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=60)
    try:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        connection.request(method, path, body=data, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def call(server, method, path, body=None, headers=None):
    status, _, raw = send(server, method, path, body, headers)
    return status, json.loads(raw)


@contextlib.contextmanager
def serving(base, **options):
    server = make_server(base, port=0, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.close()
        thread.join(timeout=10)


def statuses(server, path="/v1/models/vae"):
    return [(s["version"], s["state"]) for s in call(server, "GET", path)[1]["model_version_status"]]


@pytest.fixture(scope="module")
def decode(exported):
    return tf.saved_model.load(exported.saved_model_dir).signatures["serving_default"]


def expected_images(decode, z):
    return decode(z=tf.constant(np.asarray(z, np.float32)))["images"].numpy()


# ----------------------------------------------------------------------------- 1. status order
def test_status_lists_versions_newest_first_after_a_hot_reload(model_copy, vae):
    with serving(model_copy, poll_seconds=0.1) as server:
        export_model(vae, base_dir=os.path.dirname(model_copy), name="vae")  # version 2
        wait_for(lambda: statuses(server) == [("2", "AVAILABLE"), ("1", "END")])
        # the usual readiness check of TF Serving clients
        assert call(server, "GET", "/v1/models/vae")[1]["model_version_status"][0]["state"] == "AVAILABLE"


# ----------------------------------------------------------------------------- 2. ignored keys and trailing text
def test_unknown_top_level_keys_extra_columnar_inputs_and_trailing_text_are_ignored(rest_server, decode):
    z = [[0.5, -1.0, 0.25, 2.0]]
    images = expected_images(decode, z)
    for body, key in (
        ({"instances": z, "parameters": {"temperature": 1}, "request_id": "abc-1"}, "predictions"),
        ({"inputs": {"z": z, "label": [3], "extra": "x"}, "id": 7}, "outputs"),
        (json.dumps({"instances": z}).encode() + b"\n{garbage after the root object", "predictions"),
    ):
        status, answer = call(rest_server, "POST", "/v1/models/vae:predict", body)
        assert status == 200 and set(answer) == {key}, answer
        np.testing.assert_array_equal(np.asarray(answer[key], np.float32), images)
    # Extra keys inside a row object are still an error in TF Serving.
    status, answer = call(rest_server, "POST", "/v1/models/vae:predict", {"instances": [{"z": z[0], "label": 1}]})
    assert status == 400 and "does not have named input: label" in answer["error"]


# ----------------------------------------------------------------------------- 3. chunked and gzip bodies
def chunked(data, size=7):
    parts = [b"%x;ext=1\r\n%s\r\n" % (len(data[i : i + size]), data[i : i + size]) for i in range(0, len(data), size)]
    return b"".join(parts) + b"0\r\nX-Trailer: 1\r\n\r\n"


def post_raw(server, headers, body):
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return raw_request(server, f"POST /v1/models/vae:predict HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + body)


def test_chunked_and_gzip_request_bodies_are_accepted(rest_server, decode):
    body = json.dumps({"instances": [ZERO, [1.0, 0.0, -1.0, 0.5]]}).encode()
    images = expected_images(decode, [ZERO, [1.0, 0.0, -1.0, 0.5]])
    for headers, data in (
        ({"Transfer-Encoding": "chunked"}, chunked(body)),
        ({"Content-Encoding": "gzip", "Content-Length": str(len(gzip.compress(body)))}, gzip.compress(body)),
        ({"Content-Encoding": "gzip", "Transfer-Encoding": "chunked"}, chunked(gzip.compress(body), 100)),
    ):
        status, answer = post_raw(rest_server, headers, data)
        assert status == 200, answer
        np.testing.assert_array_equal(np.asarray(answer["predictions"], np.float32), images)
    # keep-alive stays usable after a chunked request
    connection = http.client.HTTPConnection("127.0.0.1", rest_server.server_port, timeout=60)
    try:
        for _ in range(2):
            connection.request("POST", "/v1/models/vae:predict", body=iter([body[:10], body[10:]]))  # sent chunked
            response = connection.getresponse()
            assert response.status == 200 and "predictions" in json.loads(response.read())
    finally:
        connection.close()


def gzip_zeros(size, step=1 << 20):
    """A gzip member of ``size`` zero bytes, built without holding them in memory."""
    encoder = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [encoder.compress(bytes(step)) for _ in range(size // step)]
    return b"".join(parts) + encoder.flush()


def test_the_size_limit_applies_to_the_decoded_body_and_a_gzip_bomb_is_refused(rest_server):
    limit = rest_server.max_request_bytes  # 1 MiB in the fixture
    padded = json.dumps({"instances": [ZERO], "padding": "x" * (limit + 10)}).encode()
    small = gzip.compress(padded)
    assert len(small) < limit
    status, answer = post_raw(rest_server, {"Content-Encoding": "gzip", "Content-Length": str(len(small))}, small)
    assert status == 413 and f"limit of {limit} bytes" in answer["error"]
    bomb = gzip_zeros(512 << 20)  # 512 MiB of zeros in about 500 KB
    started = time.monotonic()
    status, answer = post_raw(rest_server, {"Content-Encoding": "gzip", "Content-Length": str(len(bomb))}, bomb)
    assert status == 413 and time.monotonic() - started < 20
    status, answer = post_raw(rest_server, {"Transfer-Encoding": "chunked"}, chunked(padded, 65536))
    assert status == 413 and f"limit of {limit} bytes" in answer["error"]
    status, answer = post_raw(rest_server, {"Content-Encoding": "gzip", "Content-Length": "9"}, b"not gzip!")
    assert status == 400 and "JSON Parse error: The document is empty" in answer["error"]
    status, answer = post_raw(rest_server, {"Transfer-Encoding": "chunked"}, b"zz\r\n")
    assert status == 400 and "Malformed chunked" in answer["error"]
    assert call(rest_server, "POST", "/v1/models/vae:predict", {"instances": [ZERO]})[0] == 200


# ----------------------------------------------------------------------------- 4. version labels
MODELS_CONFIG = """model_config_list {
  config {
    name: "vae"
    base_path: "%s"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 2 }
  }
}
"""


@pytest.fixture
def two_versions(model_copy, vae):
    export_model(vae, base_dir=os.path.dirname(model_copy), name="vae")  # version 2
    config = model_copy / "labels.config"
    config.write_text(MODELS_CONFIG % model_copy)
    return model_copy, config


def test_version_labels_from_a_models_config_route_status_metadata_and_predict(two_versions):
    base, config = two_versions
    with serving(base, model_config_file=str(config)) as server:
        assert statuses(server) == [("2", "AVAILABLE"), ("1", "AVAILABLE")]
        for label, version in (("stable", "1"), ("canary", "2")):
            status, answer = call(server, "GET", f"/v1/models/vae/labels/{label}/metadata")
            assert status == 200 and answer["model_spec"]["version"] == version
            status, answer = call(server, "POST", f"/v1/models/vae/labels/{label}:predict", {"instances": [ZERO]})
            assert status == 200 and np.asarray(answer["predictions"]).shape == (1, 16, 16, 1)
            # TF Serving's status request ignores the label (get_model_status_impl.cc): every version
            assert statuses(server, f"/v1/models/vae/labels/{label}") == [("2", "AVAILABLE"), ("1", "AVAILABLE")]
        client = RestClient(f"http://127.0.0.1:{server.server_port}", "vae", label="stable")
        assert client.metadata()["model_spec"]["version"] == "1" and client.predict(np.zeros([1, 4])).shape == (1, 16, 16, 1)
        for method, path in (("POST", "/v1/models/vae/labels/nope:predict"), ("GET", "/v1/models/vae/labels/nope/metadata")):
            status, answer = call(server, method, path, {"instances": [ZERO]} if method == "POST" else None)
            assert (status, answer) == (400, {"error": "Unrecognized servable version label: nope"})


def test_version_labels_from_arguments_and_labels_on_unavailable_versions(two_versions):
    base, _ = two_versions
    with serving(base, version_labels={"prod": 1}, version_policy="all") as server:
        assert call(server, "GET", "/v1/models/vae/labels/prod/metadata")[1]["model_spec"]["version"] == "1"
    with pytest.raises(ValueError, match="Request to assign label to version 1 of model vae, which is not currently"):
        make_server(base, port=0, version_labels={"prod": 1})  # the default policy serves only version 2


# ----------------------------------------------------------------------------- 5. float output text
def test_float_outputs_use_the_shortest_text_that_reads_back_as_the_same_float32(rest_server, decode):
    z = np.random.default_rng(7).standard_normal((8, 4)).astype(np.float32)
    status, _, raw = send(rest_server, "POST", "/v1/models/vae:predict", {"instances": z.tolist()})
    assert status == 200
    images = expected_images(decode, z)
    np.testing.assert_array_equal(np.asarray(json.loads(raw)["predictions"], np.float32), images)
    tokens = re.findall(rb"-?\d[\d.eE+-]*", raw)
    shortest = [str(v).encode() for v in images.ravel()]  # numpy's shortest float32 repr
    assert sum(map(len, tokens)) <= sum(map(len, shortest)) + len(tokens) // 100
    assert len(raw) < 0.75 * len(json.dumps({"predictions": images.astype(float).tolist()}))


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    """A tiny SavedModel with a string signature, a *_bytes output and outputs that can be NaN/Infinity."""

    class Toy(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def inverse(self, x):
            return {"inverse": 1.0 / x}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def text(self, text):
            return {"length": tf.strings.length(text), "echo_bytes": text}

    toy = Toy()
    base = tmp_path_factory.mktemp("toy") / "toy"
    tf.saved_model.save(toy, str(base / "1"), signatures={"serving_default": toy.inverse, "text": toy.text})
    return base


def test_nan_infinity_and_binary_values_travel_as_tf_serving_writes_them(toy_model):
    with serving(toy_model) as server:
        status, _, raw = send(server, "POST", "/v1/models/toy:predict", b'{"instances": [0, -0.0, NaN, 4, 0.1]}')
        assert status == 200 and raw == b'{"predictions":[Infinity,-Infinity,NaN,0.25,10.0]}'
        body = {"signature_name": "text", "inputs": [{"b64": "aGk="}, "abc", {"b64": "AP8"}]}
        status, answer = call(server, "POST", "/v1/models/toy:predict", body)
        assert status == 200 and answer["outputs"] == {"length": [2, 3, 2], "echo_bytes": [{"b64": "aGk="}, {"b64": "YWJj"}, {"b64": "AP8="}]}
        status, answer = call(server, "POST", "/v1/models/toy:predict", {"signature_name": "text", "instances": [{"b64": "%%"}]})
        assert status == 400 and "Unable to base64 decode" in answer["error"]
        status, answer = call(server, "POST", "/v1/models/toy:predict", {"signature_name": "text", "inputs": [{"b64": 1}]})
        assert status == 400 and "not formatted correctly for base64 data" in answer["error"]


# ----------------------------------------------------------------------------- 6. classify / regress
@pytest.mark.parametrize("verb, body, message", [
    ("classify", {"examples": [{"x": [1.0]}]}, "No classification inputs found in SignatureDef: "),
    ("regress", {"examples": [{"x": 1.0}]}, "No regression inputs found in SignatureDef: "),
    ("regress", {"signature_name": "sample", "examples": [{"x": 1.0}]}, "Expected one input Tensor."),
    ("classify", {"signature_name": "nope", "examples": [{"x": 1.0}]}, "No signature was found with the name: nope"),
    ("classify", {"instances": [ZERO]}, "When method is classify, key 'examples' is expected and was not found"),
    ("regress", {"examples": []}, "'examples' value is an empty array"),
    ("classify", {"examples": [[1.0]]}, "Example must be JSON object but got JSON Array"),
    ("classify", {"examples": [{"x": None}]}, "Feature: x has element with unexpected JSON type: Null"),
])
def test_classify_and_regress_answer_tf_serving_400s(rest_server, verb, body, message):
    status, answer = call(rest_server, "POST", f"/v1/models/vae:{verb}", body)
    assert status == 400 and message in answer["error"], answer


# ----------------------------------------------------------------------------- 7. non-atomic copies
def test_a_version_copied_in_non_atomically_is_retried_until_it_loads(model_copy, exported):
    source = exported.saved_model_dir
    with serving(model_copy, poll_seconds=0.1) as server:
        target = model_copy / "2"
        target.mkdir()
        shutil.copy(os.path.join(source, "saved_model.pb"), target)  # variables/ not there yet
        wait_for(lambda: statuses(server)[0][0] == "2")
        assert statuses(server)[0][1] in ("LOADING", "END") and ("1", "AVAILABLE") in statuses(server)
        assert call(server, "POST", "/v1/models/vae:predict", {"instances": [ZERO]})[0] == 200  # 1 still serves
        time.sleep(1.0)  # past TF Serving's 5 retries at this poll interval: the copy must still be picked up
        for entry in os.listdir(source):
            path = os.path.join(source, entry)
            if entry != "saved_model.pb":
                (shutil.copytree if os.path.isdir(path) else shutil.copy)(path, target / entry)
        wait_for(lambda: statuses(server) == [("2", "AVAILABLE"), ("1", "END")])


# ----------------------------------------------------------------------------- 8. a folder without versions
def test_make_server_on_a_folder_without_versions_names_it(tmp_path, exported):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=f"No model versions in '{tmp_path / 'empty'}'"):
        make_server(tmp_path / "empty", port=0)
    with pytest.raises(FileNotFoundError, match="serve its parent folder"):
        make_server(exported.saved_model_dir, port=0)


# ----------------------------------------------------------------------------- other REST behaviour
@pytest.mark.parametrize("method, path, body, status, message", [
    ("POST", "/v1/models/vae:predict", b"instances = [1, 2]", 400, "JSON Parse error: Invalid value. at offset: 0"),
    ("POST", "/v1/models/vae:predict", b'{"instances": [1 2]}', 400, "JSON Parse error: Missing a comma or ']' after an array element. at offset: 17"),
    ("POST", "/v1/models/vae:predict", b"   ", 400, "JSON Parse error: The document is empty. at offset: 3"),
    ("POST", "/v1/models/nope:predict", b"{", 400, "JSON Parse error: Missing a name for object member. at offset: 1"),
    ("POST", "/v1/models/vae:predict", {"signature_name": 100}, 400, "'signature_name' key must be a string value."),
    ("POST", "/v1/models/vae:PREDICT", {"instances": [ZERO]}, 400, "Malformed request: POST /v1/models/vae:PREDICT"),
    ("POST", "/v1/models/vae", {"instances": [ZERO]}, 400, "Malformed request: POST /v1/models/vae"),
    ("POST", "/v1/models/vae/metadata", b"", 400, "Malformed request"),
    ("POST", "/v1/models/vae/versions/HELLO:predict", b"", 400, "Malformed request"),
    ("POST", "/v1/models/vae/versions/1/labels/x:predict", b"", 400, "Malformed request"),
    ("POST", "/v1/models/vae/versions/18446744073709551615:predict", b"", 400, "Failed to convert version: 18446744073709551615 to numeric."),
    ("GET", "/v1/models/debug/model_name", None, 400, "Malformed request"),
    ("GET", "/v1/foo", None, 400, "Malformed request: GET /v1/foo"),
    ("PUT", "/v1/models/vae", b"{}", 400, "Malformed request: PUT /v1/models/vae"),
    ("PATCH", "/v1/models/vae", b"{}", 400, "Malformed request: PATCH /v1/models/vae"),
    ("GET", "/v1/models/vae?debug=1", None, 404, "Could not find any versions of model vae?debug=1"),
    ("POST", "/v1/models/vae:predict?debug=1", {"instances": [ZERO]}, 400, "Malformed request"),
    ("GET", "/v1/models/vae/labels/x", None, 200, None),
])
def test_routing_and_parse_errors_follow_tf_serving(rest_server, method, path, body, status, message):
    got, answer = call(rest_server, method, path, body)
    assert got == status and (message is None or message in answer["error"]), answer


def test_paths_are_case_insensitive_and_names_url_decoded(rest_server):
    status, answer = call(rest_server, "POST", "/V1/MODELS/v%61e/VERSIONS/1:predict", {"instances": [ZERO]})
    assert status == 200 and "predictions" in answer
    assert call(rest_server, "GET", "/v1/models/vae/METADATA")[1]["model_version_status"][0]["version"] == "1"


def test_head_and_options_requests(rest_server):
    status, headers, raw = send(rest_server, "HEAD", "/v1/models/vae")
    assert status == 400 and raw == b"" and headers["Content-Type"] == "application/json"
    assert send(rest_server, "OPTIONS", "/v1/models/vae:predict", headers={"Origin": "http://a.example"})[::2] == (200, b"")
    assert send(rest_server, "OPTIONS", "/v1/models/vae:predict")[::2] == (400, b"")
    assert call(rest_server, "POST", "/v1/models/vae:predict", {"instances": [ZERO]})[0] == 200
