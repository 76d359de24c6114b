"""`keras-vae evaluate`: nats-per-example evaluation of a trained VAE (see `keras_vae.training.evaluate`).

Example:

    keras-vae evaluate runs/sprites --split test --iw-samples 5000 --out eval.json
    keras-vae evaluate runs/sprites --iw-samples 100 --sample-quality --sampler gmm   # + Fréchet distance, P/R
"""

import sys

from keras_vae.cli.common import (add_model_and_data_arguments, check_positive, non_negative_int, output_path,
                                  positive_float, positive_int, seed)
from keras_vae.cli.run_writer import writes_into


def add_command(subparsers):
    """Registers ``evaluate`` on ``subparsers``."""
    parser = subparsers.add_parser(
        "evaluate",
        help="nats-per-example evaluation (nelbo, importance-weighted nll, bits/dim, active units)",
        description="Evaluate a trained VAE (a run directory or a .keras file) on a dataset split.",
    )
    add_model_and_data_arguments(parser)
    parser.add_argument("--iw-samples", type=positive_int, default=5000, help="importance samples K (default 5000)")
    parser.add_argument("--batch-size", type=positive_int, default=100)
    parser.add_argument("--chunk-size", type=positive_int, help="importance samples decoded at once")
    parser.add_argument("--max-examples", type=positive_int, help="evaluate only the first N examples of the split")
    parser.add_argument("--refine-steps", type=non_negative_int, default=0,
                        help="also report nll_refined: the proposal refined per example by N Adam steps (e.g. 200)")
    parser.add_argument("--refine-learning-rate", type=positive_float, default=0.01)
    parser.add_argument("--refine-samples", type=positive_int, default=10, help="importance samples per refinement step")
    parser.add_argument("--seed", type=seed, default=0,
                        help="seed of the importance samples (the -ELBO's one draw comes from the model's own seed)")
    parser.add_argument("--out", type=output_path(), metavar="FILE.json", help="also write the result as JSON")
    parser.add_argument("--sample-quality", action="store_true",
                        help="also report frechet_distance, precision and recall of samples against the split "
                             "(in the features of the dataset's own network, trained and cached on first use)")
    parser.add_argument("--sampler", default="prior",
                        help="sampler of --sample-quality: prior (default) or one added by keras-vae fit-sampler")
    parser.add_argument("--quality-samples", type=positive_int, default=1000,
                        help="samples and split images compared by --sample-quality (default 1000)")
    parser.set_defaults(func=run_evaluate)


@writes_into(lambda args: args.out)  # --out into a run directory: that run's lock
def run_evaluate(args):
    check_positive(args, "iw_samples", "batch_size", "chunk_size", "max_examples", "refine_samples", "quality_samples")
    import json

    import keras_vae
    from keras_vae.precision import float32_compute
    from keras_vae.training.data import get_dataset
    from keras_vae.training.evaluate import format_table
    from keras_vae.training.feature_networks import network_name
    from keras_vae.training.run_dir import data_source

    dataset, data_dir, source = data_source(args.model, args.dataset, args.data_dir)
    if dataset is None:
        raise ValueError("--dataset is required when the model is not in a run directory with a config.yaml.")
    if args.sample_quality:
        network_name(dataset)  # an unsupported dataset fails before the slow NLL estimate
    model = keras_vae.load_vae(args.model, compile=False)
    if args.sample_quality:
        model.sampler(args.sampler)
    data = get_dataset(dataset, args.split, data_dir=data_dir, batch_size=args.batch_size,
                       with_labels=bool(model.condition), source_options=source)
    result = {"dataset": dataset, "split": args.split}
    with float32_compute(model):  # a model trained in mixed precision is scored in float32
        _score(model, data, dataset, data_dir, args, result)
    print(format_table(result))
    if args.out:
        from keras_vae.atomic_files import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=2))
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _score(model, data, dataset, data_dir, args, result):
    from keras_vae.training.evaluate import evaluate_model, evaluate_sample_quality

    result.update(evaluate_model(model, data, iw_samples=args.iw_samples, chunk_size=args.chunk_size,
                                 seed=args.seed, max_examples=args.max_examples, refine_steps=args.refine_steps,
                                 refine_learning_rate=args.refine_learning_rate, refine_samples=args.refine_samples))
    if args.sample_quality:
        result.update(evaluate_sample_quality(model, dataset, args.split, data_dir=data_dir, sampler=args.sampler,
                                              num_samples=args.quality_samples, seed=args.seed))
