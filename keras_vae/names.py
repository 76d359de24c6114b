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

import difflib

ARCHITECTURES = ("conv", "mlp")
LIKELIHOODS = ("bernoulli", "gaussian")
PRIORS = ("standard_normal", "mixture", "vamp")
POSTERIORS = ("gaussian", "iaf")
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

# Options every variant takes: the model's parts, its objective's weights, its condition.
COMMON_OPTIONS = (
    "prior", "prior_options", "posterior", "beta", "kl_warmup_steps", "free_bits", "iw_train_samples", "seed",
    "likelihood_scale", "num_classes", "label_dim", "num_flows", "flow_units",
)

# A variant is a declaration of parts; these are the options of its own parts.
VARIANTS = {
    "vae": (),
    "beta_vae": ("capacity_max", "capacity_steps", "gamma"),
    "beta_tcvae": ("dataset_size", "alpha", "gamma"),
    "cvae": (),  # a VAE that must be given num_classes or label_dim
    "ladder": ("lower_latent_dims", "ladder_units"),
    "iaf": (),  # a VAE with the IAF posterior (num_flows, flow_units)
    "factor_vae": ("gamma", "discriminator_units"),
    "vae_gan": ("feature_weight", "adversarial_weight", "discriminator_filters"),
}


def check_choice(kind, value, choices):
    """Raises a ValueError naming ``kind`` when ``value`` is not one of ``choices`` (with a close match)."""
    if value not in choices:
        close = difflib.get_close_matches(str(value), list(choices), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown {kind} {value!r}; expected one of {', '.join(map(repr, choices))}.{hint}")


def model_options(variant, architecture):
    """Every option name `build_vae` accepts for ``variant`` with ``architecture``."""
    check_choice("variant", variant, tuple(VARIANTS))
    check_choice("architecture", architecture, ARCHITECTURES)
    return (*NETWORK_OPTIONS[architecture], *COMMON_OPTIONS, *VARIANTS[variant])


def check_model_options(variant, architecture, options):
    """Raises a ValueError naming the first option in ``options`` that ``variant``/``architecture`` do not take."""
    known = model_options(variant, architecture)
    for key in options:
        if key not in known:
            other = [a for a in ARCHITECTURES if a != architecture and key in NETWORK_OPTIONS[a]]
            owners = [v for v, extra in VARIANTS.items() if key in extra]
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
