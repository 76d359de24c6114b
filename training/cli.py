"""The `keras-vae` command line: one subcommand per module listed in COMMAND_MODULES.

Each module defines ``add_commands(subparsers)`` and imports TensorFlow only inside its command
functions, so ``keras-vae --help`` stays fast.
"""

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "keras_vae.training.analysis",
    "keras_vae.export.commands",
    "keras_vae.training.train",
    "keras_vae.training.evaluate",
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-vae", description="Train, evaluate, export and serve variational autoencoders (Keras 3 + TFP)."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(subparsers)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, FileNotFoundError) as err:
        # Bad input is the user's to fix: say what is wrong without a traceback.
        print(f"keras-vae {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
