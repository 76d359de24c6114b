"""`keras-vae plot`: a picture of a trained VAE (see `keras_vae.training.plots` for the kinds).

Example:

    keras-vae plot runs/sprites --kind traversal --out traversal.png
    keras-vae plot runs/mnist2d --kind manifold --steps 20 --out manifold.png
    keras-vae plot runs/sprites --kind attribute --attribute shape=2 --out hearts.png
    keras-vae plot runs/mnist --kind blend --weights 2 1 1 --out blend.png
    keras-vae plot runs/mnist-cvae --kind style-transfer --num 6 --out styles.png
"""

import sys

from keras_vae.cli.common import (add_model_and_data_arguments, any_float, non_negative_int, output_path,
                                  positive_float, positive_int, seed)
from keras_vae.training.outputs import PICTURE_FORMATS
from keras_vae.training.plots import KINDS  # a light module: numpy and matplotlib load when a picture is drawn


def add_command(subparsers):
    """Registers ``plot`` on ``subparsers``."""
    plot = subparsers.add_parser(
        "plot",
        help="pictures of a trained VAE: samples, reconstructions, interpolation, traversal, manifold, latent-scatter",
        description="Draw a picture of a trained VAE (a run directory or a .keras file).",
    )
    add_model_and_data_arguments(plot)
    plot.add_argument("--kind", required=True, choices=KINDS)
    plot.add_argument("--out", required=True, type=output_path(PICTURE_FORMATS), metavar="FILE.png",
                      help="picture file (.png, .jpg, .pdf, .svg)")
    plot.add_argument("--num", type=positive_int, help="samples / inputs / scatter points (default 64; 16 pairs' "
                      "worth for interpolation; 2000 for latent-scatter; 8 rows for style-transfer)")
    plot.add_argument("--steps", type=positive_int,
                      help="interpolation steps (10), traversal values (9), manifold grid (15)")
    plot.add_argument("--method", default="linear", choices=("linear", "spherical"), help="interpolation path")
    plot.add_argument("--dims", type=non_negative_int, nargs="+",
                      help="traversal: latent dimensions to sweep (default all)")
    plot.add_argument("--span", type=positive_float, default=3.0, help="traversal: sweep each dimension over [-span, span]")
    plot.add_argument("--index", type=non_negative_int, default=0, help="traversal: which dataset example to start from")
    plot.add_argument("--colour-by", help="latent-scatter with factor labels: the factor name or column")
    plot.add_argument("--attribute", metavar="VALUE|FACTOR=VALUE",
                      help="attribute: examples with this class label (e.g. 7) or factor value (e.g. shape=2)")
    plot.add_argument("--weights", type=any_float, nargs="+", default=[1.0, 1.0],
                      help="blend: one weight per input of each group (default 1 1)")
    plot.add_argument("--temperature", type=positive_float, default=1.0, help="samples: prior temperature")
    plot.add_argument("--seed", type=seed, default=0)
    plot.set_defaults(func=run_plot)



def _colour_column(colour_by, label_names, dataset):
    """The factor column ``--colour-by`` names (a factor name or a column number), or None."""
    if colour_by is None:
        return None
    if label_names and colour_by in label_names:
        return label_names.index(colour_by)
    if colour_by.isdigit():
        return int(colour_by)
    raise ValueError(f"--colour-by {colour_by!r} is not a factor of {dataset!r} ({label_names}).")


def _inputs(args, model, dataset, data_dir, num, source=None):
    """``(images, labels, label_names)`` from the dataset for the pictures that need inputs."""
    from keras_vae.training.data import dataset_info, load_examples

    if dataset is None:
        raise ValueError(f"--kind {args.kind} needs inputs: give --dataset (the model has no run config.yaml).")
    info = dataset_info(dataset, data_dir, source)
    if tuple(info.image_shape) != tuple(model.image_shape):
        raise ValueError(f"Dataset {dataset!r} has images {tuple(info.image_shape)}; the model takes "
                         f"{tuple(model.image_shape)}.")
    with_labels = args.kind in ("latent-scatter", "attribute") or bool(model.condition)
    if with_labels and info.label_kind is None:
        raise ValueError(f"Dataset {dataset!r} has no labels, which --kind {args.kind} needs for this model.")
    count = max(num, args.index + 1) if args.kind == "traversal" else num
    images, labels = load_examples(dataset, args.split, data_dir=data_dir, count=count, with_labels=with_labels,
                                   shuffle=True, seed=args.seed, source_options=source)
    return images, labels, info.factor_names or info.class_names


def run_plot(args):
    import keras_vae
    from keras_vae.training import plots
    from keras_vae.training.outputs import save_picture
    from keras_vae.training.run_dir import data_source

    dataset, data_dir, source = data_source(args.model, args.dataset, args.data_dir)
    model = keras_vae.load_vae(args.model, compile=False)
    if args.kind == "style-transfer" and not model.condition:
        raise ValueError("--kind style-transfer needs a conditional model (trained with labels); this one is not.")
    num = args.num or {"interpolation": 16, "latent-scatter": 2000, "attribute": 2000, "blend": 16,
                       "style-transfer": 8}.get(args.kind, 64)
    images = labels = label_names = None
    if args.kind not in ("samples", "manifold") or plots.needs_dataset_labels(model):
        images, labels, label_names = _inputs(args, model, dataset, data_dir, num, source)
    picture = plots.plot_picture(
        model, args.kind, images, labels, num=num, steps=args.steps, seed=args.seed, temperature=args.temperature,
        method=args.method, dims=args.dims, span=args.span, index=args.index, label_names=label_names,
        colour_by=_colour_column(args.colour_by, label_names, dataset), attribute=args.attribute, weights=args.weights,
    )
    save_picture(picture, args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0
