"""A library of figures of a trained VAE: each function takes a model and data and returns a picture.

A picture is a uint8 grid array (`keras_vae.image_grid` tiles) or a matplotlib Figure (for figures with
axes). Writing them to files is `keras_vae.training.outputs`; the command line is `keras-vae plot`.

Kinds (`plot_picture`): ``samples`` (a grid of decoded prior samples), ``reconstructions`` (rows of
inputs, each followed by a row of their reconstructions), ``interpolation`` (strips between pairs of
inputs), ``traversal`` (one latent dimension per row swept over a range), ``manifold`` (for 2-D
latents: decoded codes on a grid of prior quantiles), ``latent-scatter`` (posterior means coloured
by label, PCA to 2-D when latent_dim > 2), ``attribute`` (inputs edited with an attribute vector
from labelled data, at growing strengths), ``blend`` (groups of inputs and their weighted mix) and
``style-transfer`` (conditional models: each input decoded under each target label).
A conditional model (``model.condition``) decodes with the given labels, or class labels 0, 1, 2, ...

Example:

>>> figure = plot_picture(vae, "latent-scatter", images=x, labels=y)   # a matplotlib Figure
>>> grid = samples_picture(vae, num=16, seed=0)                        # uint8 [H, W, C]
"""

import math

KINDS = ("samples", "reconstructions", "interpolation", "traversal", "manifold", "latent-scatter", "attribute", "blend",
         "style-transfer")
QUANTILE_RANGE = (0.05, 0.95)  # manifold grid: the central 90% of the prior along each axis
ATTRIBUTE_STRENGTHS = (0.5, 1.0, 1.5, 2.0)
MAX_STYLE_TARGETS = 10  # style-transfer columns: the first classes, or the first distinct label vectors


