"""Arguments, argparse value types and checks shared by the subcommands.

Every numeric flag takes one of the value types below as ``type=``, so a bad value is refused while the
arguments are parsed, as argparse's one-line ``error: argument --columns: must be >= 1, got 0`` with exit
status 2, before TensorFlow loads or any work starts.

Example:

>>> parser = subparsers.add_parser("evaluate")
>>> add_model_and_data_arguments(parser)       # RUN_DIR_OR_MODEL, --dataset, --data-dir, --split
>>> parser.add_argument("--batch-size", type=positive_int, default=100)
>>> parser.add_argument("--seed", type=seed, default=0)
>>> parser.add_argument("--out", type=output_path((".png", ".jpg")))
"""

import argparse
import math
import os

from keras_vae.names import MAX_SEED, SEED_RANGE

MAX_PORT = 65535
# The image files `keras-vae sample` writes (through Pillow, chosen by the extension).
IMAGE_FORMATS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tiff", ".webp")


def add_model_and_data_arguments(parser, split_help=None):
    """Adds the model path (a run directory or a .keras file) and ``--dataset``, ``--data-dir``, ``--split``."""
    parser.add_argument("model", metavar="RUN_DIR_OR_MODEL", help="run directory (uses model.keras) or .keras file")
    parser.add_argument("--dataset", help="dataset name (default: the run's dataset)")
    parser.add_argument("--data-dir", help="folder with canonical files or a tfds data directory")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"), help=split_help)


def check_positive(args, *names):
    """Raises ValueError naming the flag of the first of ``names`` that is given and below 1."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def _named(function, name):
    function.__name__ = function.__qualname__ = name  # argparse names the type in some messages
    return function


def int_range(low=None, high=None, name="integer", why=""):
    """An argparse type: an integer in ``[low, high]`` (either bound may be None).

    >>> int_range(1, 1024)("2000")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be an integer from 1 to 1024, got 2000
    """

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            if high is None:
                bound = f">= {low}"
            elif low is None:
                bound = f"<= {high}"
            else:
                bound = f"an integer from {low} to {high}"
            raise argparse.ArgumentTypeError(f"must be {bound}{why}, got {value}")
        return value

    return _named(parse, name)


def int_choice(*choices, name="int_choice"):
    """An argparse type: an integer that is one of ``choices``.

    >>> int_choice(1, 3)("2")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be one of 1, 3, got 2
    """
    any_int = int_range()

    def parse(text):
        value = any_int(text)
        if value not in choices:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(map(str, choices))}, got {value}")
        return value

    return _named(parse, name)


positive_int = int_range(1, name="positive_int")
non_negative_int = int_range(0, name="non_negative_int")
seed = int_range(0, MAX_SEED, name="seed", why=f" ({SEED_RANGE})")
port = int_range(0, MAX_PORT, name="port", why=" (0: any free port)")


def finite_float(low=None, high=None, low_open=False, high_open=False, name="finite_float"):
    """An argparse type: a finite number in the range the bounds give (open ends with ``low_open``/``high_open``).

    >>> finite_float(0, low_open=True)("nan")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be a finite number, got 'nan'
    """

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            parts = []
            if low is not None:
                parts.append(f"{'>' if low_open else '>='} {low:g}")
            if high is not None:
                parts.append(f"{'<' if high_open else '<='} {high:g}")
            raise argparse.ArgumentTypeError(f"must be {' and '.join(parts)}, got {text}")
        return value

    return _named(parse, name)


any_float = finite_float(name="any_float")
positive_float = finite_float(0, low_open=True, name="positive_float")
fraction = finite_float(0, 1, low_open=True, high_open=True, name="fraction")


def host(text):
    """An argparse type: an IP address, or a host name this machine resolves (``localhost``, ``0.0.0.0``...)."""
    import ipaddress  # here: the parser is built without them
    import socket

    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    try:
        socket.getaddrinfo(text, None)
    except (OSError, UnicodeError) as err:  # socket.gaierror is an OSError
        reason = getattr(err, "strerror", None) or str(err)
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an IP address or a host name this machine resolves ({reason})") from None
    return text


def _writable_folder(path, create):
    """The reason the folder of the file ``path`` cannot take it, or None."""
    folder = os.path.dirname(os.path.abspath(path))
    if not create and not os.path.isdir(folder):
        return f"its folder {folder!r} does not exist"
    while not os.path.exists(folder):  # a folder the command creates: its nearest existing parent must take it
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        return f"{folder!r} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder!r} is not writable"
    return None


def output_path(extensions=None, create_folder=False):
    """An argparse type: a file path to write, ending in one of ``extensions`` (any when None), in a writable folder.

    With ``create_folder`` the folder may be missing (the command creates it) when an existing parent is writable.

    >>> output_path((".csv", ".json"))("scores.xyz")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: 'scores.xyz' must end in one of .csv, .json
    """

    def parse(text):
        if extensions is not None and os.path.splitext(text)[1].lower() not in extensions:
            raise argparse.ArgumentTypeError(f"{text!r} must end in one of {', '.join(extensions)}")
        if os.path.isdir(text):
            raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file name")
        problem = _writable_folder(text, create_folder)
        if problem:
            raise argparse.ArgumentTypeError(f"cannot write {text!r}: {problem}")
        return text

    return _named(parse, "output_path")
