"""export: a trained keras_vae model as a TF Serving SavedModel, TFLite files, and clients/servers for them.

Example:

>>> from export import export_model, RestClient
>>> result = export_model("runs/mnist", base_dir="saved_models", name="vae", tflite=True, with_encoder=True)
>>> # docker run -p 8501:8501 --mount type=bind,source=$PWD/saved_models/vae,target=/models/vae \\
>>> #     -e MODEL_NAME=vae -t tensorflow/serving        (or: keras-vae serve saved_models/vae)
>>> RestClient("http://localhost:8501", "vae").predict({"z": np.zeros([4, 16])}).shape
(4, 28, 28, 1)

Names are imported lazily, so ``import export`` (and the ``keras-vae`` CLI) stays free of TensorFlow.
"""

import importlib

_EXPORTS = {
    "export_model": "export.saved_model",
    "convert_tflite": "export.tflite",
    "TFLiteModel": "export.tflite",
    "RestClient": "export.client",
    "GrpcClient": "export.client",
    "ServingError": "export.rest_format",
    "make_server": "export.server",
    "sample_images": "export.sampling",
    "MAX_SAMPLES": "export.signatures",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'export' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
