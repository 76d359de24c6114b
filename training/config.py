"""The training configuration: a dataclass loaded from YAML and command-line overrides, validated on load.

Example:

>>> config = load_config("configs/sprites_quick.yaml", overrides={"epochs": 2, "seed": 1})
>>> config.dataset, config.batch_size
('sprites', 64)
>>> print(config_text(config))          # what keras_vae.training.run_dir.save_config writes
"""

import dataclasses
import difflib
import math
import os
import re
import typing

import yaml

from keras_vae import names as model_names
from keras_vae.run_config import MODEL_DEFAULTS, MODEL_SECTION, is_legacy, read_config_file, upgrade_config
from keras_vae.training import names

# Types of the model section's own keys (build_vae checks the rest: network, part and variant options).
MODEL_KEY_TYPES = {"architecture": str, "latent_dim": int, "likelihood": str, "variant": str, "beta": float,
                   "kl_warmup_steps": int, "free_bits": float, "iw_train_samples": int, "prior_options": dict,
                   "seed": int}


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs; `config.yaml` in a run directory is this, resolved.

    ``model`` holds the keyword arguments of `keras_vae.build_vae` (``architecture``, ``latent_dim``,
    ``likelihood``, ``variant``, the parts and every option), passed straight through; the model's ``seed``
    defaults to the run's. The other fields are the data, the optimization, the run and its evaluation.
    """

    # data: a name of data.DATASETS, tfds:NAME[/CONFIG][:SPLIT], or a folder of images
    dataset: str = "sprites"
    data_dir: typing.Optional[str] = None
    dynamic_binarization: bool = False
    # a folder's or a tfds: dataset's source options (keras_vae.training.image_folder; null: from the images)
    image_size: typing.Optional[list] = None  # [height, width]; H or "HxW" accepted
    channels: typing.Optional[int] = None  # 1 or 3
    resize: str = "crop"  # crop (centre crop to the aspect ratio, then resize), pad or stretch
    valid_fraction: float = 0.1  # of a folder's files (a fixed hash split), or of a tfds train split
    cache_dir: typing.Optional[str] = None  # an on-disk tf.data cache of the decoded images (folders)
    image_key: typing.Optional[str] = None  # the image feature of a tfds: dataset (default: found)
    skip_bad_images: bool = False  # skip and count unreadable images of a folder instead of failing
    image_shape: typing.Optional[list] = None  # filled in from the dataset; checked when given
    # model: keras_vae.build_vae's keyword arguments (the image shape comes from the dataset)
    # (likelihood: from the images' channels for a folder or tfds: dataset, see build.default_likelihood)
    model: dict = dataclasses.field(default_factory=lambda: {k: v for k, v in MODEL_DEFAULTS.items()
                                                             if k != "likelihood"})
    # optimization
    epochs: int = 10
    max_train_minutes: typing.Optional[float] = None  # stop after the epoch that passes this wall time
    steps_per_epoch: typing.Optional[int] = None  # None: one pass over the train split
    validation_steps: typing.Optional[int] = None  # None: the whole valid split
    batch_size: int = 64  # global: split across replicas and workers
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    # constant, or cosine: from learning_rate down to 0 over the run's epochs * steps_per_epoch steps
    # (keras.optimizers.schedules.CosineDecay; a resumed run continues it from the optimizer's step count)
    learning_rate_schedule: str = "constant"
    clipnorm: typing.Optional[float] = None
    init_weights: typing.Optional[str] = None  # start from these weights: a .keras file or a run directory's best
    # Keep an exponential moving average of the weights (the optimizer's use_ema) with this momentum, e.g. 0.999;
    # validation, best.keras and the final model then use the averaged weights (None: no average)
    ema_momentum: typing.Optional[float] = None
    # keras.callbacks.ReduceLROnPlateau on the bound being trained (val_elbo; val_loss when iw_train_samples > 1):
    # multiply the learning rate by reduce_lr_factor after reduce_lr_patience epochs without improvement
    # (None: constant learning rate)
    reduce_lr_patience: typing.Optional[int] = None
    reduce_lr_factor: float = 0.5
    seed: int = 0
    # distribution and speed
    strategy: str = "auto"
    precision: str = "float32"
    jit_compile: bool = False
    steps_per_execution: int = 1
    # run directory, fault tolerance, logging
    run_dir: typing.Optional[str] = None  # default runs/<dataset>
    backup_every_steps: typing.Optional[int] = None  # None: back up at the end of every epoch
    nan_policy: str = "skip"
    max_nonfinite_steps: int = 100
    image_grid_size: int = 36  # samples and reconstructions logged per epoch
    verbose: int = 1
    # evaluation at the end of training (iw_samples 0 skips it)
    eval_split: str = "valid"
    eval_iw_samples: int = 0
    eval_max_examples: typing.Optional[int] = None
    eval_batch_size: int = 100
    # fit an ex-post sampler (gmm, two_stage; keras_vae.samplers) to fit_sampler_examples training codes at the
    # end, before model.keras is saved: model.sample(n, sampler="gmm") (null: none)
    fit_sampler: typing.Optional[str] = None
    fit_sampler_examples: int = 10_000
    fit_sampler_options: dict = dataclasses.field(default_factory=dict)  # e.g. {num_components: 50} for gmm
    # score this many samples against as many eval_split images at the end (Fréchet distance, precision,
    # recall in the dataset's feature network; keras_vae.training.feature_networks), with the prior and with
    # fit_sampler (0: skip)
    eval_sample_quality: int = 0

    def __post_init__(self):
        self._validate()

    # ------------------------------------------------------------------------------------------
    def _validate(self):
        if self.image_size is not None:
            self.image_size = names.parse_image_size(self.image_size)
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            setattr(self, field.name, _coerce(field.name, getattr(self, field.name), hints[field.name]))
        self._check_model()
        choices = {
            "strategy": names.STRATEGIES,
            "precision": names.PRECISIONS, "nan_policy": names.NAN_POLICIES, "optimizer": names.OPTIMIZERS,
            "eval_split": names.SPLITS, "learning_rate_schedule": names.LEARNING_RATE_SCHEDULES,
        }
        for key, values in choices.items():
            model_names.check_choice(key, getattr(self, key), values)
        if self.fit_sampler is not None:
            model_names.check_choice("fit_sampler", self.fit_sampler, model_names.SAMPLERS)
        self._check_sampler_options()
        self._check_source()
        if self.eval_sample_quality:
            try:
                names.feature_network_name(self.dataset)
            except ValueError as err:
                raise ValueError(f"eval_sample_quality: {err}") from None
        for name in ("epochs", "batch_size", "steps_per_execution", "image_grid_size", "eval_batch_size",
                     "fit_sampler_examples"):
            _at_least(name, getattr(self, name), 1)
        for name in ("steps_per_epoch", "validation_steps", "backup_every_steps", "eval_max_examples",
                     "reduce_lr_patience"):
            if getattr(self, name) is not None:
                _at_least(name, getattr(self, name), 1)
        for name in ("eval_iw_samples", "max_nonfinite_steps", "eval_sample_quality"):
            _at_least(name, getattr(self, name), 0)
        _check_seed("seed", self.seed)
        if self.verbose not in (0, 1, 2):  # Keras' fit verbosity
            raise ValueError(f"verbose must be 0, 1 or 2, got {self.verbose}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}.")
        if self.learning_rate_schedule != "constant" and self.reduce_lr_patience is not None:
            raise ValueError(f"learning_rate_schedule {self.learning_rate_schedule!r} and reduce_lr_patience both set "
                             "the learning rate: use one of them.")
        if not 0 < self.reduce_lr_factor < 1:
            raise ValueError(f"reduce_lr_factor must be in (0, 1), got {self.reduce_lr_factor}.")
        if self.max_train_minutes is not None and not self.max_train_minutes > 0:
            raise ValueError(f"max_train_minutes must be > 0 (or null), got {self.max_train_minutes}.")
        if self.ema_momentum is not None and not 0 < self.ema_momentum < 1:
            raise ValueError(f"ema_momentum must be in (0, 1) (or null), got {self.ema_momentum}.")
        if self.clipnorm is not None and not self.clipnorm > 0:
            raise ValueError(f"clipnorm must be > 0 (or null), got {self.clipnorm}.")
        if self.image_shape is not None:
            if len(self.image_shape) != 3 or not all(isinstance(d, int) and d > 0 for d in self.image_shape):
                raise ValueError(f"image_shape must be [height, width, channels], got {self.image_shape}.")
        if self.data_dir is not None:
            self.data_dir = os.path.expanduser(self.data_dir)
        if self.init_weights is not None:
            self.init_weights = os.path.expanduser(self.init_weights)

    def _check_source(self):
        """The dataset (a name, tfds:, or an existing folder) and the source options it takes."""
        from keras_vae.training.data import check_source, source_options_of

        model_names.check_choice("resize", self.resize, names.RESIZE_MODES)
        if self.channels is not None and self.channels not in names.IMAGE_CHANNELS:
            raise ValueError(f"channels must be 1 or 3, got {self.channels}.")
        if not 0 < self.valid_fraction < 1:
            raise ValueError(f"valid_fraction must be in (0, 1), got {self.valid_fraction}.")
        if self.cache_dir is not None:
            self.cache_dir = os.path.expanduser(self.cache_dir)
        check_source(self.dataset, source_options_of(self))

    def _check_model(self):
        """The model section: its own keys typed and in range, every other key an option `build_vae` takes."""
        model = {**MODEL_DEFAULTS, **self.model}
        for key, kind in MODEL_KEY_TYPES.items():
            if key in model:
                model[key] = _coerce(f"{MODEL_SECTION}.{key}", model[key], kind)
        choices = {"architecture": model_names.ARCHITECTURES, "variant": tuple(model_names.VARIANTS),
                   "likelihood": model_names.LIKELIHOODS, "prior": model_names.PRIORS,
                   "objective": model_names.OBJECTIVES}
        for key, values in choices.items():
            try:
                if isinstance(model.get(key), str) or key in MODEL_DEFAULTS:  # else a part's config: build_vae's
                    model_names.check_choice(key, model[key], values)
            except ValueError as err:
                raise ValueError(f"{MODEL_SECTION}.{key}: {err}") from None
        for key, low in (("latent_dim", 1), ("iw_train_samples", 1), ("kl_warmup_steps", 0), ("beta", 0.0),
                         ("free_bits", 0.0)):
            if key in model:
                _at_least(f"{MODEL_SECTION}.{key}", model[key], low)
        if "seed" in model:
            _check_seed(f"{MODEL_SECTION}.seed", model["seed"])
        options = {key: value for key, value in model.items() if key not in MODEL_DEFAULTS}
        try:
            model_names.check_model_options(model["variant"], model["architecture"], options)
        except ValueError as err:
            raise ValueError(f"{MODEL_SECTION}: {err}") from None
        _check_finite(MODEL_SECTION, model)
        if "likelihood" not in self.model and self.dataset not in _named_datasets():
            del model["likelihood"]  # chosen from the images' channels (training.build.default_likelihood)
        self.model = model

    # The model keys training reads itself.
    @property
    def variant(self):
        return self.model["variant"]

    @property
    def architecture(self):
        return self.model["architecture"]

    @property
    def latent_dim(self):
        return self.model["latent_dim"]

    @property
    def iw_train_samples(self):
        return self.model.get("iw_train_samples", 1)

    def _check_sampler_options(self):
        if self.fit_sampler_options and self.fit_sampler is None:
            raise ValueError("fit_sampler_options needs fit_sampler (gmm or two_stage).")
        allowed = model_names.SAMPLER_OPTIONS.get(self.fit_sampler, ())
        for key, value in self.fit_sampler_options.items():
            if key not in allowed:
                raise ValueError(f"fit_sampler_options.{key} is not an option of fit_sampler {self.fit_sampler!r} "
                                 f"(options: {list(allowed)}).")
            choices = model_names.SAMPLER_OPTION_CHOICES.get(key)
            if choices and value not in choices:
                raise ValueError(f"fit_sampler_options.{key} must be one of {list(choices)}, got {value!r}.")
            if not choices and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"fit_sampler_options.{key} must be an integer >= 1, got {value!r}.")

    def resolved_run_dir(self):
        """``run_dir``, else ``runs/<dataset>`` (a folder's base name; a tfds: dataset's NAME)."""
        if self.run_dir:
            return self.run_dir
        if self.dataset.startswith(names.TFDS_PREFIX):
            name = self.dataset[len(names.TFDS_PREFIX):].split(":")[0].split("/")[0]
        else:
            name = os.path.basename(os.path.normpath(self.dataset))
        return os.path.join("runs", name)

    def to_dict(self):
        return dataclasses.asdict(self)


def _named_datasets():
    from keras_vae.training.data import DATASETS

    return DATASETS


def _at_least(name, value, low):
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}.")


def _check_seed(name, value):
    if not 0 <= value <= model_names.MAX_SEED:
        raise ValueError(f"{name} must be an integer from 0 to {model_names.MAX_SEED} ({model_names.SEED_RANGE}), "
                         f"got {value}.")


_YAML11_EXPONENT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _coerce(name, value, hint):
    """Checks ``value`` against the field type (accepting ints for floats), naming the key on error."""
    optional = typing.get_origin(hint) is typing.Union and type(None) in typing.get_args(hint)
    if value is None:
        if optional:
            return None
        raise ValueError(f"{name} may not be null.")
    base = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
    expected = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
                list: "a list", dict: "a mapping"}[base]
    if base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is float:
        if isinstance(value, str) and _YAML11_EXPONENT.match(value):
            value = float(value)  # PyYAML reads 2e-4 (no dot) as a string; it is a number to anyone writing it
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
        if ok and not math.isfinite(value):  # NaN passes every range check: refuse it by name
            raise ValueError(f"{name} must be a finite number, got {value!r}.")
    elif base is list:
        ok = isinstance(value, (list, tuple))
        value = list(value) if ok else value
    else:
        ok = isinstance(value, base)
    if not ok:
        raise ValueError(f"{name} must be {expected}, got {value!r} ({type(value).__name__}).")
    return value


def _check_finite(name, value):
    """Raises naming ``name.key`` when a float nested in ``value`` (an option mapping or list) is NaN or infinite.

    >>> _check_finite("model_options", {"dropout": float("nan")})
    Traceback (most recent call last):
    ValueError: model_options.dropout must be a finite number, got nan.
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        _check_finite(f"{name}.{key}" if isinstance(value, dict) else f"{name}[{key}]", item)


