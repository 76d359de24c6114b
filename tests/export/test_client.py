"""Serving clients: REST request/response JSON, and gRPC through a real PredictionService on 127.0.0.1."""

import math
import socket
from concurrent import futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from keras_vae.export.client import GrpcClient, RestClient, predict_request_proto
from keras_vae.export.rest_format import ServingError, dumps, loads, outputs_from_response, predict_body, predict_response
from keras_vae.export.server import Servable


def test_row_requests_split_inputs_along_the_batch():
    z = np.arange(8, dtype=np.float32).reshape(2, 4)
    assert predict_body(z) == {"instances": z.tolist()}
    labels = np.array([3, 5], np.int32)
    body = predict_body({"z": z, "label": labels}, "serving_default")
    assert body == {
        "signature_name": "serving_default",
        "instances": [{"z": [0.0, 1.0, 2.0, 3.0], "label": 3}, {"z": [4.0, 5.0, 6.0, 7.0], "label": 5}],
    }
    with pytest.raises(ValueError, match="share its first dimension"):
        predict_body({"z": z, "label": labels[:1]})
    with pytest.raises(ValueError, match="columnar=True for scalar inputs"):
        predict_body({"num_samples": 4, "seed": 0})


def test_columnar_requests_send_whole_tensors():
    body = predict_body({"num_samples": 4, "temperature": 0.5, "seed": 7}, "sample", columnar=True)
    assert body == {"signature_name": "sample", "inputs": {"num_samples": 4, "temperature": 0.5, "seed": 7}}
    assert predict_body(np.zeros([1, 2]), columnar=True) == {"inputs": [[0.0, 0.0]]}


def test_responses_parse_to_arrays_and_errors_raise():
    np.testing.assert_array_equal(outputs_from_response({"predictions": [[1.0], [2.0]]}), [[1.0], [2.0]])
    rows = outputs_from_response({"predictions": [{"loc": [1, 2], "scale": [3, 4]}, {"loc": [5, 6], "scale": [7, 8]}]})
    np.testing.assert_array_equal(rows["loc"], [[1, 2], [5, 6]])
    np.testing.assert_array_equal(rows["scale"], [[3, 4], [7, 8]])
    columns = outputs_from_response({"outputs": {"images": [[0.5]], "z": [[1.0, 2.0]]}})
    assert columns["z"].shape == (1, 2)
    np.testing.assert_array_equal(outputs_from_response({"outputs": [1, 2, 3]}), [1, 2, 3])
    with pytest.raises(ServingError, match="bad input"):
        outputs_from_response({"error": "bad input"})
    with pytest.raises(ServingError, match="neither 'predictions' nor 'outputs'"):
        outputs_from_response({"result": 1})


def test_nan_and_infinity_travel_as_bare_tokens_both_ways():
    text = dumps({"x": [math.nan, math.inf, -math.inf, 0.5]})
    assert text == '{"x":[NaN,Infinity,-Infinity,0.5]}'
    values = loads(text.encode())["x"]
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf, 0.5]


def test_responses_mirror_the_request_format():
    images, z = np.zeros([2, 1, 1, 1]), np.ones([2, 3])
    assert predict_response({"images": images}, columnar=False) == {"predictions": images.tolist()}
    assert predict_response({"images": images}, columnar=True) == {"outputs": images.tolist()}
    rows = predict_response({"images": images, "z": z}, columnar=False)["predictions"]
    assert rows == [{"images": [[[0.0]]], "z": [1.0, 1.0, 1.0]}] * 2
    with pytest.raises(ServingError, match="Tensor name: z has inconsistent batch size: 3 expecting: 2"):
        predict_response({"images": images, "z": np.ones([3, 3])}, columnar=False)
    with pytest.raises(ServingError, match="Tensor name: n has no shape information"):
        predict_response({"n": np.int32(3)}, columnar=False)


def test_float32_outputs_are_written_in_their_shortest_round_trip_form():
    rng = np.random.default_rng(0)
    values = np.concatenate([
        rng.random(5000), rng.standard_normal(5000) * 10.0 ** rng.integers(-44, 38, 5000), [1e-45, 3.4028235e38, 0.5, 1, 0]
    ]).astype(np.float32)
    text = dumps(predict_response({"p": values}, columnar=True))
    tokens = text[len('{"outputs":['):-2].split(",")
    np.testing.assert_array_equal(np.asarray([float(t) for t in tokens], np.float32), values)
    numpy_shortest = [str(v) for v in values]  # numpy's Dragon4 shortest repr
    assert sum(map(len, tokens)) <= sum(map(len, numpy_shortest)) * 1.01
    assert dumps(predict_response({"p": np.float32([0.1, 1 / 3, np.nan, np.inf, -np.inf, 2])}, True)) == (
        '{"outputs":[0.1,0.33333334,NaN,Infinity,-Infinity,2.0]}'
    )


