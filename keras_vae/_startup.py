"""Quiet start-up for the ``keras-vae`` command: TensorFlow's C++ start-up lines are hidden unless ``--verbose``.

TensorFlow prints them (CUDA probing, CPU features, absl's pre-initialization notice) while it is imported,
and importing this package imports it; so the command line is recognized here, before that import.
Python warnings still show.
"""

import contextlib
import os
import sys
import tempfile

COMMAND = "keras-vae"


def running_the_command_line(argv=None):
    """True in ``keras-vae ...`` and ``python -m keras_vae[.cli] ...`` (argv[0] is ``-m`` while it is located)."""
    argv = sys.argv if argv is None else argv
    return bool(argv) and (os.path.basename(argv[0]) == COMMAND or argv[0] == "-m")


@contextlib.contextmanager
def quiet_tensorflow_startup(argv=None):
    """Inside ``keras-vae`` without ``--verbose``: TF_CPP_MIN_LOG_LEVEL=3 and stderr (fd 2) held back while
    TensorFlow is imported. Elsewhere (a user's program, tests) nothing changes."""
    argv = sys.argv if argv is None else argv
    if not running_the_command_line(argv) or "--verbose" in argv or "-v" in argv[1:2]:
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
