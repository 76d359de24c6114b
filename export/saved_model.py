"""`export_model`: a trained VAE -> a versioned SavedModel for TF Serving (and optionally TFLite files).

Writes ``BASE/NAME/N/`` (see `export.layout`): ``saved_model.pb`` + ``variables/`` with the
signatures of `export.signatures`, warm-up requests in ``assets.extra/``, and ``metadata.json``;
with ``tflite=True`` also ``BASE/NAME/tflite/N/<variant>.tflite`` + ``metadata.json``; and
``models.config`` + ``batching_parameters.txt`` beside the versions. Everything is built in hidden
temporary folders and renamed into place at the end (SavedModel last), so a server polling
``BASE/NAME`` never loads a partial version and a failed export leaves nothing behind.

Example:

>>> result = export_model("runs/mnist", base_dir="saved_models", name="vae", tflite=True)
>>> result.saved_model_dir
'saved_models/vae/1'
"""

import collections
import os

from keras_vae.export import layout
from keras_vae.export.metadata import dataset_of, export_metadata, write_metadata
from keras_vae.export.signatures import MAX_SAMPLES, SCORE_SAMPLES, SIGNATURE_DESCRIPTIONS, serving_endpoints
from keras_vae.export.warmup import warmup_requests, write_warmup

ExportResult = collections.namedtuple("ExportResult", ["version", "model_dir", "saved_model_dir", "tflite_paths"])


def write_archive(model, endpoints, path):
    """Writes a SavedModel of ``model`` with ``endpoints`` ([(name, fn, input_signature)]) to ``path``."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, fn, input_signature in endpoints:
        archive.add_endpoint(name, fn, input_signature=input_signature)
    archive.write_out(os.fspath(path), verbose=False)


def export_model(
    source,
    base_dir="saved_models",
    name="vae",
    version=None,
    with_encoder=False,
    tflite=False,
    overwrite=False,
    dataset=None,
):
    """Exports ``source`` (a VAE, a ``.keras`` file or a run directory) as version ``version`` of ``name``.

    Args:
        source: a `keras_vae.VAE` (any variant), or a path for `keras_vae.load_vae`.
        base_dir: the folder holding one sub-folder per model name.
        name: the model name (TF Serving's MODEL_NAME); the export goes to ``base_dir/name``.
        version: integer version; default one past the highest present.
        with_encoder: add the ``encode``, ``reconstruct`` and ``score`` signatures.
        tflite: also write the four TFLite variants.
        overwrite: replace an existing version instead of failing.
        dataset: dataset name for the metadata (default: ``dataset`` in the run's config.yaml, else "unknown").

    Returns:
        an `ExportResult` (version, model_dir, saved_model_dir, tflite_paths).
    """
    import keras_vae

    if isinstance(source, (str, os.PathLike)):
        model = keras_vae.load_vae(source, compile=False)
        dataset = dataset or dataset_of(source)
    else:
        model = source
    dataset = dataset or "unknown"
    root = layout.model_dir(base_dir, name)
    version = layout.resolve_version(root, version, overwrite)
    endpoints = serving_endpoints(model, with_encoder)
    signatures = {n: SIGNATURE_DESCRIPTIONS[n] for n, _, _ in endpoints}

    staged = []
    try:
        saved_model_stage = layout.stage(root)
        staged.append(saved_model_stage)
        write_archive(model, endpoints, saved_model_stage)
        write_warmup(saved_model_stage, warmup_requests(model, name, with_encoder))
        write_metadata(
            saved_model_stage,
            export_metadata(
                model, version, dataset, signatures, format="saved_model", max_samples=MAX_SAMPLES,
                score_samples=SCORE_SAMPLES,
            ),
        )
        tflite_paths = {}
        if tflite:
            from keras_vae.export.tflite import SIGNATURES, convert_tflite

            tflite_stage = layout.stage(os.path.join(root, layout.TFLITE_DIR))
            staged.append(tflite_stage)
            files = convert_tflite(model, tflite_stage)
            write_metadata(
                tflite_stage,
                export_metadata(
                    model, version, dataset, list(SIGNATURES), format="tflite",
                    variants={v: os.path.basename(p) for v, p in files.items()},
                ),
            )
            tflite_dir = os.path.join(root, layout.TFLITE_DIR, str(version))
            layout.publish(tflite_stage, tflite_dir, overwrite)
            tflite_paths = {v: os.path.join(tflite_dir, os.path.basename(p)) for v, p in files.items()}
        saved_model_dir = layout.publish(saved_model_stage, os.path.join(root, str(version)), overwrite)
    finally:
        for path in staged:
            layout.discard(path)  # no-op for what was published
    layout.write_server_configs(root, name)
    return ExportResult(version, root, saved_model_dir, tflite_paths)
