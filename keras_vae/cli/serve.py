"""`keras-vae serve`: a local server following TF Serving's REST API for a folder written by `keras-vae export`.

Example:

    keras-vae serve saved_models/vae --port 8501                       # TF Serving REST API on 127.0.0.1
    keras-vae serve saved_models/vae --version-policy all --version-label stable=1 --version-label canary=2
    keras-vae serve saved_models/vae --model-config-file saved_models/vae/models.config
"""

from keras_vae.cli.common import host, port, positive_float, positive_int


def add_command(subparsers):
    """Registers ``serve`` on ``subparsers`` (TensorFlow is imported only when it runs)."""
    parser = subparsers.add_parser(
        "serve",
        help="serve BASE/NAME over TF Serving's REST API (local development server)",
        description="A local server following TF Serving's REST API (status, metadata, predict). It serves "
        "the highest version under BASE/NAME and loads new versions as they appear. Production serving "
        "is TF Serving; this server mirrors its REST contract.",
    )
    parser.add_argument("model_base_path", metavar="BASE/NAME", help="a model folder written by `keras-vae export`")
    parser.add_argument("--host", type=host, default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=port, default=8501, help="port (default 8501, TF Serving's REST port)")
    parser.add_argument("--model-name", help="name in the URLs (default: the folder name)")
    parser.add_argument("--max-batch-size", type=positive_int, default=1024, help="largest batch one request may send")
    parser.add_argument(
        "--max-request-bytes", type=positive_int, default=32 * 1024 * 1024, help="largest request body accepted"
    )
    parser.add_argument("--poll-seconds", type=positive_float, default=1.0, help="how often to look for new versions")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.add_argument("--model-config-file", help="a models.config (model_config_list): name, version labels, "
                        "version policy, as TF Serving's --model_config_file")
    parser.add_argument("--version-label", action="append", default=[], metavar="LABEL=VERSION",
                        help="serve version VERSION under /labels/LABEL (repeatable)")
    parser.add_argument("--version-policy", help="'latest' (default), 'all', N (the N latest) or versions '1,3'")
    parser.set_defaults(func=run)


def _labels(pairs):
    labels = {}
    for pair in pairs:
        label, sep, version = pair.partition("=")
        if not sep or not label or not version.strip().isdigit():
            raise ValueError(f"--version-label takes LABEL=VERSION (e.g. stable=1), got {pair!r}.")
        labels[label] = int(version)
    return labels


def _policy(text):
    if text is None or text in ("latest", "all"):
        return text
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() for p in parts):
        raise ValueError(f"--version-policy takes 'latest', 'all', N or a list of versions '1,3', got {text!r}.")
    return int(parts[0]) if "," not in text else [int(p) for p in parts]


def run(args):
    from keras_vae.export.server import make_server

    server = make_server(
        args.model_base_path,
        host=args.host,
        port=args.port,
        model_name=args.model_name,
        max_request_bytes=args.max_request_bytes,
        max_batch_size=args.max_batch_size,
        poll_seconds=args.poll_seconds,
        verbose=args.verbose,
        model_config_file=args.model_config_file,
        version_labels=_labels(args.version_label),
        version_policy=_policy(args.version_policy),
    )
    host, port = server.server_address[:2]
    name = server.repository.model_name
    print(f"Serving {name!r} at http://{host}:{port}/v1/models/{name} (Ctrl-C to stop)", flush=True)
    server.serve_until_interrupted()
    return 0
