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
    """``config.model`` plus what its variant's declaration (`keras_vae.names.Variant`) takes from the dataset
    when the config leaves it out: a conditional model's label size (``num_classes`` or ``label_dim``) and options
    such as beta-TCVAE's ``dataset_size``."""
    from keras_vae import names

    model = dict(config.model)
    spec = names.get_variant(config.variant)
    if spec.needs_condition and info.class_names is not None and len(info.class_names) < 2:
        raise ValueError(f"variant {config.variant!r} needs at least 2 classes; dataset {config.dataset!r} has one "
                         f"class sub-folder ({info.class_names[0]!r}). Add a sub-folder per class, or train an "
                         "unconditional variant.")
    if spec.needs_condition and "num_classes" not in model and "label_dim" not in model:
        if info.label_kind == "class":
            model["num_classes"] = info.num_classes
        elif info.label_kind == "factors":
            model["label_dim"] = len(info.factor_names)
    facts = {"train_size": info.split_sizes["train"]}
    for option, fact in spec.from_dataset.items():
        model.setdefault(option, facts[fact])
    model.setdefault("likelihood", default_likelihood(info)[0])
    return model


def default_likelihood(info):
    """``(likelihood, reason)`` for a model section without ``likelihood`` (a folder or tfds: dataset): gaussian
    for colour images, bernoulli for grey ones."""
    channels = info.image_shape[-1]
    if channels == 3:
        return "gaussian", "the images are colour (3 channels)"
    return "bernoulli", f"the images are grey ({channels} channel)"


def likelihood_note(config):
    """The line a run prints when it chooses the likelihood itself (the model section leaves it out), else None."""
    if "likelihood" in config.model:
        return None
    from keras_vae.training.data import dataset_info, source_options_of

    likelihood, reason = default_likelihood(dataset_info(config.dataset, config.data_dir, source_options_of(config)))
    return f"likelihood {likelihood}: {reason} (set model.likelihood to choose)"


def resolve_config(config):
    """A copy of ``config`` with the dataset's image shape and model options filled in (as config.yaml records).

    Raises ValueError when a given ``image_shape`` does not match the dataset's.
    """
    from keras_vae.training.data import dataset_info, source_options_of

    info = dataset_info(config.dataset, config.data_dir, source_options_of(config))
    config = dataclasses.replace(config, model=dataset_model_options(config, info))
    if config.image_shape is None:
        config.image_shape = list(info.image_shape)
    elif tuple(config.image_shape) != tuple(info.image_shape):
        raise ValueError(f"image_shape {config.image_shape} does not match dataset {config.dataset!r} "
                         f"({list(info.image_shape)}).")
    return config


def build_model(config):
    """The uncompiled model of ``config`` (call inside the strategy scope): `resolve_config`, then
    `build_resolved_model`."""
    return build_resolved_model(resolve_config(config))


def build_resolved_model(config):
    """`keras_vae.build_vae` with a resolved config's ``model`` section; the model's seed defaults to the run's.

    Raises ValueError naming the model option a constructor refused.
    """
    import keras_vae

    options = {"seed": config.seed, **config.model}
    latent_dim = options.pop("latent_dim")
    try:
        return keras_vae.build_vae(tuple(config.image_shape), latent_dim, **options)
    except TypeError as err:  # an option reaches a constructor that does not take it
        raise ValueError(f"Invalid option in the model section {config.model}: {err}") from err


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
    from keras_vae.training.data import dataset_info, source_options_of

    train_size = dataset_info(config.dataset, config.data_dir, source_options_of(config)).split_sizes["train"]
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
