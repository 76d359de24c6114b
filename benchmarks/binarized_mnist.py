"""Quality benchmark: train on statically binarized MNIST (train split, validating on valid), then report
the valid NLL in nats estimated with K=5000 importance samples (Burda et al. 2015).

Published test NLLs on this dataset are in ../shared/NOTES.md (e.g. MLP VAE 89.9, IWAE 87.1,
VampPrior 85.57). This script reports on `valid` (the test split is kept back).

    python benchmarks/binarized_mnist.py                                  # configs/binarized_mnist_mlp.yaml
    python benchmarks/binarized_mnist.py --minutes 20 --eval-examples 2000
    python benchmarks/binarized_mnist.py --config my.yaml --set latent_dim=50 --epochs 100
    python benchmarks/binarized_mnist.py --evaluate-run runs/binarized_mnist_mlp   # no training: evaluate a run
    python benchmarks/binarized_mnist.py --evaluate-run RUN --refine-steps 200    # also the refined-proposal NLL

It evaluates the run's best checkpoint on validation ELBO (``--checkpoint final``: the last weights).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from bench_common import RESULTS_DIR, machine, write_result  # noqa: E402
from keras_vae.training.config import load_config, parse_assignment  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=os.path.join(ROOT, "configs", "binarized_mnist_mlp.yaml"))
    parser.add_argument("--data-dir", default=os.path.join(ROOT, "..", "shared", "data"))
    parser.add_argument("--epochs", type=int, help="maximum epochs (default: the config's)")
    parser.add_argument("--minutes", type=float, help="training time budget (default: the config's)")
    parser.add_argument("--iw-samples", type=int, default=5000)
    parser.add_argument("--refine-steps", type=int, default=0,
                        help="also report valid_nll_refined: the proposal refined per example (keras_vae.refine_posterior)")
    parser.add_argument("--eval-examples", type=int, help="evaluate the first N valid images (default: all 10,000)")
    parser.add_argument("--run-dir", help="run directory (default: the config's)")
    parser.add_argument("--evaluate-run", metavar="RUN_DIR", help="skip training: evaluate this finished run")
    parser.add_argument("--checkpoint", choices=("best", "final"), default="best",
                        help="evaluate best.keras (best validation ELBO, the default) or the final model")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default=os.path.join(RESULTS_DIR, "binarized_mnist.json"))
    args = parser.parse_args(argv)

    import json

    from keras_vae.training.data import get_dataset
    from keras_vae.training.evaluate import evaluate_model, format_table

    if args.evaluate_run:
        config = load_config(os.path.join(args.evaluate_run, "config.yaml"))
        metrics_path = os.path.join(args.evaluate_run, "metrics.json")
        if os.path.isfile(metrics_path):
            with open(metrics_path) as f:
                metrics = json.load(f)
            train_seconds = metrics["train_seconds_this_session"]
        else:  # a run stopped by hand before it finished: its per-epoch history is all there is
            from keras_vae.training.run_dir import best_of, read_history

            history = read_history(os.path.join(args.evaluate_run, "history.csv"))
            if not history:
                raise SystemExit(f"{args.evaluate_run}: neither metrics.json nor history.csv; is it a run directory?")
            metrics = {"epochs": len(history), "best_val_elbo": best_of(history)[0]}  # as train() writes it
            train_seconds = None
    else:
        from keras_vae.training.train import train

        overrides = dict(parse_assignment(a) for a in args.assignments)
        overrides.update({"dataset": "binarized_mnist", "data_dir": args.data_dir, "eval_iw_samples": 0})
        for key, value in (("epochs", args.epochs), ("max_train_minutes", args.minutes), ("run_dir", args.run_dir)):
            if value is not None:
                overrides[key] = value
        config = load_config(args.config, overrides)
        start = time.monotonic()
        _, metrics = train(config)
        train_seconds = time.monotonic() - start

    import keras_vae

    run_dir = args.evaluate_run or config.resolved_run_dir()
    # Selecting the checkpoint on validation ELBO is early stopping; the NLL is a separate, tighter estimate.
    model = keras_vae.load_vae(os.path.join(run_dir, "best.keras" if args.checkpoint == "best" else "model.keras"),
                               compile=False)
    valid = get_dataset("binarized_mnist", "valid", data_dir=config.data_dir, batch_size=100)
    start = time.monotonic()
    evaluation = evaluate_model(model, valid, iw_samples=args.iw_samples, max_examples=args.eval_examples,
                                seed=config.seed, refine_steps=args.refine_steps)
    eval_seconds = time.monotonic() - start

    result = {
        "benchmark": "binarized_mnist",
        "split": "valid",
        "eval_examples": evaluation["num_examples"],
        "valid_nll": evaluation["nll"],
        "valid_nelbo": evaluation["nelbo"],
        "valid_nll_refined": evaluation["nll_refined"],
        "evaluation": evaluation,
        "checkpoint": args.checkpoint,
        "epochs_trained": metrics["epochs"],
        "best_val_elbo_during_training": metrics["best_val_elbo"],
        "train_seconds": None if train_seconds is None else round(train_seconds, 1),
        "eval_seconds": round(eval_seconds, 1),
        "config": config.to_dict(),
        "machine": machine(),
    }
    print(format_table(evaluation))
    train_time = "unknown (stopped run)" if train_seconds is None else f"{train_seconds / 60:.1f} min"
    print(f"\n| dataset | split | model | epochs | train time | K | examples | NLL (nats) | -ELBO (nats) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| binarized MNIST | valid | {config.model} | {metrics['epochs']} | {train_time} | {args.iw_samples} | "
          f"{evaluation['num_examples']} | {evaluation['nll']:.2f} | {evaluation['nelbo']:.2f} |")
    if args.refine_steps:
        print(f"NLL with the proposal refined per example ({args.refine_steps} steps): {evaluation['nll_refined']:.2f}")
    write_result(args.out, result)


if __name__ == "__main__":
    main()
