"""`keras-vae plot` and `keras-vae score`: pictures of a trained VAE and anomaly scores over a dataset.

Pictures (``--kind``): ``samples`` (a grid of decoded prior samples), ``reconstructions`` (rows of
inputs, each followed by a row of their reconstructions), ``interpolation`` (strips between pairs of
inputs), ``traversal`` (one latent dimension per row swept over a range), ``manifold`` (for 2-D
latents: decoded codes on a grid of prior quantiles), ``latent-scatter`` (posterior means coloured
by label, PCA to 2-D when latent_dim > 2), ``attribute`` (inputs edited with an attribute vector
from labelled data, at growing strengths) and ``blend`` (groups of inputs and their weighted mix). Figures with axes are drawn with matplotlib; tiles with
`keras_vae.image_grid`.

Example:

    keras-vae plot runs/sprites --kind traversal --out traversal.png
    keras-vae plot runs/mnist2d --kind manifold --steps 20 --out manifold.png
    keras-vae plot runs/sprites --kind attribute --attribute shape=2 --out hearts.png
    keras-vae plot runs/mnist --kind blend --weights 2 1 1 --out blend.png
    keras-vae score runs/sprites --split test --method iwae --quantile 0.99 --out scores.csv

Python:

>>> figure = plot_picture(vae, "latent-scatter", images=x, labels=y)   # a matplotlib Figure
>>> save_picture(figure, "scatter.png")
"""

import csv
import json
import math
import os
import sys

KINDS = ("samples", "reconstructions", "interpolation", "traversal", "manifold", "latent-scatter", "attribute", "blend")
PICTURE_FORMATS = (".png", ".jpg", ".jpeg", ".pdf", ".svg")
SCORE_FORMATS = (".csv", ".json")
QUANTILE_RANGE = (0.05, 0.95)  # manifold grid: the central 90% of the prior along each axis
ATTRIBUTE_STRENGTHS = (0.5, 1.0, 1.5, 2.0)


