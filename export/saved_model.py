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
import contextlib
import os

import keras_vae.export.layout as layout
from keras_vae.export.archive import write_archive
from keras_vae.export.metadata import export_metadata, write_metadata
from keras_vae.export.signatures import MAX_SAMPLES, SCORE_SAMPLES, describe_signature, image_range, serving_endpoints
from keras_vae.export.source import exportable_model
from keras_vae.export.warmup import warmup_requests, write_warmup

ExportResult = collections.namedtuple("ExportResult", ["version", "model_dir", "saved_model_dir", "tflite_paths"])


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
        source: a `keras_vae.VAE` (any variant, conditional or not), or a path for `keras_vae.load_vae`.
        base_dir: the folder holding one sub-folder per model name.
        name: the model name (TF Serving's MODEL_NAME); the export goes to ``base_dir/name``.
        version: integer version; default one past the highest present.
        with_encoder: add the ``encode``, ``reconstruct`` and ``score`` signatures.
        tflite: also write the four TFLite variants.
        overwrite: replace an existing version instead of failing.
        dataset: dataset name for the metadata (default: ``dataset`` in the run's config.yaml, else "unknown").

    Returns:
        an `ExportResult` (version, model_dir, saved_model_dir, tflite_paths).

    Raises:
        ValueError: a model that is not a keras_vae VAE, has non-finite weights or does not match its run's
            config.yaml; an existing version without ``overwrite``; `layout.ExportError` (a ValueError naming
            the folder) when the folder cannot be written (read-only, full). Nothing is left behind then.
    """
    model, dataset = exportable_model(source, dataset)
    root = layout.model_dir(base_dir, name)
    tflite_root = os.path.join(root, layout.TFLITE_DIR)
    with _writing_into(root, [tflite_root, root]):
        for folder in (root, tflite_root):
            layout.clean_stale(folder)  # staging folders of exports killed mid-way
        version = layout.resolve_version(root, version, overwrite)
        saved_model_dir, tflite_paths = _write_version(model, root, name, version, with_encoder, tflite, overwrite, dataset)
        layout.write_server_configs(root, name)
    return ExportResult(version, root, saved_model_dir, tflite_paths)


@contextlib.contextmanager
def _writing_into(root, folders):
    """Turns file-system failures (read-only, full) into an ExportError naming ``root``.

    Of ``folders`` (innermost first), those this export created and left empty are removed on failure,
    so the base dir stays as it was.
    """
    import tensorflow as tf

    created = [folder for folder in folders if not os.path.isdir(folder)]
    try:
        yield
    except BaseException as err:
        for folder in created:
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # only if empty: a version published meanwhile stays
        if isinstance(err, (OSError, tf.errors.OpError)):
            raise layout.write_error(root, err) from err
        raise


def _write_version(model, root, name, version, with_encoder, tflite, overwrite, dataset):
    """Builds version ``version`` in staging folders and publishes it (TFLite first, SavedModel last)."""
    endpoints = serving_endpoints(model, with_encoder)
    signatures = {n: describe_signature(n) for n, _, _ in endpoints}
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
                score_samples=SCORE_SAMPLES, image_range=list(image_range(model)),
            ),
        )
        tflite_paths = {}
        if tflite:
            tflite_stage = layout.stage(os.path.join(root, layout.TFLITE_DIR))
            staged.append(tflite_stage)
            tflite_paths = _write_tflite(model, tflite_stage, root, version, dataset, overwrite)
        return layout.publish(saved_model_stage, os.path.join(root, str(version)), overwrite), tflite_paths
    finally:
        for path in staged:
            layout.discard(path)  # no-op for what was published


def _write_tflite(model, tflite_stage, root, version, dataset, overwrite):
    from keras_vae.export.tflite import SIGNATURES, convert_tflite

    files = convert_tflite(model, tflite_stage)
    write_metadata(
        tflite_stage,
        export_metadata(
            model, version, dataset, list(SIGNATURES), format="tflite", image_range=list(image_range(model)),
            variants={v: os.path.basename(p) for v, p in files.items()},
        ),
    )
    tflite_dir = layout.publish(tflite_stage, os.path.join(root, layout.TFLITE_DIR, str(version)), overwrite)
    return {v: os.path.join(tflite_dir, os.path.basename(p)) for v, p in files.items()}
