"""Progress bars for long work (evaluation, refinement, scoring, calibration, metrics), on a terminal only.

A bar shows on an interactive terminal (stdout is a TTY) and stays silent when output goes to a file or a
pipe, or after `set_quiet` (the CLI's ``--quiet``). It is `keras.utils.Progbar`, so it shows the ETA.

Example:

>>> bar = progress_bar(len(batches), "evaluating")
>>> for batch in batches:
...     work(batch)
...     bar.add(1)
"""

import sys

_quiet = False


def set_quiet(quiet=True):
    """Silences (or restores) every progress bar of this process."""
    global _quiet
    _quiet = bool(quiet)


def enabled():
    """Whether bars show: not quieted, and stdout is an interactive terminal."""
    return not _quiet and hasattr(sys.stdout, "isatty") and sys.stdout.isatty()


class _Silent:
    def add(self, n, values=None):
        pass

    def update(self, current, values=None, finalize=None):
        pass


def progress_bar(total, unit="step", show=None):
    """A `keras.utils.Progbar` over ``total`` (None: unknown) steps named ``unit``, or a silent stand-in.

    ``show``: force the bar on or off; by default `enabled()` decides.
    """
    if not (enabled() if show is None else show):
        return _Silent()
    import keras

    return keras.utils.Progbar(total, unit_name=unit)
