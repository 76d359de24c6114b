"""Arguments and checks shared by the subcommands that read a trained model and a dataset split.

Example:

>>> parser = subparsers.add_parser("evaluate")
>>> add_model_and_data_arguments(parser)       # RUN_DIR_OR_MODEL, --dataset, --data-dir, --split
>>> check_positive(args, "batch_size")         # ValueError naming --batch-size when it is below 1
"""


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
