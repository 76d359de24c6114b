"""`keras-vae configs`: the training configs that ship with the package.

Example:

    keras-vae configs                      # names and what each is for
    keras-vae configs sprites_quick        # its YAML
    keras-vae train --config sprites_quick
"""


def add_command(subparsers):
    """Registers ``configs`` on ``subparsers``."""
    parser = subparsers.add_parser(
        "configs", help="list the built-in training configs, or print one",
        description="The training configs that ship with keras-vae; `keras-vae train --config NAME` uses one.")
    parser.add_argument("name", nargs="?", help="print this config's YAML")
    parser.set_defaults(func=run_configs, uses_tensorflow=False)


def run_configs(args):
    from keras_vae import configs

    if args.name is None:
        width = max(len(name) for name in configs.names())
        for name in configs.names():
            print(f"{name:<{width}}  {configs.first_line(name)}")
        return 0
    path = configs.path(args.name)
    if path is None:
        raise ValueError(f"No built-in config {args.name!r}; `keras-vae configs` lists them: "
                         f"{', '.join(configs.names())}.")
    with open(path) as f:
        print(f.read(), end="")
    return 0
