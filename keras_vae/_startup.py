"""Start-up of the ``keras-vae`` command: TensorFlow imported once, before a command runs, under the command's settings.

- TensorFlow's C++ start-up lines (CUDA probing, CPU features, absl's pre-initialization notice) are hidden
  unless ``--verbose``. Python warnings still show.
- TensorFlow's oneDNN CPU kernels are on (`command_line_cpu_kernels`).

Argument parsing (``keras-vae --help``) happens before, without TensorFlow. A user's own program that imports
the package, or calls `keras_vae.cli.main` itself, is left alone.

Example:

>>> start_tensorflow()       # in keras_vae.cli.main, after parsing, before the command's function
"""

import contextlib
import os
import sys

COMMAND = "keras-vae"
_PACKAGE = os.path.dirname(os.path.abspath(__file__))
# The files ``python -m keras_vae`` and ``python -m keras_vae.cli`` run: sys.argv[0] once they run.
_MAIN_FILES = {os.path.join(_PACKAGE, "__main__.py"), os.path.join(_PACKAGE, "cli", "__main__.py")}


def running_the_command_line(argv=None):
    """True in ``keras-vae ...`` and ``python -m keras_vae[.cli] ...`` (argv[0] is ``-m`` while it is located)."""
    argv = sys.argv if argv is None else argv
    return bool(argv) and (os.path.basename(argv[0]) == COMMAND or argv[0] == "-m"
                           or os.path.abspath(argv[0]) in _MAIN_FILES)


def command_line_cpu_kernels(argv=None):
    """Inside ``keras-vae``: ``TF_ENABLE_ONEDNN_OPTS=1`` unless the environment already sets it.

    TensorFlow turns its oneDNN CPU kernels on by itself only on some x86 CPUs (those with AVX-512 features); on
    others, such as the 2-core AMD EPYC of BENCHMARKS.md, it runs its Eigen kernels, whose gradients of small
    convolutions are slow: the `make train` model's step took 49 ms with oneDNN against 66 to 103 ms without
    (`benchmarks/onednn.py`, BENCHMARKS.md). ``TF_ENABLE_ONEDNN_OPTS=0`` keeps TensorFlow's own choice.
    """
    if running_the_command_line(argv):
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


@contextlib.contextmanager
def quiet_tensorflow_startup(argv=None):
    """Inside ``keras-vae`` without ``--verbose``: TF_CPP_MIN_LOG_LEVEL=3 and stderr (fd 2) held back while
    TensorFlow is imported. Elsewhere (a user's program, tests) nothing changes."""
    argv = sys.argv if argv is None else argv
    if not running_the_command_line(argv) or "--verbose" in argv or "-v" in argv[1:2]:
        yield
        return
    import tempfile  # here: the parser, which imports this module, needs none of it

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


def start_tensorflow(argv=None):
    """Imports TensorFlow with the command's CPU kernels and quiet start-up (both only inside ``keras-vae``).

    Settings TensorFlow reads once, when it is first imported: a later call changes nothing.
    """
    if "tensorflow" in sys.modules:
        return
    command_line_cpu_kernels(argv)
    with quiet_tensorflow_startup(argv):
        import tensorflow  # noqa: F401