# ------------------------------------------------------------------------------------------ pictures
def _figure(width, height):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _grid_axes(figure, grid, title):
    ax = figure.add_subplot()
    if grid.shape[-1] == 1:
        ax.imshow(grid[..., 0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(grid)
    ax.set_title(title)
    return ax


def _tile_centres(count, size, padding=1):
    return [i * (size + padding) + size / 2 - 0.5 for i in range(count)]


def _conditional(model):
    return bool(getattr(model, "conditional", False))


def _labels_for(model, labels, count):
    """Labels to decode ``count`` codes with: the given ones, or (class labels) 0, 1, 2, ... cycling."""
    if not _conditional(model):
        return None
    import numpy as np

    if labels is not None:
        if len(labels) < count:
            raise ValueError(f"Need {count} labels for this picture, got {len(labels)}.")
        return np.asarray(labels)[:count]
    if model.num_classes is None:
        raise ValueError("A model conditioned on label vectors needs labels from a dataset to decode.")
    return np.arange(count) % model.num_classes


def _need_images(images, count, kind):
    if images is None or len(images) < count:
        have = 0 if images is None else len(images)
        raise ValueError(f"--kind {kind} needs {count} dataset examples, got {have}.")


def samples_picture(model, num=64, temperature=1.0, seed=0, labels=None):
    """A uint8 grid of ``num`` decoded prior samples."""
    import numpy as np

    from keras_vae import image_grid

    labels = _labels_for(model, labels, num)
    if labels is None:
        images = model.sample(num, temperature=temperature, seed=seed)
    else:
        images = model.sample(num, temperature=temperature, seed=seed, labels=labels)
    return image_grid(np.asarray(images), columns=math.ceil(math.sqrt(num)))


def reconstructions_picture(model, images, labels=None, columns=8):
    """Rows of inputs, each followed by the row of their reconstructions (uint8 grid)."""
    import numpy as np

    from keras_vae import image_grid

    images = np.asarray(images, np.float32)
    if _conditional(model):
        recon = np.asarray(model.reconstruct(images, _labels_for(model, labels, len(images))))
    else:
        recon = np.asarray(model.reconstruct(images))
    rows = []
    for start in range(0, len(images), columns):
        block = slice(start, start + columns)
        pad = columns - len(images[block])
        for part in (images[block], recon[block]):
            rows.append(np.concatenate([part, np.ones((pad, *part.shape[1:]), np.float32)]) if pad else part)
    return image_grid(np.concatenate(rows), columns=columns)


def interpolation_picture(model, images, labels=None, steps=10, method="linear"):
    """One strip per consecutive pair of ``images`` (uint8 grid, ``steps`` columns)."""
    import numpy as np

    from keras_vae import image_grid, interpolate

    if len(images) < 2:
        raise ValueError("Interpolation needs at least two images.")
    labels = _labels_for(model, labels, len(images))
    strips = [
        interpolate(model, images[i], images[i + 1], num_steps=steps, method=method,
                    label=None if labels is None else labels[i])
        for i in range(0, len(images) - 1, 2)
    ]
    return image_grid(np.concatenate(strips), columns=steps)


def traversal_picture(model, start, dims=None, span=3.0, steps=9, label=None):
    """A figure: row r sweeps latent dimension ``dims[r]`` over ``[-span, span]`` from the code of ``start``."""
    import numpy as np

    from keras_vae import image_grid, traverse

    values = np.linspace(-float(span), float(span), int(steps))
    dims = list(range(model.latent_dim)) if dims is None else list(dims)
    grid = traverse(model, start, dims=dims, values=values, label=label)
    tiles = image_grid(grid.reshape(-1, *grid.shape[2:]), columns=len(values))
    height, width = grid.shape[2:4]
    figure = _figure(1.0 + 0.6 * len(values), 0.8 + 0.6 * len(dims))
    ax = _grid_axes(figure, tiles, "latent traversal")
    ax.set_xticks(_tile_centres(len(values), width), [f"{v:.1f}" for v in values])
    ax.set_yticks(_tile_centres(len(dims), height), [f"z{d}" for d in dims])
    ax.set_xlabel("value of the swept dimension")
    return figure


def prior_quantiles(model, probabilities):
    """Per-dimension quantiles ``[len(probabilities), latent_dim]`` of the prior's marginals."""
    import numpy as np

    probabilities = np.asarray(probabilities, np.float32)
    if getattr(model.prior, "factorized", False):
        return np.asarray(model.prior.marginal().quantile(probabilities[:, np.newaxis]))
    # A mixture's marginal quantiles have no closed form: use those of many prior draws.
    draws = np.asarray(model.sample_prior(20_000, seed=0))
    return np.quantile(draws, probabilities, axis=0).astype(np.float32)


def manifold_picture(model, steps=15, label=None):
    """A figure of decoded codes on a ``steps x steps`` grid of prior quantiles (2-D latents only)."""
    import numpy as np

    from keras_vae import image_grid
    from keras_vae.latent import decode_codes

    if model.latent_dim != 2:
        raise ValueError(f"--kind manifold needs a model with a 2-D latent space; this one has latent_dim={model.latent_dim}.")
    quantiles = prior_quantiles(model, np.linspace(*QUANTILE_RANGE, int(steps)))
    z1, z2 = quantiles[:, 0], quantiles[::-1, 1]  # z2 grows upwards
    codes = np.stack(np.meshgrid(z1, z2), axis=-1).reshape(-1, 2)
    if _conditional(model) and label is None:
        label = _labels_for(model, None, 1)[0]
    images = decode_codes(model, codes, label)
    tiles = image_grid(images, columns=int(steps))
    height, width = images.shape[1:3]
    figure = _figure(1.0 + 0.5 * steps, 1.0 + 0.5 * steps)
    ax = _grid_axes(figure, tiles, "decoded prior quantiles")
    every = max(1, int(steps) // 5)
    ticks = list(range(0, int(steps), every))
    ax.set_xticks([_tile_centres(steps, width)[i] for i in ticks], [f"{z1[i]:.2f}" for i in ticks])
    ax.set_yticks([_tile_centres(steps, height)[i] for i in ticks], [f"{z2[i]:.2f}" for i in ticks])
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    return figure


def pca_2d(codes):
    """Projects ``codes`` ``[n, d]`` on their first two principal axes: ``(points [n, 2], explained ratios [2])``."""
    import numpy as np

    centred = codes - codes.mean(axis=0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    explained = singular**2 / max(float(np.sum(singular**2)), 1e-12)
    return centred @ axes[:2].T, explained[:2]


def latent_scatter_picture(model, images, labels, label_names=None, colour_by=None):
    """A figure of posterior means coloured by label; PCA to 2-D when latent_dim > 2.

    ``labels`` are class indices ``[n]`` or factor vectors ``[n, k]`` (then ``colour_by`` picks the
    factor column, ``label_names`` names them).
    """
    import numpy as np

    from keras_vae import encode_means

    labels = np.asarray(labels)
    codes = encode_means(model, images, labels if _conditional(model) else None)
    if labels.ndim == 2:
        column = 0 if colour_by is None else int(colour_by)
        colour, name = labels[:, column], (label_names[column] if label_names else f"factor {column}")
    else:
        colour, name = labels, "label"
    figure = _figure(6.5, 5.5)
    ax = figure.add_subplot()
    if codes.shape[1] > 2:
        points, explained = pca_2d(codes)
        ax.set_xlabel(f"PC1 ({100 * explained[0]:.0f}% of variance)")
        ax.set_ylabel(f"PC2 ({100 * explained[1]:.0f}% of variance)")
    elif codes.shape[1] == 2:
        points = codes
        ax.set_xlabel("z1")
        ax.set_ylabel("z2")
    else:
        points = np.stack([codes[:, 0], colour + np.random.RandomState(0).uniform(-0.3, 0.3, len(colour))], 1)
        ax.set_xlabel("z1")
        ax.set_ylabel(f"{name} (jittered)")
    values = np.unique(colour)
    if len(values) <= 10:
        for value in values:
            chosen = colour == value
            ax.scatter(points[chosen, 0], points[chosen, 1], s=6, alpha=0.7, label=str(value))
        ax.legend(title=name, markerscale=3, fontsize="small")
    else:
        scatter = ax.scatter(points[:, 0], points[:, 1], c=colour, s=6, alpha=0.7, cmap="viridis")
        figure.colorbar(scatter, ax=ax, label=name)
    ax.set_title("posterior means" + (" (PCA)" if codes.shape[1] > 2 else ""))
    return figure


def attribute_mask(labels, attribute, label_names=None):
    """Which examples have ``attribute``: ``"VALUE"`` for class labels, ``"FACTOR=VALUE"`` for factor labels."""
    import numpy as np

    labels = np.asarray(labels)
    name, _, value = attribute.rpartition("=")
    try:
        value = int(value)
    except ValueError:
        raise ValueError(f"--attribute must be VALUE or FACTOR=VALUE with an integer value, got {attribute!r}.")
    if labels.ndim == 1:
        if name:
            raise ValueError(f"This dataset has class labels: give --attribute VALUE, not {attribute!r}.")
        return labels == value
    names = list(label_names or [])
    if name in names:
        column = names.index(name)
    elif name.isdigit() and int(name) < labels.shape[1]:
        column = int(name)
    else:
        raise ValueError(f"--attribute {attribute!r}: give FACTOR=VALUE with FACTOR one of {names or 'the columns'}.")
    return labels[:, column] == value


def attribute_picture(model, images, labels, attribute, label_names=None, rows=6):
    """A figure: inputs without ``attribute`` (first column) edited with its attribute vector at growing strengths."""
    import numpy as np

    from keras_vae import apply_attribute, attribute_vector, image_grid

    if _conditional(model):
        raise ValueError("Attribute editing is for unconditional models: a conditional model's label sets it.")
    has = attribute_mask(labels, attribute, label_names)
    vector = attribute_vector(model, images, has)
    targets = images[~has][:rows]
    columns = [np.asarray(model.reconstruct(targets))]
    columns += [apply_attribute(model, targets, vector, strength=s) for s in ATTRIBUTE_STRENGTHS]
    tiles = np.stack([targets, *columns], axis=1)  # [rows, 2 + strengths, H, W, C]
    grid = image_grid(tiles.reshape(-1, *tiles.shape[2:]), columns=tiles.shape[1])
    height, width = images.shape[1:3]
    figure = _figure(1.0 + 0.8 * tiles.shape[1], 0.8 + 0.8 * len(targets))
    ax = _grid_axes(figure, grid, f"attribute {attribute} (vector from {int(has.sum())} of {len(has)} examples)")
    names = ["input", "reconstruction"] + [f"+{s:g}" for s in ATTRIBUTE_STRENGTHS]
    ax.set_xticks(_tile_centres(len(names), width), names)
    ax.set_yticks([])
    return figure


def blend_picture(model, images, weights, labels=None, rows=4):
    """Rows of ``len(weights)`` inputs followed by the decoded weighted mix of their codes (uint8 grid)."""
    import numpy as np

    from keras_vae import blend, image_grid

    k = len(weights)
    if k < 2:
        raise ValueError("Blending needs at least two weights (one per input).")
    _need_images(images, k, "blend")
    labels = _labels_for(model, labels, len(images))
    tiles = []
    for start in range(0, min(len(images), rows * k) - k + 1, k):
        group = images[start : start + k]
        label = None if labels is None else labels[start]
        tiles += [group, blend(model, group, weights, label=label)]
    return image_grid(np.concatenate(tiles), columns=k + 1)


def plot_picture(model, kind, images=None, labels=None, *, num=64, steps=None, seed=0, temperature=1.0,
                 method="linear", dims=None, span=3.0, index=0, label_names=None, colour_by=None,
                 attribute=None, weights=(1.0, 1.0)):
    """The picture of ``kind`` (see `KINDS`): a uint8 grid array or a matplotlib Figure.

    ``images`` / ``labels`` are dataset examples for the kinds that need inputs.
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown picture kind {kind!r}; expected one of {list(KINDS)}.")
    if kind == "samples":
        return samples_picture(model, num=num, temperature=temperature, seed=seed, labels=labels)
    if kind == "manifold":
        return manifold_picture(model, steps=steps or 15)
    if kind == "reconstructions":
        _need_images(images, 1, kind)
        return reconstructions_picture(model, images[:num], None if labels is None else labels[:num])
    if kind == "interpolation":
        _need_images(images, 2, kind)
        return interpolation_picture(model, images[:num], None if labels is None else labels[:num],
                                     steps=steps or 10, method=method)
    if kind == "traversal":
        _need_images(images, index + 1, kind)
        label = None if not _conditional(model) else _labels_for(model, labels, index + 1)[index]
        return traversal_picture(model, images[index], dims=dims, span=span, steps=steps or 9, label=label)
    if kind == "blend":
        return blend_picture(model, images, weights, None if labels is None else labels)
    _need_images(images, 2, kind)
    if labels is None:
        raise ValueError(f"--kind {kind} needs a dataset with labels.")
    if kind == "attribute":
        if attribute is None:
            raise ValueError("--kind attribute needs --attribute VALUE (class labels) or FACTOR=VALUE (factors).")
        return attribute_picture(model, images, labels, attribute, label_names=label_names)
    return latent_scatter_picture(model, images, labels, label_names=label_names, colour_by=colour_by)


def save_picture(picture, path):
    """Writes a uint8 grid (as an image) or a matplotlib Figure to ``path``."""
    if not hasattr(picture, "savefig") and os.path.splitext(path)[1].lower() in (".png", ".jpg", ".jpeg"):
        from PIL import Image

        Image.fromarray(picture[..., 0] if picture.shape[-1] == 1 else picture).save(path)  # pixel-exact
        return
    if not hasattr(picture, "savefig"):  # vector formats: the grid inside a bare figure
        figure = _figure(picture.shape[1] / 100, picture.shape[0] / 100)
        _grid_axes(figure, picture, "").set_axis_off()
        picture = figure
    picture.savefig(path)


# ------------------------------------------------------------------------------------------ data



def _model_and_data_source(args):
    import keras_vae
    from keras_vae.training.evaluate import _run_config

    run = _run_config(args.model)
    model = keras_vae.load_vae(args.model, compile=False)
    dataset = args.dataset or run.get("dataset")
    data_dir = args.data_dir or (run.get("data_dir") if dataset == run.get("dataset") else None)
    return model, dataset, data_dir


def _check_extension(path, formats, option):
    if os.path.splitext(path)[1].lower() not in formats:
        raise ValueError(f"{option} must end in one of {', '.join(formats)}; got {path!r}.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"The folder of {option} {path!r} does not exist.")


# ------------------------------------------------------------------------------------------ CLI
def add_commands(subparsers):
    plot = subparsers.add_parser(
        "plot",
        help="pictures of a trained VAE: samples, reconstructions, interpolation, traversal, manifold, latent-scatter",
        description="Draw a picture of a trained VAE (a run directory or a .keras file).",
    )
    plot.add_argument("model", metavar="RUN_DIR_OR_MODEL", help="run directory (uses model.keras) or .keras file")
    plot.add_argument("--kind", required=True, choices=KINDS)
    plot.add_argument("--out", required=True, metavar="FILE.png", help="picture file (.png, .jpg, .pdf, .svg)")
    plot.add_argument("--dataset", help="dataset for the inputs (default: the run's dataset)")
    plot.add_argument("--data-dir", help="folder with canonical files or a tfds data directory")
    plot.add_argument("--split", default="test", choices=("train", "valid", "test"))
    plot.add_argument("--num", type=int, help="samples / inputs / scatter points (default 64; 16 pairs' worth "
                      "for interpolation; 2000 for latent-scatter)")
    plot.add_argument("--steps", type=int, help="interpolation steps (10), traversal values (9), manifold grid (15)")
    plot.add_argument("--method", default="linear", choices=("linear", "spherical"), help="interpolation path")
    plot.add_argument("--dims", type=int, nargs="+", help="traversal: latent dimensions to sweep (default all)")
    plot.add_argument("--span", type=float, default=3.0, help="traversal: sweep each dimension over [-span, span]")
    plot.add_argument("--index", type=int, default=0, help="traversal: which dataset example to start from")
    plot.add_argument("--colour-by", help="latent-scatter with factor labels: the factor name or column")
    plot.add_argument("--attribute", metavar="VALUE|FACTOR=VALUE",
                      help="attribute: examples with this class label (e.g. 7) or factor value (e.g. shape=2)")
    plot.add_argument("--weights", type=float, nargs="+", default=[1.0, 1.0],
                      help="blend: one weight per input of each group (default 1 1)")
    plot.add_argument("--temperature", type=float, default=1.0, help="samples: prior temperature")
    plot.add_argument("--seed", type=int, default=0)
    plot.set_defaults(func=run_plot)

    score = subparsers.add_parser(
        "score",
        help="anomaly scores (negative ELBO or importance-weighted NLL) with a threshold from training data",
        description="Score every example of a dataset split; flag those above a quantile of training scores.",
    )
    score.add_argument("model", metavar="RUN_DIR_OR_MODEL", help="run directory (uses model.keras) or .keras file")
    score.add_argument("--out", required=True, metavar="FILE.csv|FILE.json", help="per-example scores")
    score.add_argument("--dataset", help="dataset name (default: the run's dataset)")
    score.add_argument("--data-dir", help="folder with canonical files or a tfds data directory")
    score.add_argument("--split", default="test", choices=("train", "valid", "test"), help="split to score")
    score.add_argument("--limit", type=int, help="score only the first N examples of the split")
    score.add_argument("--method", default="elbo", choices=("elbo", "iwae"))
    score.add_argument("--num-samples", type=int, help="posterior / importance samples (default 10 elbo, 100 iwae)")
    score.add_argument("--quantile", type=float, default=0.99, help="threshold quantile of training scores")
    score.add_argument("--threshold", type=float, help="use this threshold instead of one from training scores")
    score.add_argument("--threshold-split", default="train", choices=("train", "valid", "test"))
    score.add_argument("--threshold-examples", type=int, default=2000,
                       help="training examples scored for the threshold (default 2000)")
    score.add_argument("--batch-size", type=int, default=128)
    score.add_argument("--seed", type=int, default=0)
    score.set_defaults(func=run_score)


def _positive(args, *names):
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def run_plot(args):
    _positive(args, "num", "steps")
    _check_extension(args.out, PICTURE_FORMATS, "--out")
    if args.span <= 0 or args.temperature <= 0:
        raise ValueError("--span and --temperature must be > 0.")
    model, dataset, data_dir = _model_and_data_source(args)
    num = args.num or {"interpolation": 16, "latent-scatter": 2000, "attribute": 2000, "blend": 16}.get(args.kind, 64)
    needs_data = args.kind not in ("samples", "manifold") or (
        _conditional(model) and model.num_classes is None
    )
    images = labels = label_names = None
    colour_by = None
    if needs_data:
        if dataset is None:
            raise ValueError(f"--kind {args.kind} needs inputs: give --dataset (the model has no run config.yaml).")
        from keras_vae.training.data import dataset_info, load_examples

        info = dataset_info(dataset, data_dir)
        if tuple(info.image_shape) != tuple(model.image_shape):
            raise ValueError(f"Dataset {dataset!r} has images {tuple(info.image_shape)}; the model takes "
                             f"{tuple(model.image_shape)}.")
        with_labels = args.kind in ("latent-scatter", "attribute") or _conditional(model)
        if with_labels and info.label_kind is None:
            raise ValueError(f"Dataset {dataset!r} has no labels, which --kind {args.kind} needs for this model.")
        count = max(num, args.index + 1) if args.kind == "traversal" else num
        images, labels = load_examples(dataset, args.split, data_dir=data_dir, count=count, with_labels=with_labels,
                                       shuffle=True, seed=args.seed)
        label_names = info.factor_names
        if args.colour_by is not None:
            if label_names and args.colour_by in label_names:
                colour_by = label_names.index(args.colour_by)
            elif args.colour_by.isdigit():
                colour_by = int(args.colour_by)
            else:
                raise ValueError(f"--colour-by {args.colour_by!r} is not a factor of {dataset!r} ({label_names}).")
    picture = plot_picture(model, args.kind, images, labels, num=num, steps=args.steps, seed=args.seed,
                           temperature=args.temperature, method=args.method, dims=args.dims, span=args.span,
                           index=args.index, label_names=label_names, colour_by=colour_by,
                           attribute=args.attribute, weights=args.weights)
    save_picture(picture, args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def run_score(args):
    _positive(args, "limit", "num_samples", "threshold_examples", "batch_size")
    _check_extension(args.out, SCORE_FORMATS, "--out")
    if args.threshold is None and not 0.0 < args.quantile < 1.0:
        raise ValueError(f"--quantile must be in (0, 1), got {args.quantile}")
    import numpy as np

    from keras_vae import anomaly_scores, score_threshold
    from keras_vae.training.data import load_examples

    model, dataset, data_dir = _model_and_data_source(args)
    if dataset is None:
        raise ValueError("--dataset is required when the model is not in a run directory with a config.yaml.")
    conditional = _conditional(model)
    options = dict(method=args.method, num_samples=args.num_samples, batch_size=args.batch_size, seed=args.seed)

    def scores_of(split, count, shuffle):
        images, labels = load_examples(dataset, split, data_dir=data_dir, count=count, with_labels=conditional,
                                       shuffle=shuffle, seed=args.seed)
        return anomaly_scores(model, images, labels=labels, **options)

    if args.threshold is None:
        # A random subset of the reference split: its first examples may all be alike (ordered splits).
        reference = scores_of(args.threshold_split, args.threshold_examples, shuffle=True)
        threshold = score_threshold(reference, args.quantile)
    else:
        reference, threshold = None, float(args.threshold)
    scores = scores_of(args.split, args.limit, shuffle=False)  # in split order: row i is example i
    flagged = scores > threshold
    num_samples = args.num_samples or {"elbo": 10, "iwae": 100}[args.method]
    summary = {
        "dataset": dataset,
        "split": args.split,
        "method": args.method,
        "num_samples": num_samples,
        "threshold": threshold,
        "quantile": None if reference is None else args.quantile,
        "threshold_split": None if reference is None else args.threshold_split,
        "threshold_examples": None if reference is None else int(len(reference)),
        "num_examples": int(len(scores)),
        "num_anomalous": int(flagged.sum()),
        "mean_score": float(np.mean(scores)),
    }
    if args.out.lower().endswith(".json"):
        rows = [{"index": i, "score": float(s), "anomalous": bool(f)} for i, (s, f) in enumerate(zip(scores, flagged))]
        with open(args.out, "w") as f:
            json.dump({**summary, "examples": rows}, f, indent=1)
    else:
        with open(args.out, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["index", "score", "anomalous"])
            writer.writerows((i, f"{s:.6f}", int(a)) for i, (s, a) in enumerate(zip(scores, flagged)))
    where = (f"the {args.quantile} quantile of {summary['threshold_examples']} {args.threshold_split} scores"
             if reference is not None else "given")
    print(f"{dataset}/{args.split}: {len(scores)} examples scored ({args.method}, {num_samples} samples), "
          f"threshold {threshold:.3f} nats ({where}), {int(flagged.sum())} flagged "
          f"({100 * flagged.mean():.2f}%); wrote {args.out}")
    return 0
