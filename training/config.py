"""The training configuration: a dataclass loaded from YAML and command-line overrides, validated on load.

Example:

>>> config = load_config("configs/sprites_quick.yaml", overrides={"epochs": 2, "seed": 1})
>>> config.dataset, config.batch_size
('sprites', 64)
>>> save_config(config, "runs/sprites/config.yaml")
"""

import dataclasses
import difflib
import os
import re
import typing

import yaml

ARCHITECTURES = ("conv", "mlp")
STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
NAN_POLICIES = ("skip", "stop")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SPLITS = ("train", "valid", "test")
PRIORS = ("standard_normal", "mixture", "vamp")  # keras_vae.priors.PRIORS, without importing TensorFlow


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs; `config.yaml` in a run directory is this, resolved.

    Model options that `keras_vae.build_vae` takes but have no field here (``hidden_units``,
    ``filters``, ``dense_units``, ``kernel_size``, ``activation``, a variant's own options such as
    ``num_classes``) go in ``model_options``.
    """

    # data
    dataset: str = "sprites"
    data_dir: typing.Optional[str] = None
    dynamic_binarization: bool = False
    image_shape: typing.Optional[list] = None  # filled in from the dataset; checked when given
    # model
    variant: str = "vae"
    architecture: str = "conv"
    latent_dim: int = 10
    likelihood: str = "bernoulli"
    prior: str = "standard_normal"
    prior_options: dict = dataclasses.field(default_factory=dict)  # e.g. {num_pseudo_inputs: 500} for vamp
    beta: float = 1.0
    kl_warmup_steps: int = 0
    free_bits: float = 0.0
    iw_train_samples: int = 1  # > 1: train on the importance-weighted bound (IWAE) with this many samples
    model_options: dict = dataclasses.field(default_factory=dict)
    # optimization
    epochs: int = 10
    max_train_minutes: typing.Optional[float] = None  # stop after the epoch that passes this wall time
    steps_per_epoch: typing.Optional[int] = None  # None: one pass over the train split
    validation_steps: typing.Optional[int] = None  # None: the whole valid split
    batch_size: int = 64  # global: split across replicas and workers
    optimizer: str = "adam"
    learning_rate: float = 1e-3
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

    def __post_init__(self):
        self._validate()

    # ------------------------------------------------------------------------------------------
    def _validate(self):
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            setattr(self, field.name, _coerce(field.name, getattr(self, field.name), hints[field.name]))
        _choice("architecture", self.architecture, ARCHITECTURES)
        _choice("strategy", self.strategy, STRATEGIES)
        _choice("precision", self.precision, PRECISIONS)
        _choice("nan_policy", self.nan_policy, NAN_POLICIES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("eval_split", self.eval_split, SPLITS)
        _choice("prior", self.prior, PRIORS)
        from keras_vae.training.data import DATASETS  # light: no TensorFlow import

        _choice("dataset", self.dataset, DATASETS)
        for name in ("latent_dim", "iw_train_samples", "epochs", "batch_size", "steps_per_execution", "image_grid_size", "eval_batch_size"):
            _at_least(name, getattr(self, name), 1)
        for name in ("steps_per_epoch", "validation_steps", "backup_every_steps", "eval_max_examples",
                     "reduce_lr_patience"):
            if getattr(self, name) is not None:
                _at_least(name, getattr(self, name), 1)
        for name in ("kl_warmup_steps", "eval_iw_samples", "max_nonfinite_steps"):
            _at_least(name, getattr(self, name), 0)
        for name in ("beta", "free_bits"):
            _at_least(name, getattr(self, name), 0.0)
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}.")
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
        reserved = {"variant", "likelihood", "prior", "beta", "kl_warmup_steps", "free_bits", "seed", "latent_dim",
                    "iw_train_samples"}
        clash = reserved & set(self.model_options)
        if clash:
            raise ValueError(f"model_options may not set {sorted(clash)}: use the top-level keys of the same names.")

    def resolved_run_dir(self):
        return self.run_dir or os.path.join("runs", self.dataset)

    def to_dict(self):
        return dataclasses.asdict(self)


def _choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}.")


def _at_least(name, value, low):
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}.")


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
    elif base is list:
        ok = isinstance(value, (list, tuple))
        value = list(value) if ok else value
    else:
        ok = isinstance(value, base)
    if not ok:
        raise ValueError(f"{name} must be {expected}, got {value!r} ({type(value).__name__}).")
    return value


def _check_keys(keys, where):
    known = [f.name for f in dataclasses.fields(TrainConfig)]
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"Unknown config key {key!r} in {where}.{hint}")


def load_config(path=None, overrides=None):
    """A validated `TrainConfig` from a YAML file (optional) with ``overrides`` (e.g. CLI flags) on top.

    Every key in ``overrides`` is applied, None included (callers drop flags that were not given).

    Raises FileNotFoundError for a missing file and ValueError, naming the key or file, for unknown
    keys, wrong types, out-of-range values or malformed YAML.
    """
    values = {}
    if path is not None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Config file not found: {path!r}.")
        with open(path) as f:
            try:
                loaded = yaml.safe_load(f)
            except yaml.YAMLError as err:
                raise ValueError(f"{path!r} is not valid YAML: {err}") from err
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path!r} must hold a mapping of config keys, got {type(loaded).__name__}.")
        _check_keys(loaded, repr(path))
        values.update(loaded)
    overrides = dict(overrides or {})
    _check_keys(overrides, "the overrides")
    values.update(overrides)
    try:
        return TrainConfig(**values)
    except ValueError as err:
        where = f" (config {path!r})" if path else ""
        raise ValueError(f"{err}{where}") from None


def save_config(config, path):
    """Writes ``config`` as YAML (the run directory's resolved `config.yaml`)."""
    with open(path, "w") as f:
        yaml.safe_dump(config.to_dict(), f, sort_keys=False)


def parse_assignment(text):
    """``"key=value"`` (value parsed as YAML) for the ``--set`` flag."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--set expects KEY=VALUE, got {text!r}.")
    return key.strip(), yaml.safe_load(value)
