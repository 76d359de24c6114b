"""`keras-vae studio MODEL`: the Latent Studio web page over a local TF Serving-style server.

MODEL is a run directory, a ``.keras`` file (both exported first to ``<folder>/studio/NAME``) or an
export folder ``BASE/NAME``. When the served version has no ``assets.extra/attributes.json``, its
attribute vectors and score threshold are computed from the training split of the dataset named in
its metadata (skipped with a note when that data cannot be read).

Example:

    keras-vae studio runs/sprites_quick                 # http://127.0.0.1:8600/
    keras-vae studio saved_models/vae --port 9000 --host 0.0.0.0
"""

import os

from keras_vae.cli.common import host, int_range, port

DEFAULT_PORT = 8600
DEFAULT_EXAMPLES = 1000


def add_command(subparsers):
    """Registers ``studio`` on ``subparsers`` (TensorFlow is imported only when it runs)."""
    studio = subparsers.add_parser(
        "studio",
        help="explore a trained model in the browser: samples, sliders, interpolation, attributes, scores",
        description="Serves the Latent Studio page and TF Serving's REST API for MODEL on one port. MODEL is "
        "a run directory, a .keras file (exported first to <its folder>/studio/NAME) or an export folder "
        "BASE/NAME written by `keras-vae export --with-encoder`.",
    )
    studio.add_argument("model", metavar="MODEL", help="a run directory, a .keras file, or an export folder BASE/NAME")
    studio.add_argument("--host", type=host, default="127.0.0.1", help="address to listen on (default: loopback only)")
    studio.add_argument("--port", type=port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free port)")
    studio.add_argument("--data-dir", help="where the dataset's files are, to compute attributes (default: the run's)")
    studio.add_argument("--examples", type=int_range(2, name="examples"), default=DEFAULT_EXAMPLES,
                        help=f"training examples for attribute vectors and the score threshold (default {DEFAULT_EXAMPLES})")
    studio.add_argument("--no-attributes", action="store_true", help="do not compute missing attributes")
    studio.add_argument("--verbose", action="store_true", help="log every request")
    studio.set_defaults(func=run_studio)


def attribute_masks(labels, info):
    """``{name: booleans [n]}`` for a dataset's labels: one per class, or per factor (per value if categorical).

    >>> attribute_masks(np.array([0, 1, 1]), dataset_info("mnist"))["class 1"]
    array([False,  True,  True])
    """
    import numpy as np

    from keras_vae.training.sprites import SHAPE_NAMES

    labels = np.asarray(labels)
    if info.label_kind == "class":  # a folder's classes by their sub-folder names
        return {info.class_names[c] if info.class_names else f"class {c}": labels == c for c in range(info.num_classes)}
    if info.label_kind != "factors":
        return {}
    value_names = {"shape": SHAPE_NAMES} if info.name in ("sprites", "dsprites") else {}
    masks = {}
    for j, (name, size) in enumerate(zip(info.factor_names, info.factor_sizes)):
        if size == 2:
            masks[name] = labels[:, j] == 1
        elif name in value_names:  # categorical: one vector per value
            masks.update({f"{name} {value}": labels[:, j] == v for v, value in enumerate(value_names[name])})
        else:  # ordinal: the upper half of the range against the lower half
            masks[name] = labels[:, j] >= size / 2
    return masks


def _condition_labels(labels, condition):
    """The labels a conditional export's signatures take, from the dataset's labels; None otherwise."""
    import numpy as np

    kind = condition.get("kind", "none")
    if kind == "class":
        return np.asarray(labels, np.int32)
    if kind == "vector":
        return np.asarray(labels, np.float32).reshape(len(labels), -1)
    return None


def compute_attributes(version_dir, data_dir=None, count=DEFAULT_EXAMPLES, log=print, source_options=None):
    """Writes ``assets.extra/attributes.json`` for an exported version from its dataset's training split.

    Returns the path, or None (with a note) when the dataset is unknown or cannot be read here.

    >>> compute_attributes("runs/sprites/studio/sprites/1")
    'runs/sprites/studio/sprites/1/assets.extra/attributes.json'
    """
    from keras_vae.export.attributes import attributes_document, saved_model_functions, write_attributes
    from keras_vae.export.metadata import read_metadata
    from keras_vae.training.data import dataset_info, load_examples, source_kind

    meta = read_metadata(version_dir)
    dataset = meta.get("dataset")
    if not dataset or source_kind(dataset) == "folder" and not os.path.isdir(dataset):
        log(f"keras-vae studio: dataset {dataset!r} is not a known dataset or folder here: no attribute vectors or "
            "threshold.")
        return None
    try:
        info = dataset_info(dataset, data_dir, source_options)
        images, labels = load_examples(dataset, "train", data_dir=data_dir, count=count,
                                       with_labels=info.label_kind is not None, shuffle=True,
                                       source_options=source_options)
    except (OSError, ValueError) as err:  # offline, or files absent: the studio still runs without them
        log(f"keras-vae studio: could not read {dataset!r} ({err}): no attribute vectors or threshold.")
        return None
    masks = attribute_masks(labels, info) if labels is not None else {}
    condition_labels = None if labels is None else _condition_labels(labels, meta.get("condition") or {})
    encode, score = saved_model_functions(version_dir)
    log(f"keras-vae studio: computing attribute vectors and the score threshold from {len(images)} {dataset} examples")
    doc = attributes_document(encode, score, images, masks, labels=condition_labels,
                              source=f"{dataset} train, {len(images)} examples")
    if info.class_names:
        doc["class_names"] = list(info.class_names)  # the studio's label choices and class rows
    return write_attributes(version_dir, doc)


def run_studio(args):
    from keras_vae.export.attributes import read_attributes
    from keras_vae.export.layout import latest_version_dir
    from keras_vae.export.studio import make_studio_server, prepare_model
    from keras_vae.training.run_dir import data_source

    base = prepare_model(args.model)
    version_dir = latest_version_dir(base)
    if not args.no_attributes and read_attributes(version_dir) is None:
        _, data_dir, source = data_source(args.model, None, args.data_dir)
        compute_attributes(version_dir, data_dir, args.examples, source_options=source)
    server = make_studio_server(base, host=args.host, port=args.port, verbose=args.verbose)
    host, port = server.server_address[:2]
    print(f"Latent Studio for {server.repository.model_name!r} at http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    server.serve_until_interrupted()
    return 0
