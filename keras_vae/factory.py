"""`build_vae`: a model for an image shape from a few names, reading each variant's declaration in
`keras_vae.names.VARIANTS` (its objective, posterior, adversary, model class and option defaults).

Example:

>>> vae = build_vae((32, 32, 3), latent_dim=32, architecture="conv", likelihood="gaussian")
>>> cvae = build_vae((28, 28, 1), 8, variant="cvae", num_classes=10)
>>> ladder = build_vae((28, 28, 1), 16, architecture="mlp", variant="ladder", lower_latent_dims=(64, 32))
>>> tcvae = build_vae((64, 64, 1), 10, variant="beta_tcvae", beta=6.0)   # dataset_size from fit's data
>>> iwae = build_vae((28, 28, 1), 16, architecture="mlp", objective="importance_weighted", num_samples=5)
"""

import contextlib
import math

import keras

from keras_vae import limits, names
from keras_vae.adversaries import ADVERSARIES
from keras_vae.conditioning import Condition
from keras_vae.ladder import LadderVAE
from keras_vae.likelihoods import GaussianLikelihood, get_likelihood
from keras_vae.model import VAE
from keras_vae.networks import build_networks
from keras_vae.limits import integer_at_least
from keras_vae.objectives import OBJECTIVES, get_objective
from keras_vae.posteriors import POSTERIORS, get_posterior
from keras_vae.priors import get_prior

MODEL_CLASSES = {"vae": VAE, "ladder": LadderVAE}  # names.MODEL_CLASSES


def _is_neutral(option, value):
    """True when ``value`` changes nothing (not given, zero, or the ELBO's default weight)."""
    return value is None or value == names.NEUTRAL_VALUES.get(option, 0)


def _refuse_unused(variant, options, keys, why):
    """Pops ``keys`` from ``options``; a ValueError when one of them was given a value that would matter."""
    for key in keys:
        if key in options and not _is_neutral(key, options.pop(key)):
            raise ValueError(f"Option {key!r} has no effect for variant {variant!r}: {why}.")


def _objective_options(spec):
    """Every objective option a variant's options may carry: the ELBO's weights and its objectives' own."""
    objectives = ("elbo", spec.objective, *spec.switches.values())
    return tuple(dict.fromkeys(o for name in objectives for o in names.OBJECTIVE_OPTIONS[name]))


def _objective(variant, spec, options):
    """The objective the variant declares (or ``objective=`` names), with its options popped from ``options``."""
    given = options.pop("objective", None)
    iw = integer_at_least("iw_train_samples", options.pop("iw_train_samples", 1), 1)
    name = given if isinstance(given, str) else spec.objective_for(options) if given is None else None
    if iw > 1:
        if name != "elbo":
            raise ValueError(f"iw_train_samples > 1 trains on the importance-weighted bound; variant {variant!r} "
                             f"has an objective of its own ({given or name!r}).")
        name = "importance_weighted"
    if name is None:  # an Objective or its config: its options are set on it
        _refuse_unused(variant, options, _objective_options(spec), "objective= is given; set it on the objective")
        return get_objective(given)
    names.check_choice("objective", name, names.OBJECTIVES)
    taken = names.OBJECTIVE_OPTIONS[name]
    kwargs = {key: value for key, value in spec.defaults.items() if key in taken}
    kwargs.update({key: options.pop(key) for key in taken if key in options})
    if iw > 1:
        kwargs["num_samples"] = iw
    for key in names.OBJECTIVE_IGNORES.get(name, ()):
        options.pop(key, None)
    _refuse_unused(variant, options, (*_objective_options(spec), "num_samples"),
                   f"objective {name!r} does not take it")
    return OBJECTIVES[name](**kwargs)


def _posterior(spec, options):
    """The declared posterior, or the one ``posterior=`` gives; flow options alone select IAF and configure
    the named flow posterior (``"iaf"``, ``"planar"``, ``"radial"``)."""
    flows = {key: options.pop(key) for key in names.POSTERIOR_OPTIONS["iaf"] if key in options}
    posterior = options.pop("posterior", "iaf" if flows else spec.posterior)
    takes = names.POSTERIOR_OPTIONS.get(posterior, ()) if isinstance(posterior, str) else ()
    if set(flows) - set(takes):
        owners = [name for name, keys in names.POSTERIOR_OPTIONS.items() if set(flows) <= set(keys)]
        raise ValueError(f"{sorted(flows)} configure posterior {' or '.join(map(repr, owners))}; "
                         f"posterior={posterior!r} takes {list(takes) or 'none'}.")
    return POSTERIORS[posterior](**flows) if takes else get_posterior(posterior)


def _adversary(spec, options, input_shape, latent_dim):
    if spec.adversary is None:
        return None
    own = {key: options.pop(key) for key in names.ADVERSARY_OPTIONS[spec.adversary] if key in options}
    return ADVERSARIES[spec.adversary].from_options(input_shape, latent_dim, **own)


def _likelihood(likelihood, scale):
    if scale is None:
        return get_likelihood(likelihood)
    if likelihood != "gaussian":
        raise ValueError(f"likelihood_scale is for likelihood='gaussian', got likelihood={likelihood!r}.")
    return GaussianLikelihood(scale=scale)


def _image_shape(input_shape):
    """``input_shape`` as a tuple of three ints >= 1, or a ValueError naming it."""
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if shape is None or len(shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape!r}")
    return tuple(integer_at_least(f"input_shape {input_shape!r}: each size", d, 1) for d in shape)


