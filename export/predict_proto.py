"""TF Serving request protos: the ``PredictRequest`` a gRPC client sends and the ``PredictionLog`` a warm-up file holds.

Shared by the gRPC client and the warm-up records, so neither imports the other.

Example:

>>> request = predict_request_proto("vae", {"z": np.zeros([1, 16], np.float32)})
>>> record = prediction_log_record(request)                  # bytes of one TFRecord entry
>>> request_of_record(record) == request
True
"""


def predict_request_proto(model_name, inputs, signature_name="serving_default", version=None):
    """A ``tensorflow.serving.PredictRequest`` for ``inputs`` ({name: array-like}, dtypes kept as given)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def prediction_log_record(request):
    """The serialized ``PredictionLog`` wrapping ``request``: one record of a TF Serving warm-up file."""
    from tensorflow_serving.apis import prediction_log_pb2

    log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    return log.SerializeToString()


def request_of_record(record):
    """The ``PredictRequest`` inside one serialized warm-up record (inverse of `prediction_log_record`)."""
    from tensorflow_serving.apis import prediction_log_pb2

    return prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
