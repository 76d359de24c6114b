"""`keras-vae serve` over real HTTP on 127.0.0.1: TF Serving's REST contract, error answers, version pickup."""

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from keras_vae.export.client import RestClient
from keras_vae.export.rest_format import ServingError
from keras_vae.export.saved_model import export_model
from keras_vae.export.server import make_server


def request(server, method, path, body=None):
    """``(status, parsed JSON)``; ``body`` is sent as is when bytes, else as JSON."""
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=60)
    try:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.getheader("Content-Type") == "application/json"
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def raw_request(server, head):
    """Sends raw request bytes and returns ``(status, parsed JSON)`` (for malformed HTTP framing)."""
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=60) as sock:
        sock.sendall(head)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    header, _, body = data.partition(b"\r\n\r\n")
    return int(header.split()[1]), json.loads(body)


def assert_still_serving(server):
    status, body = request(server, "POST", "/v1/models/vae:predict", {"instances": [[0.0, 0.0, 0.0, 0.0]]})
    assert status == 200 and np.asarray(body["predictions"]).shape == (1, 16, 16, 1)


@pytest.fixture(scope="module")
def signatures(exported):
    return tf.saved_model.load(exported.saved_model_dir).signatures


def test_model_status_is_tf_serving_shaped(rest_server):
    expected = {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert request(rest_server, "GET", "/v1/models/vae") == (200, expected)
    assert request(rest_server, "GET", "/v1/models/vae/versions/1") == (200, expected)


def test_metadata_is_the_signature_def_map(rest_server):
    status, body = request(rest_server, "GET", "/v1/models/vae/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": "vae", "version": "1", "signature_name": ""}
    defs = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "sample", "encode", "reconstruct", "score"} <= set(defs)
    z = defs["serving_default"]["inputs"]["z"]
    assert z["dtype"] == "DT_FLOAT" and [d["size"] for d in z["tensor_shape"]["dim"]] == ["-1", "4"]
    assert defs["sample"]["inputs"]["seed"]["dtype"] == "DT_INT64"
    assert defs["sample"]["method_name"] == "tensorflow/serving/predict"


def test_predict_row_and_columnar_formats_agree_with_the_saved_model(rest_server, signatures):
    z = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    expected = signatures["serving_default"](z=tf.constant(z))["images"].numpy()
    for body, key in (
        ({"instances": z.tolist()}, "predictions"),
        ({"instances": [{"z": row} for row in z.tolist()]}, "predictions"),
        ({"signature_name": "serving_default", "inputs": z.tolist()}, "outputs"),
        ({"inputs": {"z": z.tolist()}}, "outputs"),
    ):
        status, answer = request(rest_server, "POST", "/v1/models/vae:predict", body)
        assert status == 200 and set(answer) == {key}, answer
        np.testing.assert_allclose(np.asarray(answer[key], np.float32), expected, atol=1e-6)
    status, answer = request(rest_server, "POST", "/v1/models/vae/versions/1:predict", {"instances": z.tolist()})
    assert status == 200


def test_multi_output_signatures_in_both_formats(rest_server, signatures, bar_data):
    images = bar_data[0][:2]
    status, answer = request(rest_server, "POST", "/v1/models/vae:predict", {"signature_name": "encode", "instances": images.tolist()})
    assert status == 200 and len(answer["predictions"]) == 2 and set(answer["predictions"][0]) == {"loc", "scale"}
    expected = signatures["encode"](images=tf.constant(images))
    np.testing.assert_allclose([p["loc"] for p in answer["predictions"]], expected["loc"].numpy(), atol=1e-6)
    body = {"signature_name": "sample", "inputs": {"num_samples": 3, "temperature": 0.5, "seed": 11}}
    first, second = (request(rest_server, "POST", "/v1/models/vae:predict", body)[1] for _ in range(2))
    assert set(first["outputs"]) == {"images", "z"} and first == second
    assert np.asarray(first["outputs"]["images"]).shape == (3, 16, 16, 1)


def row(*values):
    return {"instances": [list(values)]}