def build_vae(input_shape, latent_dim, architecture="conv", likelihood="bernoulli", variant="vae", **options):
    """Returns an uncompiled `VAE` (a `LadderVAE` for ``"ladder"``) with an MLP or convolutional network pair.

    Args:
        input_shape: ``(H, W, C)`` of the images.
        latent_dim: size of the latent code (for ``"ladder"``: the top layer's).
        architecture: ``"conv"`` or ``"mlp"``.
        likelihood: ``"bernoulli"`` or ``"gaussian"``, a config or a `Likelihood`; ``likelihood_scale=0.1`` fixes
            a Gaussian's scale (learned by default).
        variant: a name of `keras_vae.names.VARIANTS` (``names.variant_table()`` lists them with their options):
            ``"vae"``, ``"beta_vae"``, ``"beta_tcvae"``, ``"cvae"``, ``"ladder"``, ``"iaf"``, ``"factor_vae"``,
            ``"vae_gan"``.
        **options: network options (``hidden_units``, ``dropout``, ``gated`` for mlp; ``filters``,
            ``kernel_size``, ``dense_units``, ``upsampling``, ``render_units``, ``convs_per_level``,
            ``coordinate_channels`` for conv; ``activation``), the parts (``prior`` + ``prior_options``,
            ``posterior`` (+ ``num_flows``, ``flow_units``), ``objective``: each a name, a config or an object),
            the objective's options (``beta``, ``kl_warmup_steps``, ``free_bits``, ``iw_train_samples``, the
            variant's own), ``seed``, and a condition for any variant (``num_classes`` or ``label_dim``).
            An unknown option, or one that would have no effect, is a ValueError naming it.

    An image shape whose networks exceed `keras_vae.limits.MAX_WEIGHT_BYTES` of weights or
    `keras_vae.limits.MAX_EXAMPLE_ACTIVATION_BYTES` of layer outputs per example is a ValueError naming it,
    raised before any weight is allocated.
    """
    names.check_model_options(variant, architecture, options)
    spec = names.get_variant(variant)
    latent_dim = integer_at_least("latent_dim", latent_dim, 1)
    input_shape = _image_shape(input_shape)
    options = dict(options)
    net_options = {key: options.pop(key) for key in names.NETWORK_OPTIONS[architecture] if key in options}
    condition = Condition.from_options(options.pop("num_classes", None), options.pop("label_dim", None))
    if spec.needs_condition and not condition:
        raise ValueError(f"variant {variant!r} needs num_classes (class-index labels) or label_dim (vector labels).")
    parts = {
        "likelihood": _likelihood(likelihood, options.pop("likelihood_scale", None)),
        "prior": get_prior(options.pop("prior", "standard_normal"), **(options.pop("prior_options", None) or {})),
        "objective": _objective(variant, spec, options),
        "posterior": _posterior(spec, options),
        "condition": condition,
        "seed": options.pop("seed", None),
    }
    model_class = MODEL_CLASSES[spec.model]
    with deferred_weights() as created:  # the image-sized parts: sized before their weights are allocated
        parts["adversary"] = _adversary(spec, options, input_shape, latent_dim)
        code_size = model_class.network_code_size(latent_dim, **options)  # what the encoder emits, the decoder reads
        networks = build_networks(architecture, input_shape, code_size, code_size, condition.size, **net_options)
    allocate_within_budget(created, networks, input_shape)
    return model_class(*networks, latent_dim, **parts, **options)


@contextlib.contextmanager
def deferred_weights():
    """Yields a list that holds, on exit, the weights created inside: recorded, not allocated (Keras defers a
    variable's initializer inside a `keras.StatelessScope`), for `allocate_within_budget`. Inside a stateless
    scope of the caller's, weights are made as usual and the list stays empty.

    >>> with deferred_weights() as created:
    ...     networks = build_networks("mlp", (28, 28, 1), 8, 8)
    >>> allocate_within_budget(created, networks, (28, 28, 1))     # or a ValueError, nothing allocated
    """
    from keras.src.backend.common import global_state, stateless_scope

    created = []
    if stateless_scope.in_stateless_scope():
        yield created
        return
    key = "uninitialized_variables"
    before = list(global_state.get_global_attribute(key, [], set_to_default=True))
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield created
        created.extend(global_state.get_global_attribute(key, [])[len(before):])
    finally:  # never initialized by a later scope: allocated by `allocate_within_budget` or dropped
        global_state.set_global_attribute(key, before)


def allocate_within_budget(created, networks, input_shape):
    """Allocates the ``created`` weights of ``networks`` (from `deferred_weights`) when they fit
    `keras_vae.limits.MAX_WEIGHT_BYTES` and one example's activations fit
    `keras_vae.limits.MAX_EXAMPLE_ACTIVATION_BYTES`; else a ValueError naming the image shape, nothing allocated."""
    how = "use smaller images (resize them) or narrower layers"
    weights = sum(math.prod(v.shape) for v in created)
    limits.check_size("input_shape", input_shape, 4 * weights, "MAX_WEIGHT_BYTES",
                      f"network weights ({weights} float32 numbers)", how, count=1)
    activations = sum(limits.activation_count(network) for network in networks)
    limits.check_size("input_shape", input_shape, 4 * activations, "MAX_EXAMPLE_ACTIVATION_BYTES",
                      "layer outputs for one example", how, count=1)
    for variable in created:
        variable._deferred_initialize()

