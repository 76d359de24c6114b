"""TF Serving warm-up records: ``VERSION/assets.extra/tf_serving_warmup_requests``.

A TFRecord file of ``PredictionLog`` protos that tensorflow_model_server replays when it loads a
version (``--enable_model_warmup``, on by default), so the first real request does not pay for graph
initialisation. `keras-vae serve` replays them too. Only signatures with a batch dimension on every
input are warmed up: with ``--enable_batching`` TF Serving rejects scalar inputs (``sample``), and a
failing warm-up request fails the whole model load. Conditional models get placeholder labels
(class 0, or zero vectors).

Example:

>>> write_warmup("saved_models/vae/1", warmup_requests(vae, "vae", with_encoder=False))
>>> [r.model_spec.signature_name for r in read_warmup("saved_models/vae/1")]
['serving_default', 'serving_default']
"""

import os

import numpy as np

from keras_vae.export.labels import placeholder_labels
from keras_vae.export.predict_proto import prediction_log_record, predict_request_proto, request_of_record

WARMUP_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")
WARMUP_BATCH_SIZES = (1, 16)


def warmup_requests(model, model_name, with_encoder):
    """Predict requests covering the batched signatures of an export of ``model``."""
    condition = model.condition

    def request(signature, batch, **inputs):
        if condition:
            inputs["label"] = placeholder_labels(condition, batch)
        return predict_request_proto(model_name, inputs, signature)

    requests = [request("serving_default", n, z=np.zeros([n, model.latent_dim], np.float32)) for n in WARMUP_BATCH_SIZES]
    if with_encoder:
        images = np.full([1, *model.image_shape], 0.5, np.float32)
        requests += [request(signature, 1, images=images) for signature in ("encode", "reconstruct", "score")]
    return requests


def write_warmup(version_dir, requests):
    import tensorflow as tf

    path = os.path.join(version_dir, WARMUP_PATH)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            writer.write(prediction_log_record(request))
    return path


def read_warmup(version_dir):
    """The PredictRequests recorded in a version's warm-up file ([] when it has none)."""
    import tensorflow as tf

    path = os.path.join(version_dir, WARMUP_PATH)
    if not os.path.isfile(path):
        return []
    return [request_of_record(record.numpy()) for record in tf.data.TFRecordDataset(path)]
