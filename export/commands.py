"""The `keras-vae export`, `keras-vae serve` and `keras-vae sample` commands.

Example:

    keras-vae export runs/mnist --name vae --tflite --with-encoder    # saved_models/vae/1 (+ tflite/1)
    keras-vae serve saved_models/vae --port 8501                       # TF Serving REST API on 127.0.0.1
    keras-vae sample saved_models/vae -n 16 --out grid.png --seed 0
"""

import os


def add_commands(subparsers):
    export = subparsers.add_parser(
        "export",
        help="write a trained VAE as a versioned SavedModel for TF Serving (and TFLite files)",
        description="Writes BASE/NAME/N/ (SavedModel with signatures serving_default and sample; encode, "
        "reconstruct and score with --with-encoder), models.config and batching_parameters.txt beside the "
        "versions, and with --tflite BASE/NAME/tflite/N/{float32,float16,dynamic_range,int8}.tflite.",
    )
    export.add_argument("source", metavar="RUN_DIR_OR_MODEL", help="a run directory or a .keras file")
    export.add_argument("--name", required=True, help="model name (TF Serving's MODEL_NAME)")
    export.add_argument("--version", type=int, help="version number (default: one past the highest present)")
    export.add_argument("--base-dir", default="saved_models", help="folder holding one folder per model name")
    export.add_argument("--tflite", action="store_true", help="also write the four TFLite variants")
    export.add_argument("--with-encoder", action="store_true", help="add encode, reconstruct and score signatures")
    export.add_argument("--overwrite", action="store_true", help="replace the version if it exists")
    export.set_defaults(func=run_export)

    serve = subparsers.add_parser(
        "serve",
        help="serve BASE/NAME over TF Serving's REST API (local development server)",
        description="A local server following TF Serving's REST API (status, metadata, predict). It serves "
        "the highest version under BASE/NAME and loads new versions as they appear. Production serving "
        "is TF Serving; this server mirrors its REST contract.",
    )
    serve.add_argument("model_base_path", metavar="BASE/NAME", help="a model folder written by `keras-vae export`")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    serve.add_argument("--port", type=int, default=8501, help="port (default 8501, TF Serving's REST port)")
    serve.add_argument("--model-name", help="name in the URLs (default: the folder name)")
    serve.add_argument("--max-batch-size", type=int, default=1024, help="largest batch one request may send")
    serve.add_argument(
        "--max-request-bytes", type=int, default=32 * 1024 * 1024, help="largest request body accepted"
    )
    serve.add_argument("--poll-seconds", type=float, default=1.0, help="how often to look for new versions")
    serve.add_argument("--verbose", action="store_true", help="log every request")
    serve.set_defaults(func=run_serve)

    sample = subparsers.add_parser(
        "sample",
        help="write a grid of samples from a run directory, a SavedModel or a .tflite file",
        description="Draws images from the prior and writes them as one grid image (PNG, JPEG, ...).",
    )
    sample.add_argument("source", metavar="SOURCE", help="RUN_DIR, FILE.keras, SAVED_MODEL_DIR (or BASE/NAME), FILE.tflite")
    sample.add_argument("-n", "--num-samples", type=int, default=16, help="number of images (default 16)")
    sample.add_argument("--out", required=True, help="output image file, e.g. grid.png")
    sample.add_argument("--seed", type=int, help="random seed (same seed, same grid); not for .tflite")
    sample.add_argument("--temperature", type=float, default=1.0, help="prior temperature (default 1.0)")
    sample.add_argument("--label", type=int, help="class label, for conditional models")
    sample.add_argument("--columns", type=int, help="images per row (default: a square grid)")
    sample.set_defaults(func=run_sample)


def run_export(args):
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


def run_serve(args):
    from keras_vae.export.server import make_server

    if args.max_batch_size < 1 or args.max_request_bytes < 1 or args.poll_seconds <= 0:
        raise ValueError("--max-batch-size, --max-request-bytes and --poll-seconds must be positive.")
    server = make_server(
        args.model_base_path,
        host=args.host,
        port=args.port,
        model_name=args.model_name,
        max_request_bytes=args.max_request_bytes,
        max_batch_size=args.max_batch_size,
        poll_seconds=args.poll_seconds,
        verbose=args.verbose,
    )
    host, port = server.server_address[:2]
    name = server.repository.model_name
    print(f"Serving {name!r} at http://{host}:{port}/v1/models/{name} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.repository.stop()
    return 0


def run_sample(args):
    import keras

    import keras_vae
    from keras_vae.export.sampling import sample_images

    if args.num_samples < 1:
        raise ValueError(f"-n must be >= 1, got {args.num_samples}.")
    images = sample_images(args.source, args.num_samples, args.seed, args.temperature, args.label)
    grid = keras_vae.image_grid(images, columns=args.columns)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    keras.utils.save_img(args.out, grid, scale=False)
    print(f"Wrote {len(images)} samples to {args.out}")
    return 0
