"""`keras-vae variants`: the model variants (`keras_vae.names.VARIANTS`), each with its own options.

Example:

    keras-vae variants
    keras-vae train --variant beta_vae --set model.beta=4
"""


def add_command(subparsers):
    """Registers ``variants`` on ``subparsers``."""
    parser = subparsers.add_parser(
        "variants", help="list the model variants and their options",
        description="The model variants build_vae and `train --variant` take, with the options of each beyond those "
                    "every variant takes (keras_vae.names.COMMON_OPTIONS) and the network's.")
    parser.set_defaults(func=run_variants, uses_tensorflow=False)


def run_variants(args):
    from keras_vae import names

    rows = names.variant_table()
    width = max(len(name) for name, _, _ in rows)
    for name, description, options in rows:
        print(f"{name:<{width}}  {description}")
        if options:
            print(f"{'':<{width}}  options: {', '.join(options)}")
    return 0
