"""The lock and clean-up of a subcommand that writes into a run directory (see `keras_vae.run_lock`).

`writes_into` wraps a command's function: when the path it writes (or reads, for ``export``) is a run
directory or a file in one, the command holds that run's lock while it runs, so a second writer fails at
once naming the first; first it removes what writers killed mid-write left there
(`keras_vae.training.backup.remove_leftovers`). Outside a run only the written file's own abandoned temp
files are removed, and nothing is locked. ``export`` locks the run it reads (``reads_only``).

Example:

>>> @writes_into(lambda args: args.out)           # None: the command writes nothing there, no lock
... def run_evaluate(args):
...     ...
"""

import functools


def writes_into(target, reads_only=False):
    """Decorates ``run(args)``: holds the lock of the run ``target(args)`` is in and removes leftovers there.

    ``reads_only``: the command reads that run (``export``): it is locked so that no writer changes it
    meanwhile, but nothing is removed, and a run this process cannot write is read without the lock.
    """

    def decorate(run):
        @functools.wraps(run)
        def wrapped(args):
            path = target(args)
            if path is None:
                return run(args)
            from keras_vae.run_lock import lock_of
            from keras_vae.training.backup import remove_leftovers

            with lock_of(path, optional=reads_only):
                if not reads_only:
                    remove_leftovers(path)
                return run(args)

        return wrapped

    return decorate
