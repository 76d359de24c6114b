"""Writing a SavedModel of a VAE from endpoints: the step the TF Serving export and the TFLite conversion share.

Example:

>>> write_archive(vae, serving_endpoints(vae), "saved_models/vae/.tmp-1-x")   # then publish it
"""

import os


def write_archive(model, endpoints, path):
    """Writes a SavedModel of ``model`` with ``endpoints`` ([(name, fn, input_signature)]) to ``path``.

    The first endpoint becomes ``serving_default``'s function (keras.export.ExportArchive's rule). The
    endpoints compute in float32 even for a model trained under a mixed precision policy
    (`keras_vae.precision.float32_compute`).
    """
    import keras

    from keras_vae.precision import float32_compute

    archive = keras.export.ExportArchive()
    with float32_compute(model):
        archive.track(model)
        for name, fn, input_signature in endpoints:
            archive.add_endpoint(name, fn, input_signature=input_signature)
        archive.write_out(os.fspath(path), verbose=False)