def test_the_parser_reads_the_root_value_and_ignores_what_follows():
    assert loads(b'{"instances": [1]} {"more": 2}') == {"instances": [1]}
    assert loads(b'{"a": 1, "a": 2}') == {"a": 1}  # the first of repeated keys, as rapidjson's FindMember
    with pytest.raises(ServingError, match=r"JSON Parse error: Missing a comma or '}' after an object member. at offset: 8"):
        loads(b'{"a": 1 "b": 2}')


def test_an_unreachable_server_is_a_clear_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        with pytest.raises(ServingError, match=f"Cannot reach http://127.0.0.1:{port}/v1/models/vae") as err:
            RestClient(f"http://127.0.0.1:{port}", "vae", timeout=5).status()
    assert err.value.code == "UNAVAILABLE" and err.value.http_status == 503


def test_grpc_requests_carry_typed_tensors():
    request = predict_request_proto(
        "vae", {"num_samples": np.int32(4), "temperature": np.float32(0.5), "seed": np.int64(9)}, "sample", version=3
    )
    assert isinstance(request, predict_pb2.PredictRequest)
    assert (request.model_spec.name, request.model_spec.signature_name, request.model_spec.version.value) == ("vae", "sample", 3)
    assert request.inputs["num_samples"].dtype == tf.int32.as_datatype_enum
    assert request.inputs["seed"].dtype == tf.int64.as_datatype_enum
    assert tf.make_ndarray(request.inputs["temperature"]) == np.float32(0.5)
    z = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    decoded = predict_request_proto("vae", {"z": z})
    assert decoded.model_spec.signature_name == "serving_default" and not decoded.model_spec.HasField("version")
    np.testing.assert_array_equal(tf.make_ndarray(decoded.inputs["z"]), z)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """A minimal PredictionService over one loaded version (what tensorflow_model_server answers on --port)."""

    def __init__(self, servable, name):
        self.servable, self.name = servable, name

    def Predict(self, request, context):
        if request.model_spec.name != self.name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({request.model_spec.name})")
        signature = request.model_spec.signature_name or "serving_default"
        if signature not in self.servable.signatures:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{signature}" not found.')
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        try:
            outputs = self.servable.run(signature, inputs)
        except ServingError as err:
            context.abort(getattr(grpc.StatusCode, err.code), err.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response


@pytest.fixture(scope="module")
def grpc_target(exported):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servable = Servable(exported.version, exported.saved_model_dir)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(servable, "vae"), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


def test_grpc_client_round_trip(grpc_target, exported):
    signatures = tf.saved_model.load(exported.saved_model_dir).signatures
    z = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    with GrpcClient(grpc_target, "vae") as client:
        images = client.predict({"z": z})["images"]
        np.testing.assert_allclose(images, signatures["serving_default"](z=tf.constant(z))["images"].numpy(), atol=1e-6)
        inputs = {"num_samples": np.int32(5), "temperature": np.float32(1.0), "seed": np.int64(2)}
        first, second = client.predict(inputs, "sample"), client.predict(inputs, "sample")
        assert first["images"].shape == (5, 16, 16, 1) and first["z"].dtype == np.float32
        np.testing.assert_array_equal(first["images"], second["images"])
        with pytest.raises(ServingError, match='signature key "nope" not found') as err:
            client.predict({"z": z}, "nope")
        assert err.value.code == "FAILED_PRECONDITION" and err.value.http_status == 400
        with pytest.raises(ServingError, match="num_samples must be <= 1024") as err:
            client.predict({**inputs, "num_samples": np.int32(4096)}, "sample")
        assert err.value.code == "INVALID_ARGUMENT"
    with GrpcClient(grpc_target, "other") as client:
        with pytest.raises(ServingError, match="Servable not found") as err:
            client.predict({"z": z})
        assert err.value.code == "NOT_FOUND" and err.value.http_status == 404