ZERO = [0.0, 0.0, 0.0, 0.0]
SAMPLE = {"num_samples": 2, "temperature": 1.0, "seed": 1}
BAD_REQUESTS = [
    (b'{"instances": [[0, 0, 0', 400, "JSON Parse error"),
    (b"", 400, "JSON Parse error: The document is empty"),
    (b"[1, 2]", 400, "Is not object"),
    ({"instances": [ZERO], "inputs": [ZERO]}, 400, "expecting only one of 'inputs' or 'instances'"),
    ({}, 400, "Missing 'inputs' or 'instances' key"),
    ({"instance": [ZERO]}, 400, "Missing 'inputs' or 'instances' key"),  # unknown keys are ignored, as TF Serving
    ({"instances": [{"z": ZERO, "w": 1}]}, 400, "key: w of 'instances' list. Error: INVALID_ARGUMENT: JSON object: does not have named input: w"),
    ({"instances": [{}]}, 400, "JSON object: {} keys must be equal to: z"),
    (row(0.0, 0.0, 0.0), 400, "must have shape [batch, 4], got [1, 3]"),
    ({"instances": [ZERO, [0.0, 0.0]]}, 400, "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: Expecting tensor size: 4 but got: 2"),
    (row("a", "b", "c", "d"), 400, 'JSON Value: "a" Type: String is not of expected type: float'),
    (row(True, False, True, True), 400, "JSON Value: true Type: True is not of expected type: float"),
    (row(0.5, True, 0.0, 0.0), 400, "Type: True is not of expected type: float"),
    (row(None, 0.0, 0.0, 0.0), 400, "Type: Null is not of expected type: float"),
    ({"instances": [{"b64": "AAAA"}]}, 400, "Type: Object is not of expected type: float"),
    ({"inputs": {"z": [{"b64": "AAAA"}]}}, 400, "Type: Object is not of expected type: float"),
    (row(1e39, 0.0, 0.0, 0.0), 400, "z must be finite"),  # float32(1e39) is inf, as in TF Serving
    (b'{"instances": [[NaN, 0, 0, 0]]}', 400, "z must be finite"),
    (b'{"instances": [[0, -Infinity, 0, 0]]}', 400, "z must be finite"),
    ({"instances": []}, 400, "No values in 'instances' array"),
    ({"instances": [ZERO] * 65}, 400, "Batch size 65 exceeds this server's maximum of 64"),
    ({"signature_name": "sample", "inputs": {**SAMPLE, "num_samples": 2.5}}, 400, "JSON Value: 2.5 Type: Number is not of expected type: int32"),
    ({"signature_name": "sample", "inputs": {**SAMPLE, "seed": 2**70}}, 400, "Type: Number is not of expected type: int64"),
    ({"signature_name": "sample", "inputs": {**SAMPLE, "num_samples": 5000}}, 400, "num_samples must be <= 1024"),
    ({"signature_name": "sample", "inputs": {**SAMPLE, "temperature": -1.0}}, 400, "temperature must be > 0"),
    ({"signature_name": "sample", "inputs": {"num_samples": 2}}, 400, "Missing named input: seed"),
    ({"signature_name": "sample", "instances": [SAMPLE]}, 400, "scalar inputs need the columnar 'inputs' format"),
    ({"signature_name": "score", "instances": np.full([1, 16, 16, 1], 255.0).tolist()}, 400, "images must be in [0, 1]"),
    ({"signature_name": "nope", "instances": [ZERO]}, 400, 'Serving signature name: "nope" not found in signature def'),
    ({"signature_name": 3, "instances": [ZERO]}, 400, "'signature_name' key must be a string value."),
]


@pytest.mark.parametrize("body, status, message", BAD_REQUESTS, ids=[m for _, _, m in BAD_REQUESTS])
def test_bad_predict_requests_get_a_json_error_and_the_server_keeps_serving(rest_server, body, status, message):
    got_status, answer = request(rest_server, "POST", "/v1/models/vae:predict", body)
    assert got_status == status and set(answer) == {"error"}, answer
    assert message in answer["error"], answer["error"]
    assert_still_serving(rest_server)


UNKNOWN_TARGETS = [
    ("POST", "/v1/models/other:predict", 404, "Servable not found for request: Latest(other)"),
    ("POST", "/v1/models/vae/versions/7:predict", 404, "Servable not found for request: Specific(vae, 7)"),
    ("GET", "/v1/models/other", 404, "Could not find any versions of model other"),
    ("GET", "/v1/models/vae/versions/7", 404, "Could not find version 7 of model vae"),
    ("GET", "/v1/models/vae/versions/7/metadata", 404, "Specific(vae, 7)"),
    ("GET", "/v1/models", 400, "Missing model name in request."),
    ("GET", "/v1/models/vae:predict", 400, "Malformed request: GET /v1/models/vae:predict"),
    ("DELETE", "/v1/models/vae", 400, "Malformed request: DELETE"),
    ("POST", "/v1/models/vae:classify", 400, "When method is classify, key 'examples' is expected and was not found"),
    ("GET", "/index.html", 404, "Not found"),
]


@pytest.mark.parametrize("method, path, status, message", UNKNOWN_TARGETS, ids=[p for _, p, _, _ in UNKNOWN_TARGETS])
def test_unknown_models_versions_and_paths(rest_server, method, path, status, message):
    body = {"instances": [ZERO]} if method == "POST" else None
    got_status, answer = request(rest_server, method, path, body)
    assert got_status == status and message in answer["error"], answer
    assert_still_serving(rest_server)


