"""Writing a SavedModel of a VAE from endpoints: the step the TF Serving export and the TFLite conversion share.

Example:

>>> write_archive(vae, serving_endpoints(vae), "saved_models/vae/.tmp-1-x")   # then publish it
"""

import os


def write_archive(model, endpoints, path):
    """Writes a SavedModel of ``model`` with ``endpoints`` ([(name, fn, input_signature)]) to ``path``.

    The first endpoint becomes ``serving_default``'s function (keras.export.ExportArchive's rule).
    """
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, fn, input_signature in endpoints:
        archive.add_endpoint(name, fn, input_signature=input_signature)
    archive.write_out(os.fspath(path), verbose=False)
