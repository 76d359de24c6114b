"""`keras-vae train`: a training run from a config file, flags and ``--set KEY=VALUE`` overrides.

Example:

    keras-vae train --config sprites_quick --epochs 2 --set model.beta=0.5 --set learning_rate=3e-4
"""

import argparse


_FLAGS = (  # (flag, config key, type, help)
    ("--dataset", "dataset", str, "dataset name (default sprites)"),
    ("--data-dir", "data_dir", str, "folder with canonical files or a tfds data directory"),
    ("--architecture", "architecture", str, "model.architecture: conv or mlp"),
    ("--variant", "variant", str, "model.variant (default vae; `keras-vae variants` lists them)"),
    ("--latent-dim", "latent_dim", int, "model.latent_dim: size of the latent code"),
    ("--epochs", "epochs", int, "number of epochs"),
    ("--steps-per-epoch", "steps_per_epoch", int, "training steps per epoch (default: a full pass)"),
    ("--validation-steps", "validation_steps", int, "validation batches per epoch (default: all)"),
    ("--batch-size", "batch_size", int, "global batch size (split across replicas and workers)"),
    ("--learning-rate", "learning_rate", float, "learning rate"),
    ("--strategy", "strategy", str, "auto, default, one_device, mirrored, multi_worker or tpu"),
    ("--precision", "precision", str, "float32, mixed_bfloat16, mixed_float16 or auto (mixed_bfloat16 on a CPU with AMX or AVX512_BF16)"),
    ("--seed", "seed", int, "seed for initialization, shuffling and noise"),
    ("--run-dir", "run_dir", str, "run directory (default runs/<dataset>)"),
    ("--backup-every-steps", "backup_every_steps", int, "back up every N steps (default: every epoch)"),
    ("--nan-policy", "nan_policy", str, "skip (count and skip non-finite steps) or stop (fail)"),
    ("--eval-iw-samples", "eval_iw_samples", int, "evaluate with K importance samples after training (0: no)"),
)


def add_command(subparsers):
    """Registers ``train`` on ``subparsers``."""
    parser = subparsers.add_parser(
        "train",
        help="train a VAE; resumes an interrupted run in the same run directory",
        description="Train a VAE. Flags override the --config file; --set KEY=VALUE sets any config key.",
    )
    parser.add_argument("--config", help="YAML config file (keys of keras_vae.training.config.TrainConfig)")
    for flag, key, kind, text in _FLAGS:
        parser.add_argument(flag, dest=key, type=kind, default=None, help=text)
    parser.add_argument("--jit-compile", dest="jit_compile", action=argparse.BooleanOptionalAction, default=None,
                        help="XLA-compile the train step")
    parser.add_argument("--dynamic-binarization", dest="dynamic_binarization", default=None,
                        action=argparse.BooleanOptionalAction, help="a fresh Bernoulli draw of grey pixels each epoch")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="set any config key (value parsed as YAML); model.KEY sets a build_vae argument, "
                             "e.g. --set model.hidden_units=[64]")
    parser.set_defaults(func=run_train)


def config_from_args(args):
    """The `TrainConfig` of parsed ``keras-vae train`` arguments: config file, then --set, then flags."""
    from keras_vae.training.config import load_config, parse_assignment

    overrides = dict(parse_assignment(a) for a in args.assignments)
    keys = [key for _, key, _, _ in _FLAGS] + ["jit_compile", "dynamic_binarization"]
    overrides.update({k: getattr(args, k) for k in keys if getattr(args, k) is not None})
    return load_config(args.config, overrides)


def run_train(args):
    from keras_vae.training.train import train

    config = config_from_args(args)
    _, metrics = train(config)  # NonFiniteLossError: main reports it with exit status 1
    if metrics:
        best = metrics["best_val_elbo"]
        print(f"run directory: {config.resolved_run_dir()}  best val ELBO: "
              f"{'n/a' if best is None else f'{best:.3f}'} nats (epoch {metrics['best_epoch']})")
        if "evaluation" in metrics:
            from keras_vae.training.evaluate import format_table

            print(format_table(metrics["evaluation"]))
    return 0
