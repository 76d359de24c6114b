"""`keras-vae score`: anomaly scores over a dataset split, flagged above a quantile of training scores.

Example:

    keras-vae score runs/sprites --split test --method iwae --quantile 0.99 --out scores.csv
"""

from keras_vae.cli.common import add_model_and_data_arguments, any_float, fraction, output_path, positive_int, seed
from keras_vae.training.outputs import SCORE_FORMATS


def add_command(subparsers):
    """Registers ``score`` on ``subparsers``."""
    score = subparsers.add_parser(
        "score",
        help="anomaly scores (negative ELBO or importance-weighted NLL) with a threshold from training data",
        description="Score every example of a dataset split; flag those above a quantile of training scores.",
    )
    add_model_and_data_arguments(score, split_help="split to score")
    score.add_argument("--out", required=True, type=output_path(SCORE_FORMATS), metavar="FILE.csv|FILE.json",
                       help="per-example scores")
    score.add_argument("--limit", type=positive_int, help="score only the first N examples of the split")
    score.add_argument("--method", default="elbo", choices=("elbo", "iwae"))
    score.add_argument("--num-samples", type=positive_int,
                       help="posterior / importance samples (default 10 elbo, 100 iwae)")
    score.add_argument("--quantile", type=fraction, default=0.99, help="threshold quantile of training scores")
    score.add_argument("--threshold", type=any_float, help="use this threshold instead of one from training scores")
    score.add_argument("--threshold-split", default="train", choices=("train", "valid", "test"))
    score.add_argument("--threshold-examples", type=positive_int, default=2000,
                       help="training examples scored for the threshold (default 2000)")
    score.add_argument("--batch-size", type=positive_int, default=128)
    score.add_argument("--seed", type=seed, default=0)
    score.set_defaults(func=run_score)


def run_score(args):
    import numpy as np

    import keras_vae
    from keras_vae import anomaly_scores, score_threshold
    from keras_vae.training.data import load_examples
    from keras_vae.training.outputs import write_scores
    from keras_vae.training.run_dir import data_source

    dataset, data_dir, source = data_source(args.model, args.dataset, args.data_dir)
    if dataset is None:
        raise ValueError("--dataset is required when the model is not in a run directory with a config.yaml.")
    model = keras_vae.load_vae(args.model, compile=False)
    conditional = bool(model.condition)
    options = dict(method=args.method, num_samples=args.num_samples, batch_size=args.batch_size, seed=args.seed)

    def scores_of(split, count, shuffle):
        images, labels = load_examples(dataset, split, data_dir=data_dir, count=count, with_labels=conditional,
                                       shuffle=shuffle, seed=args.seed, source_options=source)
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
    write_scores(args.out, scores, flagged, summary)
    where = (f"the {args.quantile} quantile of {summary['threshold_examples']} {args.threshold_split} scores"
             if reference is not None else "given")
    print(f"{dataset}/{args.split}: {len(scores)} examples scored ({args.method}, {num_samples} samples), "
          f"threshold {threshold:.3f} nats ({where}), {int(flagged.sum())} flagged "
          f"({100 * flagged.mean():.2f}%); wrote {args.out}")
    return 0