def test_request_framing_limits(rest_server):
    too_big = b"POST /v1/models/vae:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n"
    status, answer = raw_request(rest_server, too_big)
    assert status == 413 and "exceeds the limit of 1048576 bytes" in answer["error"]
    # No Content-Length and no chunking: libevent reads no body, so TF Serving parses an empty document.
    status, answer = raw_request(rest_server, b"POST /v1/models/vae:predict HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 400 and answer["error"] == "JSON Parse error: The document is empty"
    status, answer = raw_request(rest_server, b"POST /v1/models/vae:predict HTTP/1.1\r\nHost: x\r\nContent-Length: x1\r\n\r\n")
    assert status == 400 and "Invalid Content-Length" in answer["error"]
    assert_still_serving(rest_server)


N_CONCURRENT = 64


def test_concurrent_requests_are_all_answered_correctly(rest_server, signatures):
    z = np.random.default_rng(5).standard_normal((N_CONCURRENT, 4)).astype(np.float32)
    expected = signatures["serving_default"](z=tf.constant(z))["images"].numpy()
    results = [None] * N_CONCURRENT

    def call(i):
        results[i] = request(rest_server, "POST", "/v1/models/vae:predict", {"instances": [z[i].tolist()]})

    threads = [threading.Thread(target=call, args=(i,)) for i in range(N_CONCURRENT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for i, (status, body) in enumerate(results):
        assert status == 200
        np.testing.assert_allclose(np.asarray(body["predictions"][0], np.float32), expected[i], atol=1e-6)


def test_rest_client_against_the_server(server_url, signatures):
    client = RestClient(server_url, "vae")
    z = np.zeros([2, 4], np.float32)
    images = client.predict({"z": z})
    np.testing.assert_allclose(images, signatures["serving_default"](z=tf.constant(z))["images"].numpy(), atol=1e-6)
    np.testing.assert_allclose(client.predict(z, columnar=True), images)
    out = client.predict({"num_samples": 4, "temperature": 1.0, "seed": 0}, "sample", columnar=True)
    assert out["images"].shape == (4, 16, 16, 1) and out["z"].shape == (4, 4)
    assert client.status()["model_version_status"][0]["state"] == "AVAILABLE"
    assert "sample" in client.metadata()["metadata"]["signature_def"]["signature_def"]
    with pytest.raises(ServingError, match="must have shape") as err:
        client.predict({"z": np.zeros([1, 3])})
    assert err.value.http_status == 400 and err.value.code == "INVALID_ARGUMENT"
    with pytest.raises(ServingError, match="Servable not found") as err:
        RestClient(server_url, "vae", version=9).predict({"z": z})
    assert err.value.http_status == 404


def wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def test_new_versions_are_picked_up_and_removed_ones_dropped(model_copy, vae):
    server = make_server(model_copy, port=0, poll_seconds=0.1)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        versions = lambda: {s["version"]: s["state"] for s in request(server, "GET", "/v1/models/vae")[1]["model_version_status"]}
        assert versions() == {"1": "AVAILABLE"}
        export_model(vae, base_dir=os.path.dirname(model_copy), name="vae")  # version 2, written atomically
        wait_for(lambda: versions() == {"1": "END", "2": "AVAILABLE"})
        assert request(server, "POST", "/v1/models/vae/versions/2:predict", {"instances": [ZERO]})[0] == 200
        assert request(server, "POST", "/v1/models/vae/versions/1:predict", {"instances": [ZERO]})[0] == 404
        # A broken version is reported and does not replace the working one.
        os.makedirs(model_copy / "3")
        (model_copy / "3" / "saved_model.pb").write_bytes(b"garbage")
        wait_for(lambda: versions().get("3") == "END")
        status = request(server, "GET", "/v1/models/vae/versions/3")[1]["model_version_status"][0]["status"]
        assert status["error_code"] == "DATA_LOSS" and "as binary proto" in status["error_message"]
        assert_still_serving(server)
        assert versions()["2"] == "AVAILABLE"
        # Removing the served version falls back to the highest remaining one (once the broken one is gone:
        # TF Serving's availability-preserving policy keeps version 2 in memory while version 3 is the latest).
        shutil.rmtree(model_copy / "3")
        shutil.rmtree(model_copy / "2")
        wait_for(lambda: versions() == {"1": "AVAILABLE", "2": "END", "3": "END"})
        assert_still_serving(server)
    finally:
        server.close()
        thread.join(timeout=10)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_keras_vae_serve_command_in_its_own_process(exported):
    port = free_port()
    command = [os.path.join(os.path.dirname(sys.executable), "keras-vae"), "serve", exported.model_dir, "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        def status():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/vae", timeout=5) as response:
                    return json.loads(response.read())
            except OSError:
                assert process.poll() is None, process.stdout.read()
                return None

        assert wait_for(status, timeout=120)["model_version_status"][0]["state"] == "AVAILABLE"
        images = RestClient(f"http://127.0.0.1:{port}", "vae").predict({"z": np.zeros([1, 4])})
        assert images.shape == (1, 16, 16, 1)
    finally:
        process.terminate()
        process.wait(timeout=30)
