"""`keras-vae export`: a trained VAE as a versioned SavedModel for TF Serving (and TFLite files).

Example:

    keras-vae export runs/mnist --name vae --tflite --with-encoder    # saved_models/vae/1 (+ tflite/1)
"""

import os

from keras_vae.cli.common import non_negative_int
from keras_vae.cli.run_writer import writes_into


def add_command(subparsers):
    """Registers ``export`` on ``subparsers`` (TensorFlow is imported only when it runs)."""
    parser = subparsers.add_parser(
        "export",
        help="write a trained VAE as a versioned SavedModel for TF Serving (and TFLite files)",
        description="Writes BASE/NAME/N/ (SavedModel with signatures serving_default and sample; encode, "
        "reconstruct and score with --with-encoder), models.config and batching_parameters.txt beside the "
        "versions, and with --tflite BASE/NAME/tflite/N/{float32,float16,dynamic_range,int8}.tflite.",
    )
    parser.add_argument("source", metavar="RUN_DIR_OR_MODEL", help="a run directory or a .keras file")
    parser.add_argument("--name", required=True, help="model name (TF Serving's MODEL_NAME)")
    parser.add_argument("--version", type=non_negative_int, help="version number (default: one past the highest present)")
    parser.add_argument("--base-dir", default="saved_models", help="folder holding one folder per model name")
    parser.add_argument("--tflite", action="store_true", help="also write the four TFLite variants")
    parser.add_argument("--with-encoder", action="store_true", help="add encode, reconstruct and score signatures")
    parser.add_argument("--overwrite", action="store_true", help="replace the version if it exists")
    parser.set_defaults(func=run)


@writes_into(lambda args: args.source, reads_only=True)  # the run exported is not written meanwhile
def run(args):
    from keras_vae.export.saved_model import export_model

    result = export_model(
        args.source,
        base_dir=args.base_dir,
        name=args.name,
        version=args.version,
        with_encoder=args.with_encoder,
        tflite=args.tflite,
        overwrite=args.overwrite,
    )
    print(f"SavedModel (version {result.version}): {result.saved_model_dir}")
    for variant, path in result.tflite_paths.items():
        print(f"TFLite {variant}: {path}")
    print(f"TF Serving configs: {os.path.join(result.model_dir, 'models.config')}, "
          f"{os.path.join(result.model_dir, 'batching_parameters.txt')}")
    print(f"Serve locally: keras-vae serve {result.model_dir}")
    return 0
