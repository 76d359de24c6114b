"""Building a run's model and optimizer from its `TrainConfig`.

Example:

>>> config = resolve_config(load_config("configs/sprites_quick.yaml"))   # image shape, dataset options filled in
>>> model = build_model(config)                                           # inside the strategy scope
>>> model.compile(optimizer=make_optimizer(config))
"""

import dataclasses
import math
import os

# names.OPTIMIZERS -> class name; "adam" is Keras' Adam with fused per-variable updates (`keras_vae.FusedAdam`)
OPTIMIZER_CLASSES = {"adam": "FusedAdam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop"}


def dataset_model_options(config, info):
    """``config.model_options`` plus what the variant needs and the dataset tells: a conditional model's
    label size (``num_classes`` or ``label_dim``) and beta-TCVAE's ``dataset_size``."""
    options = dict(config.model_options)
    if config.variant == "cvae" and "num_classes" not in options and "label_dim" not in options:
        if info.label_kind == "class":
            options["num_classes"] = info.num_classes
        elif info.label_kind == "factors":
            options["label_dim"] = len(info.factor_names)
    if config.variant == "beta_tcvae":
        options.setdefault("dataset_size", info.split_sizes["train"])
    return options


def resolve_config(config):
    """A copy of ``config`` with the dataset's image shape and model options filled in (as config.yaml records).

    Raises ValueError when a given ``image_shape`` does not match the dataset's.
    """
    from keras_vae.training.data import dataset_info

    info = dataset_info(config.dataset, config.data_dir)
    config = dataclasses.replace(config, model_options=dataset_model_options(config, info))
    if config.image_shape is None:
        config.image_shape = list(info.image_shape)
    elif tuple(config.image_shape) != tuple(info.image_shape):
        raise ValueError(f"image_shape {config.image_shape} does not match dataset {config.dataset!r} "
                         f"({list(info.image_shape)}).")
    return config


def _prior(config):
    """The prior to build: its name, or with ``prior_options`` the prior layer built from them."""
    import keras_vae

    if not config.prior_options:
        return config.prior
    try:
        return keras_vae.priors.PRIORS[config.prior](**config.prior_options)
    except (TypeError, ValueError) as err:  # Keras layers reject unknown keywords with a ValueError
        raise ValueError(f"Invalid prior option in prior_options {config.prior_options}: {err}") from err


def build_model(config):
    """The uncompiled model of ``config`` via `keras_vae.build_vae` (call inside the strategy scope).

    The image shape and the variant's dataset-given options come from the dataset when the config
    leaves them out (see `resolve_config`). Raises ValueError naming the option a constructor refused.
    """
    import keras_vae

    config = resolve_config(config)
    options = dict(
        likelihood=config.likelihood,
        variant=config.variant,
        prior=_prior(config),
        beta=config.beta,
        kl_warmup_steps=config.kl_warmup_steps,
        free_bits=config.free_bits,
        seed=config.seed,
        iw_train_samples=config.iw_train_samples,
        **config.model_options,
    )
    try:
        return keras_vae.build_vae(tuple(config.image_shape), config.latent_dim, config.architecture, **options)
    except TypeError as err:  # an unknown option reaches a constructor
        raise ValueError(f"Invalid model option in model_options {config.model_options}: {err}") from err


def make_optimizer(config):
    """The optimizer, wrapped so it skips non-finite steps: `keras_vae.NonFiniteSkipping` (loss scale fixed at 1),
    or under mixed_float16 a dynamic `keras.optimizers.LossScaleOptimizer` (as Keras would set it up itself).
    """
    import keras

    import keras_vae

    ema = {"use_ema": True, "ema_momentum": config.ema_momentum} if config.ema_momentum else {}
    class_name = OPTIMIZER_CLASSES[config.optimizer]
    optimizer_class = getattr(keras_vae, class_name, None) or getattr(keras.optimizers, class_name)
    learning_rate = config.learning_rate
    if config.learning_rate_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, training_steps(config))
    inner = optimizer_class(learning_rate=learning_rate, clipnorm=config.clipnorm, **ema)
    if config.precision == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(inner)
    return keras_vae.NonFiniteSkipping(inner)


def training_steps(config):
    """The optimizer steps of the whole run: ``epochs`` times ``steps_per_epoch``, or the batches of one pass over
    the train split (the last, partial batch included) when ``steps_per_epoch`` is not set."""
    if config.steps_per_epoch:
        return config.epochs * config.steps_per_epoch
    from keras_vae.training.data import dataset_info

    train_size = dataset_info(config.dataset, config.data_dir).split_sizes["train"]
    return config.epochs * math.ceil(train_size / config.batch_size)


def load_initial_weights(model, path):
    """Loads ``init_weights`` (a .keras file, or a run directory's best.keras) into ``model``."""
    path = os.path.join(path, "best.keras") if os.path.isdir(path) else path
    if not os.path.isfile(path):
        raise FileNotFoundError(f"init_weights: no such file {path!r} (give a .keras file or a run directory).")
    try:
        model.load_weights(path)
    except ValueError as err:
        raise ValueError(f"init_weights {path!r} does not fit this model: {err}") from err