def _check_keys(keys, where):
    known = [f.name for f in dataclasses.fields(TrainConfig)]
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"Unknown config key {key!r} in {where}.{hint}")


def resolve_config_path(path):
    """``path`` itself when it is a file, else the built-in config of that name (``sprites_quick``, or
    ``configs/sprites_quick.yaml`` outside a checkout), else ``path`` unchanged."""
    if os.path.isfile(path):
        return path
    from keras_vae import configs

    return configs.path(path) or path


def _read_yaml(path):
    path = resolve_config_path(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Config file not found: {path!r}.")
    return read_config_file(path)


def _model_overrides(overrides):
    """``(top-level overrides, model section updates)``: ``model.KEY`` and ``model`` mappings, and the model keys
    that version 0.2.0 took at the top level (``latent_dim``, ``variant``, ``model_options``...), go to the model."""
    top, model = {}, {}
    for key, value in overrides.items():
        if key == MODEL_SECTION:
            if not isinstance(value, dict):
                raise ValueError(f"{MODEL_SECTION} must be a mapping of build_vae arguments, got {value!r}.")
            model.update(value)
        elif key.startswith(f"{MODEL_SECTION}."):
            model[key[len(MODEL_SECTION) + 1:]] = value
        elif is_legacy({key: value}):
            model.update(upgrade_config({key: value}, fill_defaults=False)[MODEL_SECTION])
        else:
            top[key] = value
    return top, model


def load_config(path=None, overrides=None):
    """A validated `TrainConfig` from a YAML file (optional) with ``overrides`` (e.g. CLI flags) on top.

    ``path`` is a YAML file or the name of a built-in config (`keras_vae.configs`); a file in the layout of
    version 0.2.0 (model keys at the top level and in ``model_options``) is translated on read. Every key in
    ``overrides`` is applied, None included (callers drop flags that were not given); ``model.KEY`` (and the model
    keys ``variant``, ``architecture``, ``latent_dim``, ``likelihood``...) set one key of the model section.

    Raises FileNotFoundError for a missing file and ValueError, naming the key or file, for unknown
    keys, wrong types, out-of-range values or malformed YAML.
    """
    values = {}
    if path is not None:
        values = _read_yaml(path)
        _check_keys(values, repr(resolve_config_path(path)))
    top, model = _model_overrides(dict(overrides or {}))
    _check_keys(top, "the overrides")
    values.update(top)
    if model:
        values[MODEL_SECTION] = {**(values.get(MODEL_SECTION) or {}), **model}
    try:
        return TrainConfig(**values)
    except ValueError as err:
        where = f" (config {path!r})" if path else ""
        raise ValueError(f"{err}{where}") from None


def config_text(config):
    """``config`` as the YAML text of a run directory's resolved `config.yaml`."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def parse_assignment(text):
    """``"key=value"`` (value parsed as YAML) for the ``--set`` flag; ValueError naming the key if malformed.

    >>> parse_assignment("model.hidden_units=[64]")
    ('model.hidden_units', [64])
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set expects KEY=VALUE, got {text!r}.")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as err:
        problem = " ".join(str(err).split())
        raise ValueError(f"--set {key.strip()}: the value {value!r} is not valid YAML ({problem}).") from None
