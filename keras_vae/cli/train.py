"""`keras-vae train`: a training run from a config file, flags and ``--set KEY=VALUE`` overrides.

Example:

    keras-vae train --config sprites_quick --epochs 2 --set model.beta=0.5 --set learning_rate=3e-4
"""

import argparse

from keras_vae.cli.common import fraction, int_choice, non_negative_int, positive_float, positive_int, seed

_FLAGS = (  # (flag, config key, type, help)
    ("--dataset", "dataset", str, "a dataset name (default sprites), a folder of images (sub-folders: classes), "
     "or tfds:NAME[/CONFIG][:SPLIT]"),
    ("--data-dir", "data_dir", str, "folder with canonical files or a tfds data directory"),
    ("--image-size", "image_size", str, "H or HxW: resize a folder's or tfds: dataset's images (default: their size)"),
    ("--channels", "channels", int_choice(1, 3), "1 or 3 (default: from the images)"),
    ("--resize", "resize", str, "crop (default: centre crop to the aspect ratio), pad or stretch"),
    ("--valid-fraction", "valid_fraction", fraction, "share of the images held out for validation (default 0.1)"),
    ("--cache", "cache_dir", str, "cache the decoded images of a folder in this folder (tf.data on-disk cache)"),
    ("--image-key", "image_key", str, "the image feature of a tfds: dataset (default: found)"),
    ("--architecture", "architecture", str, "model.architecture: conv or mlp"),
    ("--variant", "variant", str, "model.variant (default vae; `keras-vae variants` lists them)"),
    ("--latent-dim", "latent_dim", positive_int, "model.latent_dim: size of the latent code"),
    ("--epochs", "epochs", positive_int, "number of epochs"),
    ("--steps-per-epoch", "steps_per_epoch", positive_int, "training steps per epoch (default: a full pass)"),
    ("--validation-steps", "validation_steps", positive_int, "validation batches per epoch (default: all)"),
    ("--batch-size", "batch_size", positive_int, "global batch size (split across replicas and workers)"),
    ("--learning-rate", "learning_rate", positive_float, "learning rate"),
    ("--strategy", "strategy", str, "auto, default, one_device, mirrored, multi_worker or tpu"),
    ("--precision", "precision", str, "float32, mixed_bfloat16, mixed_float16 or auto (mixed_bfloat16 on a CPU with AMX or AVX512_BF16)"),
    ("--seed", "seed", seed, "seed for initialization, shuffling and noise"),
    ("--run-dir", "run_dir", str, "run directory (default runs/<dataset>: a folder's name, a tfds: NAME)"),
    ("--backup-every-steps", "backup_every_steps", positive_int, "back up every N steps (default: every epoch)"),
    ("--nan-policy", "nan_policy", str, "skip (count and skip non-finite steps) or stop (fail)"),
    ("--eval-iw-samples", "eval_iw_samples", non_negative_int, "evaluate with K importance samples after training (0: no)"),
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
    parser.add_argument("--skip-bad-images", dest="skip_bad_images", default=None,
                        action=argparse.BooleanOptionalAction, help="skip and count unreadable images of a folder")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="set any config key (value parsed as YAML); model.KEY sets a build_vae argument, "
                             "e.g. --set model.hidden_units=[64]")
    parser.set_defaults(func=run_train)


def config_from_args(args):
    """The `TrainConfig` of parsed ``keras-vae train`` arguments: config file, then --set, then flags."""
    from keras_vae.training.config import load_config, parse_assignment

    overrides = dict(parse_assignment(a) for a in args.assignments)
    keys = [key for _, key, _, _ in _FLAGS] + ["jit_compile", "dynamic_binarization", "skip_bad_images"]
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
