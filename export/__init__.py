"""export: a trained keras_vae model as a TF Serving SavedModel, TFLite files, and clients/servers for them.

Example:

>>> from keras_vae.export import export_model, RestClient
>>> result = export_model("runs/mnist", base_dir="saved_models", name="vae", tflite=True, with_encoder=True)
>>> # docker run -p 8501:8501 --mount type=bind,source=$PWD/saved_models/vae,target=/models/vae \\
>>> #     -e MODEL_NAME=vae -t tensorflow/serving        (or: keras-vae serve saved_models/vae)
>>> RestClient("http://localhost:8501", "vae").predict({"z": np.zeros([4, 16])}).shape
(4, 28, 28, 1)

Names are imported lazily: ``import keras_vae.export`` (and the ``keras-vae`` CLI's parser) loads none of the
export modules until one is used.

Modules, each one concept (no import cycles; none imports keras_vae.training or keras_vae.cli):
``layout`` (the folder TF Serving polls, staging, clean-up), ``source`` (loading and checking the model),
``signatures`` (the exported functions), ``archive`` (writing a SavedModel), ``saved_model`` (`export_model`),
``tflite``, ``warmup`` + ``predict_proto`` (TF Serving request protos), ``metadata``, ``labels``, ``limits``,
``sampling``; serving: ``server`` (`make_server`) over ``repository`` + ``servable`` (versions),
``rest_api`` (routing) and ``http_transport`` (HTTP); ``rest_format`` (bodies) with ``rest_request``
(parsing requests) and ``rest_json`` (JSON text, errors); ``client``.
"""

import importlib

_EXPORTS = {
    "export_model": "keras_vae.export.saved_model",
    "convert_tflite": "keras_vae.export.tflite",
    "TFLiteModel": "keras_vae.export.tflite",
    "RestClient": "keras_vae.export.client",
    "GrpcClient": "keras_vae.export.client",
    "ServingError": "keras_vae.export.rest_format",
    "make_server": "keras_vae.export.server",
    "sample_images": "keras_vae.export.sampling",
    "MAX_SAMPLES": "keras_vae.export.limits",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'keras_vae.export' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
