"""Clients for a served VAE: TF Serving's REST API (or `keras-vae serve`) and its gRPC PredictionService.

Example:

>>> client = RestClient("http://localhost:8501", "vae")
>>> images = client.predict({"z": np.random.randn(4, 16)})                      # serving_default
>>> out = client.predict({"num_samples": 8, "temperature": 1.0, "seed": 0}, "sample", columnar=True)
>>> out["images"].shape
(8, 28, 28, 1)
>>> grpc_client = GrpcClient("localhost:8500", "vae")
>>> grpc_client.predict({"z": np.zeros([2, 16], np.float32)})["images"].shape
(2, 28, 28, 1)
"""

import json
import urllib.error
import urllib.parse
import urllib.request

from keras_vae.export.predict_proto import predict_request_proto
from keras_vae.export.rest_format import HTTP_STATUS, ServingError, dumps, outputs_from_response, predict_body

_CODE_OF_STATUS = {status: code for code, status in reversed(list(HTTP_STATUS.items()))}  # first code wins


class RestClient:
    """TF Serving REST client: predict (row or columnar), model status and metadata.

    Args:
        url: server root, e.g. ``http://localhost:8501``.
        model_name: the served model name.
        version: a fixed version to query (default: whatever the server serves, the latest).
        label: a version label to query instead (``/labels/LABEL``, e.g. "stable"); not with ``version``.
        timeout: seconds per request.

    Errors answered as ``{"error": ...}`` raise `ServingError` with the HTTP status.
    """

    def __init__(self, url, model_name, version=None, timeout=30.0, label=None):
        if version is not None and label is not None:
            raise ValueError("Pass a version or a label, not both.")
        self.url = url.rstrip("/")
        self.model_name = model_name
        self.version = version
        self.label = label
        self.timeout = timeout

    def _model_url(self):
        url = f"{self.url}/v1/models/{urllib.parse.quote(self.model_name, safe='')}"
        if self.label is not None:
            return f"{url}/labels/{urllib.parse.quote(self.label, safe='')}"
        return url if self.version is None else f"{url}/versions/{int(self.version)}"

    def _call(self, url, body=None):
        data = None if body is None else dumps(body).encode()
        request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            text = err.read().decode("utf-8", "replace")
            try:
                message = json.loads(text)["error"]
            except (ValueError, KeyError, TypeError):
                message = text or err.reason
            raise ServingError(str(message), _CODE_OF_STATUS.get(err.code, "UNKNOWN"), err.code) from None
        except urllib.error.URLError as err:  # nothing listening, DNS failure, ...
            raise ServingError(f"Cannot reach {url}: {err.reason}", "UNAVAILABLE") from None

    def predict(self, inputs, signature_name=None, columnar=False):
        """Runs a signature: ``inputs`` is an array (one-input signatures) or ``{name: array}``.

        Returns an array for single-output signatures, else ``{name: array}``.
        """
        body = predict_body(inputs, signature_name, columnar)
        return outputs_from_response(self._call(f"{self._model_url()}:predict", body))

    def status(self):
        return self._call(self._model_url())

    def metadata(self):
        return self._call(f"{self._model_url()}/metadata")


class GrpcClient:
    """TF Serving gRPC client (PredictionService.Predict through tensorflow-serving-api's stub).

    Args:
        target: ``host:port`` of the gRPC API (tensorflow_model_server --port, 8500 by default).
        model_name, version, timeout: as for `RestClient`.

    Pass inputs with the dtypes the signature expects (float32 ``z``; int32 ``num_samples``, float32
    ``temperature``, int64 ``seed``): gRPC sends typed tensors and does not convert them.
    """

    def __init__(self, target, model_name, version=None, timeout=30.0):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.model_name = model_name
        self.version = version
        self.timeout = timeout
        self.channel = grpc.insecure_channel(target)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def predict(self, inputs, signature_name="serving_default"):
        """Returns ``{output_name: array}``; RPC failures raise `ServingError` with the gRPC status code name."""
        import grpc
        import tensorflow as tf

        request = predict_request_proto(self.model_name, inputs, signature_name, self.version)
        try:
            response = self.stub.Predict(request, timeout=self.timeout)
        except grpc.RpcError as err:
            code = err.code().name
            raise ServingError(err.details() or code, code) from None
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

