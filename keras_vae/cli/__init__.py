"""The `keras-vae` command line: one subcommand per module listed in COMMAND_MODULES.

Each module defines ``add_command(subparsers)``, registering one subcommand, and imports TensorFlow only
inside its command function, so ``keras-vae --help`` answers without importing it; `main` imports TensorFlow
once the arguments are parsed, with the command's start-up settings (`keras_vae._startup`). Bad input is reported as
``keras-vae COMMAND: error: ...`` with exit status 2, never a traceback: a flag's value by its argparse type
(`keras_vae.cli.common`) while parsing, everything else by the command; a run stopped by non-finite losses exits
with 1.

Example:

    keras-vae train --config configs/sprites_quick.yaml
    python -m keras_vae.cli evaluate runs/sprites --iw-samples 100

>>> main(["train", "--set", "epoch=3"])          # prints: keras-vae train: error: Unknown config key 'epoch' ...
2
"""

import argparse
import errno
import importlib
import os
import sys

COMMAND_MODULES = (
    "keras_vae.cli.train",
    "keras_vae.cli.evaluate",
    "keras_vae.cli.plot",
    "keras_vae.cli.score",
    "keras_vae.cli.export",
    "keras_vae.cli.serve",
    "keras_vae.cli.sample",
    "keras_vae.cli.studio",
    "keras_vae.cli.fit_sampler",
    "keras_vae.cli.configs",
    "keras_vae.cli.variants",
)
def build_parser():
    """The argument parser with every subcommand registered."""
    from keras_vae import __version__

    parser = argparse.ArgumentParser(
        prog="keras-vae", description="Train, evaluate, export and serve variational autoencoders (Keras 3 + TFP)."
    )
    parser.add_argument("--version", action="version", version=f"keras-vae {__version__}")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--verbose", dest="tensorflow_logs", action="store_true",
                        help="show TensorFlow's start-up and C++ log lines (hidden by default)")
    parser.set_defaults(uses_tensorflow=True)  # commands that only read files set it False
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:  # imported here, when the parser is built, not when keras_vae.cli is
        importlib.import_module(name).add_command(subparsers)
    return parser


def error_message(err):
    """The one-line message of a user error, naming the file of an OSError that carries one."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        target = err.filename if err.filename2 is None else f"{err.filename} -> {err.filename2}"
        return f"{err.strerror}: {target!r}"
    return str(err) or type(err).__name__


def _is_user_error(err):
    """Bad input or environment the user can fix: bad values, missing or unwritable files, malformed YAML."""
    yaml = sys.modules.get("yaml")
    return isinstance(err, (ValueError, OSError)) or (yaml is not None and isinstance(err, yaml.YAMLError))


def _is_divergence(err):
    from keras_vae.model import NonFiniteLossError

    return isinstance(err, NonFiniteLossError)


def main(argv=None):
    """Runs ``keras-vae`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    from keras_vae import progress
    from keras_vae._startup import start_tensorflow

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, or an argument error argparse has already printed
        return done.code
    progress.set_quiet(args.quiet)
    if args.uses_tensorflow:  # after parsing: --help and argument errors answer without TensorFlow
        start_tensorflow()
    try:
        return args.func(args) or 0
    except Exception as err:
        if not (_is_user_error(err) or _is_divergence(err)):
            raise
        print(f"keras-vae {args.command}: error: {error_message(err)}", file=sys.stderr)
        status = 1 if _is_divergence(err) else 2
        if isinstance(err, OSError) and err.errno == errno.ENOSPC and argv is None:  # the command, not a caller
            # Every file of the run is already safe on disk; HDF5's exit-time flush of a write that hit the full
            # disk can crash the interpreter, so the command leaves without that teardown.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
        return status