# ------------------------------------------------------------------------------------------ pictures
def new_figure(width, height):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def grid_axes(figure, grid, title):
    ax = figure.add_subplot()
    if grid.shape[-1] == 1:
        ax.imshow(grid[..., 0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(grid)
    ax.set_title(title)
    return ax


def _tile_centres(count, size, padding=1):
    return [i * (size + padding) + size / 2 - 0.5 for i in range(count)]


def needs_dataset_labels(model):
    """Whether decoding needs labels from a dataset: a model conditioned on label vectors (class labels can cycle)."""
    return model.condition.kind == "vector"


def _labels_for(model, labels, count):
    """Labels to decode ``count`` codes with: None (unconditional), the given ones, or class labels 0, 1, 2, ..."""
    if not model.condition:
        return None
    import numpy as np

    if labels is not None:
        if len(labels) < count:
            raise ValueError(f"Need {count} labels for this picture, got {len(labels)}.")
        return np.asarray(labels)[:count]
    if needs_dataset_labels(model):
        raise ValueError("A model conditioned on label vectors needs labels from a dataset to decode.")
    return np.arange(count) % model.condition.size


def _need_images(images, count, kind):
    if images is None or len(images) < count:
        have = 0 if images is None else len(images)
        raise ValueError(f"--kind {kind} needs {count} dataset examples, got {have}.")


def samples_picture(model, num=64, temperature=1.0, seed=0, labels=None):
    """A uint8 grid of ``num`` decoded prior samples."""
    import numpy as np

    from keras_vae import image_grid

    images = model.sample(num, temperature=temperature, seed=seed, labels=_labels_for(model, labels, num))
    return image_grid(np.asarray(images), columns=math.ceil(math.sqrt(num)))


def reconstructions_picture(model, images, labels=None, columns=8):
    """Rows of inputs, each followed by the row of their reconstructions (uint8 grid)."""
    import numpy as np

    from keras_vae import image_grid

    images = np.asarray(images, np.float32)
    recon = np.asarray(model.reconstruct(images, labels=_labels_for(model, labels, len(images))))
    rows = []
    for start in range(0, len(images), columns):
        block = slice(start, start + columns)
        pad = columns - len(images[block])
        for part in (images[block], recon[block]):
            rows.append(np.concatenate([part, np.ones((pad, *part.shape[1:]), np.float32)]) if pad else part)
    return image_grid(np.concatenate(rows), columns=columns)


def interpolation_picture(model, images, labels=None, steps=10, method="linear"):
    """One strip per consecutive pair of ``images`` (uint8 grid, ``steps`` columns); see `interpolate` for labels."""
    import numpy as np

    from keras_vae import image_grid, interpolate

    if len(images) < 2:
        raise ValueError("Interpolation needs at least two images.")
    labels = _labels_for(model, labels, len(images))
    strips = [
        interpolate(model, images[i], images[i + 1], num_steps=steps, method=method,
                    labels=None if labels is None else labels[i : i + 2])  # each end under its own label
        for i in range(0, len(images) - 1, 2)
    ]
    return image_grid(np.concatenate(strips), columns=steps)


def traversal_picture(model, start, dims=None, span=3.0, steps=9, label=None):
    """A figure: row r sweeps latent dimension ``dims[r]`` over ``[-span, span]`` from the code of ``start``."""
    import numpy as np

    from keras_vae import image_grid, traverse

    values = np.linspace(-float(span), float(span), int(steps))
    dims = list(range(model.latent_dim)) if dims is None else list(dims)
    grid = traverse(model, start, dims=dims, values=values, labels=label)
    tiles = image_grid(grid.reshape(-1, *grid.shape[2:]), columns=len(values))
    height, width = grid.shape[2:4]
    figure = new_figure(1.0 + 0.6 * len(values), 0.8 + 0.6 * len(dims))
    ax = grid_axes(figure, tiles, "latent traversal")
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
    if model.condition and label is None:
        label = _labels_for(model, None, 1)[0]
    images = decode_codes(model, codes, labels=label)
    tiles = image_grid(images, columns=int(steps))
    height, width = images.shape[1:3]
    figure = new_figure(1.0 + 0.5 * steps, 1.0 + 0.5 * steps)
    ax = grid_axes(figure, tiles, "decoded prior quantiles")
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

    ``labels`` are class indices ``[n]`` (``label_names``, if given, names the classes) or factor vectors
    ``[n, k]`` (then ``colour_by`` picks the factor column, ``label_names`` names them).
    """
    import numpy as np

    from keras_vae import encode_means

    labels = np.asarray(labels)
    codes = encode_means(model, images, labels=labels if model.condition else None)
    if labels.ndim == 2:
        column = 0 if colour_by is None else int(colour_by)
        colour, name = labels[:, column], (label_names[column] if label_names else f"factor {column}")
    else:
        colour, name = labels, "label"
    figure = new_figure(6.5, 5.5)
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
            named = labels.ndim == 1 and label_names and 0 <= value < len(label_names)  # a folder's class names
            ax.scatter(points[chosen, 0], points[chosen, 1], s=6, alpha=0.7,
                       label=str(label_names[value]) if named else str(value))
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

    if model.condition:
        raise ValueError("Attribute editing is for unconditional models: a conditional model's label sets it.")
    has = attribute_mask(labels, attribute, label_names)
    vector = attribute_vector(model, images, has)
    targets = images[~has][:rows]
    columns = [np.asarray(model.reconstruct(targets))]
    columns += [apply_attribute(model, targets, vector, strength=s) for s in ATTRIBUTE_STRENGTHS]
    tiles = np.stack([targets, *columns], axis=1)  # [rows, 2 + strengths, H, W, C]
    grid = image_grid(tiles.reshape(-1, *tiles.shape[2:]), columns=tiles.shape[1])
    height, width = images.shape[1:3]
    figure = new_figure(1.0 + 0.8 * tiles.shape[1], 0.8 + 0.8 * len(targets))
    ax = grid_axes(figure, grid, f"attribute {attribute} (vector from {int(has.sum())} of {len(has)} examples)")
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
        tiles += [group, blend(model, group, weights, labels=label)]
    return image_grid(np.concatenate(tiles), columns=k + 1)


def style_targets(model, labels):
    """The target labels of a style-transfer grid: classes 0, 1, ... or the distinct label vectors of ``labels``."""
    import numpy as np

    if model.condition.kind == "class":
        return np.arange(min(model.condition.size, MAX_STYLE_TARGETS))
    _, first = np.unique(np.asarray(labels), axis=0, return_index=True)
    return np.asarray(labels)[np.sort(first)[:MAX_STYLE_TARGETS]]  # in dataset order, for a stable picture


def style_transfer_picture(model, images, labels, rows=8):
    """Rows of an input followed by its content decoded under each target label of `style_targets` (uint8 grid).

    Example: ``style_transfer_picture(cvae, digits, digit_labels)`` writes each digit as 0, 1, ..., 9.
    """
    import numpy as np

    from keras_vae import image_grid, style_transfer

    if not model.condition:
        raise ValueError("--kind style-transfer needs a conditional model (trained with labels); this one is not.")
    _need_images(images, 1, "style-transfer")
    labels = _labels_for(model, labels, len(images))
    targets = style_targets(model, labels)
    images, labels = images[:rows], labels[:rows]
    grid = style_transfer(model, images, labels, targets)
    tiles = np.concatenate([np.asarray(images, grid.dtype)[:, np.newaxis], grid], axis=1)
    return image_grid(tiles.reshape(-1, *tiles.shape[2:]), columns=tiles.shape[1])


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
        label = _labels_for(model, labels, index + 1)[index] if model.condition else None
        return traversal_picture(model, images[index], dims=dims, span=span, steps=steps or 9, label=label)
    if kind == "blend":
        return blend_picture(model, images, weights, None if labels is None else labels)
    if kind == "style-transfer":
        return style_transfer_picture(model, images, labels, rows=num)
    _need_images(images, 2, kind)
    if labels is None:
        raise ValueError(f"--kind {kind} needs a dataset with labels.")
    if kind == "attribute":
        if attribute is None:
            raise ValueError("--kind attribute needs --attribute VALUE (class labels) or FACTOR=VALUE (factors).")
        return attribute_picture(model, images, labels, attribute, label_names=label_names)
    return latent_scatter_picture(model, images, labels, label_names=label_names, colour_by=colour_by)
