"""`keras-vae fit-sampler`: fit an ex-post sampler to a trained model's training codes and save it in the model.

The sampler (`keras_vae.samplers`: ``gmm``, a Gaussian mixture fitted by EM; ``two_stage``, a second small
VAE on the codes) is fitted to the posterior means of the run's training split and kept in the model file,
which is rewritten atomically (readers see the old or the new file); given a run directory, best.keras gets one
fitted to its own codes too. ``model.sample(n, sampler=NAME)`` and
``keras-vae evaluate --sample-quality --sampler NAME`` then draw from it.

Example:

    keras-vae fit-sampler runs/sprites --kind gmm --num-components 20 --examples 20000
    keras-vae fit-sampler runs/sprites --kind gmm --num-components 100 --covariance-type full
    keras-vae fit-sampler model.keras --dataset mnist --data-dir ../shared/data --split test
"""

import math
import os
import sys

from keras_vae.cli.common import positive_int, seed
from keras_vae.cli.run_writer import writes_into
from keras_vae.names import COVARIANCE_TYPES

DEFAULT_EXAMPLES = 10_000


def add_command(subparsers):
    """Registers ``fit-sampler`` on ``subparsers``."""
    parser = subparsers.add_parser(
        "fit-sampler", help="fit an ex-post sampler (gmm, two_stage) to a run's training codes",
        description="Fit an ex-post sampler to the codes of a model's training split and save it in the model file.",
    )
    parser.add_argument("model", metavar="RUN_DIR_OR_MODEL", help="run directory (uses model.keras) or .keras file")
    parser.add_argument("--kind", default="gmm", choices=("gmm", "two_stage"))
    parser.add_argument("--name", help="name to keep the sampler under (default: the kind)")
    parser.add_argument("--num-components", type=positive_int, help="mixture components of a gmm sampler (default 10)")
    parser.add_argument("--covariance-type", choices=COVARIANCE_TYPES,
                        help="a gmm sampler's component covariances (default diag; full follows curved codes)")
    parser.add_argument("--epochs", type=positive_int, help="training epochs of a two_stage sampler (default 100)")
    parser.add_argument("--examples", type=positive_int, default=DEFAULT_EXAMPLES,
                        help=f"training examples encoded (a seeded random subset; default {DEFAULT_EXAMPLES})")
    parser.add_argument("--dataset", help="dataset name (default: the run's dataset; must match it)")
    parser.add_argument("--data-dir", help="folder with canonical files or a tfds data directory")
    parser.add_argument("--split", default="train", choices=("train", "valid", "test"),
                        help="split whose codes are fitted (default train)")
    parser.add_argument("--seed", type=seed, default=0)
    parser.set_defaults(func=run_fit_sampler)


def sampler_options(args):
    """The sampler constructor options the flags give, refusing a flag of the other kind."""
    from keras_vae.names import SAMPLER_OPTIONS

    own = SAMPLER_OPTIONS[args.kind]
    for flag in sorted({flag for flags in SAMPLER_OPTIONS.values() for flag in flags}):
        if getattr(args, flag) is not None and flag not in own:
            raise ValueError(f"--{flag.replace('_', '-')} is not an option of --kind {args.kind}.")
    return {flag: getattr(args, flag) for flag in own if getattr(args, flag) is not None}


def checked_dataset(model_path, dataset, data_dir):
    """``(dataset, data_dir, source_options)`` of the run, refusing a ``dataset`` other than the run's own."""
    from keras_vae.run_config import read_run_config
    from keras_vae.training.run_dir import data_source

    trained_on = read_run_config(model_path).get("dataset")
    if dataset and trained_on and dataset != trained_on:
        raise ValueError(f"{model_path!r} was trained on {trained_on!r}: a sampler fitted to {dataset!r} codes "
                         "would not belong to this model. Fit it on the run's own dataset (omit --dataset).")
    dataset, data_dir, source = data_source(model_path, dataset, data_dir)
    if dataset is None:
        raise ValueError("--dataset is required when the model is not in a run directory with a config.yaml.")
    return dataset, data_dir, source


def checked_examples(count, dataset, split, source=None):
    """``--examples`` capped at the split's size (with a note), refused when its float32 images, held in memory at
    once, would exceed `keras_vae.limits.MAX_ARRAY_BYTES` (2 GiB: 131072 sprites).

    >>> checked_examples(10**12, "mnist", "train")     # prints a note
    50000
    """
    from keras_vae.limits import check_size
    from keras_vae.training.data import dataset_info

    info = dataset_info(dataset, source_options=source)
    size = info.split_sizes.get(split)
    if size is not None and count > size:
        print(f"keras-vae fit-sampler: --examples {count} is more than the {size} examples of {dataset!r} {split}: "
              f"using {size}.", file=sys.stderr)
        count = size
    check_size("--examples", count, 4 * math.prod(info.image_shape), "MAX_ARRAY_BYTES",
               f"float32 {tuple(info.image_shape)} images", "give fewer --examples")
    return count


def check_image_shape(model, dataset, data_dir, source=None):
    """Raises a ValueError when ``dataset``'s images are not the images ``model`` was built for."""
    from keras_vae.training.data import dataset_info

    shape = tuple(dataset_info(dataset, data_dir, source).image_shape)
    if shape != tuple(model.image_shape):
        raise ValueError(f"The model takes {tuple(model.image_shape)} images; dataset {dataset!r} has {shape}: "
                         "a sampler fitted to its codes would belong to another model.")


@writes_into(lambda args: args.model)  # a run's lock; leftovers of fit-samplers killed mid-write removed
def run_fit_sampler(args):
    options = sampler_options(args)
    import keras_vae
    from keras_vae.saving import resolve_model_path
    from keras_vae.training.data import load_examples
    from keras_vae.training.run_dir import BEST_FILE, atomic_write

    model_path = resolve_model_path(args.model)
    dataset, data_dir, source = checked_dataset(args.model, args.dataset, args.data_dir)
    examples = checked_examples(args.examples, dataset, args.split, source)
    model = keras_vae.load_vae(model_path)  # compiled: the optimizer state is saved back unchanged
    check_image_shape(model, dataset, data_dir, source)
    images, labels = load_examples(dataset, args.split, data_dir=data_dir, count=examples,
                                   with_labels=bool(model.condition), shuffle=True, seed=args.seed,
                                   source_options=source)
    name = args.name or args.kind
    replaced = name in model.samplers
    model.fit_sampler(images, labels, kind=args.kind, name=name, seed=args.seed, dataset=dataset, **options)
    atomic_write(model_path, model.save)
    written = [model_path]
    best_path = os.path.join(args.model, BEST_FILE)
    if os.path.isdir(args.model) and os.path.isfile(best_path):  # a run's best.keras gets one of its own codes
        best = keras_vae.load_vae(best_path)
        best.fit_sampler(images, labels, kind=args.kind, name=name, seed=args.seed, dataset=dataset, **options)
        atomic_write(best_path, best.save)
        written.append(best_path)
    print(f"{'replaced' if replaced else 'added'} sampler {name!r} ({args.kind}, {options or 'default options'}) "
          f"fitted to {len(images)} {args.split} codes of {dataset!r}; wrote {' and '.join(written)}")
    print(f"score its samples with: keras-vae evaluate {args.model} --sample-quality --sampler {name}")
    return 0
