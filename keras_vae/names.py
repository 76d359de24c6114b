"""The names the model library accepts, declared once and importable without TensorFlow.

Configs, the command line and `build_vae` all validate against these tables, so a mistyped name or
option is caught before a model is built or a file is written.

Example:

>>> from keras_vae import names
>>> names.check_model_options("beta_vae", "conv", {"capacity_max": 25.0, "filters": [32, 64]})
>>> names.check_model_options("ladder", "mlp", {"filters": [32]})
Traceback (most recent call last):
ValueError: Unknown model option 'filters' for variant 'ladder' with architecture 'mlp'. It is an option of ...
"""

import dataclasses
import difflib
import typing

def check_choice(kind, value, choices):
    """Raises a ValueError naming ``kind`` when ``value`` is not one of ``choices`` (with a close match)."""
    if value not in choices:
        close = difflib.get_close_matches(str(value), list(choices), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown {kind} {value!r}; expected one of {', '.join(map(repr, choices))}.{hint}")


# Seeds of runs and commands: NumPy's global generator (keras.utils.set_random_seed) takes 0 .. 2**32 - 1, and
# TensorFlow's stateless ops int32 seeds (keras_vae.limits.int32_seed): every seed in 0 .. 2**31 - 1 fits both.
MAX_SEED = 2**31 - 1
SEED_RANGE = "the range of NumPy's seeds and TensorFlow's int32 seeds"
ARCHITECTURES = ("conv", "mlp")
LIKELIHOODS = ("bernoulli", "gaussian")
PRIORS = ("standard_normal", "mixture", "vamp")
POSTERIORS = ("gaussian", "iaf", "planar", "radial")
OBJECTIVES = ("elbo", "capacity", "total_correlation", "importance_weighted")
ADVERSARIES = ("factor", "image")
SAMPLERS = ("gmm", "two_stage")  # ex-post samplers; "prior" always names the model's prior
# The options of each sampler that `keras-vae fit-sampler` flags and the train config's fit_sampler_options set:
# integers >= 1, except those with their choices in SAMPLER_OPTION_CHOICES.
SAMPLER_OPTIONS = {"gmm": ("num_components", "covariance_type"), "two_stage": ("epochs",)}
# Covariances of a gmm sampler's components (scikit-learn's names).
COVARIANCE_TYPES = ("diag", "full")
SAMPLER_OPTION_CHOICES = {"covariance_type": COVARIANCE_TYPES}

# Network options, per architecture (the decoder mirrors the encoder).
NETWORK_OPTIONS = {
    "mlp": ("hidden_units", "dropout", "gated", "activation"),
    "conv": ("filters", "kernel_size", "dense_units", "activation", "upsampling", "render_units",
             "convs_per_level", "coordinate_channels"),
}

# Options every variant takes: the model's parts, the ELBO's weights, its condition.
COMMON_OPTIONS = (
    "prior", "prior_options", "posterior", "objective", "beta", "kl_warmup_steps", "free_bits", "iw_train_samples",
    "seed", "likelihood_scale", "num_classes", "label_dim", "num_flows", "flow_units",
)

# The options of each part, by the part's name (its class's constructor keywords).
OBJECTIVE_OPTIONS = {
    "elbo": ("beta", "kl_warmup_steps", "free_bits"),
    "capacity": ("capacity_max", "capacity_steps", "gamma"),
    "total_correlation": ("beta", "alpha", "gamma", "dataset_size", "kl_warmup_steps"),
    "importance_weighted": ("num_samples",),
}
POSTERIOR_OPTIONS = {"gaussian": (), "iaf": ("num_flows", "flow_units"), "planar": ("num_flows",),
                     "radial": ("num_flows",)}
ADVERSARY_OPTIONS = {"factor": ("gamma", "discriminator_units"),
                     "image": ("feature_weight", "adversarial_weight", "discriminator_filters")}
MODEL_CLASSES = ("vae", "ladder")  # keras_vae.VAE, keras_vae.LadderVAE
MODEL_CLASS_OPTIONS = {"vae": (), "ladder": ("lower_latent_dims", "ladder_units")}
# The value of each ELBO weight that changes nothing: an objective without that weight accepts it.
NEUTRAL_VALUES = {"beta": 1.0, "kl_warmup_steps": 0, "free_bits": 0.0, "iw_train_samples": 1}
# The ELBO's weights that these objectives accept with any value and do not use: a config that switches a model to
# them (capacity_max, iw_train_samples) keeps its ELBO settings. Any other option an objective does not use is refused.
OBJECTIVE_IGNORES = {"capacity": ("beta",), "importance_weighted": ("beta", "kl_warmup_steps", "free_bits")}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One variant of the model family: a declaration of its parts, read by `build_vae`, the run config and the CLI.

    Args:
        description: one line for tables and ``--help``.
        objective: the objective's name (`OBJECTIVES`).
        defaults: defaults of its parts' options where they differ from the part's own, e.g. ``{"beta": 4.0}``.
        switches: an option that, when given, selects another objective, e.g. ``{"capacity_max": "capacity"}``.
        posterior: the posterior's name when the options do not name one.
        adversary: a second network trained against the model (`ADVERSARIES`), or None.
        model: the model class (`MODEL_CLASSES`).
        needs_condition: the model must be given ``num_classes`` or ``label_dim``.
        from_dataset: options a training run fills from the dataset when they are not given
            (``{"dataset_size": "train_size"}``).

    Example:

    >>> VARIANTS["beta_vae"].objective_for({"capacity_max": 25.0})
    'capacity'
    """

    description: str
    objective: str = "elbo"
    defaults: typing.Mapping = dataclasses.field(default_factory=dict)
    switches: typing.Mapping = dataclasses.field(default_factory=dict)
    posterior: str = "gaussian"
    adversary: typing.Optional[str] = None
    model: str = "vae"
    needs_condition: bool = False
    from_dataset: typing.Mapping = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        for objective in (self.objective, *self.switches.values()):
            check_choice("objective", objective, OBJECTIVES)
        check_choice("posterior", self.posterior, POSTERIORS)
        check_choice("model class", self.model, MODEL_CLASSES)
        if self.adversary is not None:
            check_choice("adversary", self.adversary, ADVERSARIES)

    def objective_for(self, options):
        """The objective's name given ``options``: a switch's when its option is set, else the declared one."""
        for option, objective in self.switches.items():
            if options.get(option) is not None:
                return objective
        return self.objective

    @property
    def options(self):
        """The options this variant takes beyond `COMMON_OPTIONS` and the network's: its parts' own."""
        own = [*(o for name in (self.objective, *self.switches.values()) for o in OBJECTIVE_OPTIONS[name]),
               *ADVERSARY_OPTIONS.get(self.adversary, ()), *MODEL_CLASS_OPTIONS[self.model]]
        return tuple(dict.fromkeys(o for o in own if o not in COMMON_OPTIONS))


VARIANTS = {
    "vae": Variant("reconstruction + KL (Kingma and Welling 2014)"),
    "beta_vae": Variant("beta-weighted KL (Higgins et al. 2017), or a KL capacity annealed to capacity_max "
                        "(Burgess et al. 2018)", defaults={"beta": 4.0}, switches={"capacity_max": "capacity"}),
    "beta_tcvae": Variant("the KL split into mutual information, total correlation and dimension-wise KL "
                          "(Chen et al. 2018)", objective="total_correlation", from_dataset={"dataset_size": "train_size"}),
    "cvae": Variant("conditioned on a class or a label vector (Sohn et al. 2015)", needs_condition=True),
    "ladder": Variant("a hierarchy of stochastic layers with precision-weighted merges (Sonderby et al. 2016)",
                      model="ladder"),
    "iaf": Variant("an inverse autoregressive flow posterior (Kingma et al. 2016)", posterior="iaf"),
    "factor_vae": Variant("total correlation penalized by a code discriminator (Kim and Mnih 2018)", adversary="factor"),
    "vae_gan": Variant("an image discriminator's features and loss beside the likelihood (Larsen et al. 2016)",
                       adversary="image"),
}


def variant_table():
    """``[(name, description, options)]`` of every variant, for docs and ``--help``."""
    return [(name, spec.description, spec.options) for name, spec in VARIANTS.items()]


def get_variant(name):
    """The `Variant` declared as ``name`` (a ValueError naming it, with a close match, when there is none)."""
    check_choice("variant", name, tuple(VARIANTS))
    return VARIANTS[name]


def model_options(variant, architecture, objective=None):
    """Every option name `build_vae` accepts for ``variant`` with ``architecture`` (and the options of
    ``objective`` when a name replaces the variant's objective)."""
    spec = get_variant(variant)
    check_choice("architecture", architecture, ARCHITECTURES)
    chosen = OBJECTIVE_OPTIONS.get(objective, ()) if isinstance(objective, str) else ()
    return tuple(dict.fromkeys((*NETWORK_OPTIONS[architecture], *COMMON_OPTIONS, *spec.options, *chosen)))


def check_model_options(variant, architecture, options):
    """Raises a ValueError naming the first option in ``options`` that ``variant``/``architecture`` do not take."""
    known = model_options(variant, architecture, options.get("objective"))
    for key in options:
        if key not in known:
            other = [a for a in ARCHITECTURES if a != architecture and key in NETWORK_OPTIONS[a]]
            owners = [v for v, spec in VARIANTS.items() if key in spec.options]
            if other:
                hint = f" It is an option of architecture {other[0]!r}."
            elif owners:
                hint = f" It is an option of variant {owners[0]!r}."
            else:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"Unknown model option {key!r} for variant {variant!r} with architecture "
                             f"{architecture!r}.{hint}")


def registry(kind, declared, classes):
    """``{name: class}`` for classes whose ``name_key`` are exactly the ``declared`` names (else a RuntimeError:
    the TensorFlow-free names above and the classes must not drift apart)."""
    table = {cls.name_key: cls for cls in classes}
    if tuple(table) != tuple(declared):
        raise RuntimeError(f"The {kind} classes {sorted(table)} do not match keras_vae.names ({list(declared)}).")
    return table
