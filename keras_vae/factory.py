"""`build_vae`: a model for an image shape from a few names. Each variant is a declaration of parts.

Example:

>>> vae = build_vae((32, 32, 3), latent_dim=32, architecture="conv", likelihood="gaussian")
>>> cvae = build_vae((28, 28, 1), 8, variant="cvae", num_classes=10)
>>> ladder = build_vae((28, 28, 1), 16, architecture="mlp", variant="ladder", lower_latent_dims=(64, 32))
>>> tcvae = build_vae((64, 64, 1), 10, variant="beta_tcvae", beta=6.0)   # dataset_size from fit's data
"""

from keras_vae import names
from keras_vae.adversaries import FactorDiscriminator, ImageDiscriminator, factor_discriminator, image_discriminator
from keras_vae.conditioning import Condition
from keras_vae.ladder import DEFAULT_LOWER_LATENT_DIMS, LadderVAE
from keras_vae.likelihoods import GaussianLikelihood, get_likelihood
from keras_vae.model import VAE
from keras_vae.networks import build_networks
from keras_vae.objectives import ELBO, CapacityELBO, ImportanceWeightedBound, TotalCorrelationELBO
from keras_vae.posteriors import IAFPosterior
from keras_vae.priors import get_prior


def _unused(variant, options, keys, why):
    given = [k for k in keys if options.get(k) not in (None, 0, 0.0)]
    if given:
        raise ValueError(f"Option {given[0]!r} has no effect for variant {variant!r}: {why}.")


def _objective(variant, options):
    """The variant's objective from its options (popped from ``options``)."""
    iw = options.pop("iw_train_samples", 1)
    if isinstance(iw, bool) or int(iw) != float(iw) or int(iw) < 1:
        raise ValueError(f"iw_train_samples must be an integer >= 1, got {iw!r}")
    iw = int(iw)
    if variant == "beta_tcvae":
        _unused(variant, options, ("free_bits",), "its loss weighs the KL's three parts instead")
        options.pop("free_bits", None)
        tc = {k: options.pop(k) for k in ("beta", "alpha", "gamma", "dataset_size") if k in options}
        objective = TotalCorrelationELBO(kl_warmup_steps=options.pop("kl_warmup_steps", 0), **tc)
    elif variant == "beta_vae" and options.get("capacity_max") is not None:
        # beta is not refused: configs always carry one. With a capacity it has no part in the loss.
        _unused(variant, options, ("free_bits", "kl_warmup_steps"), "with capacity_max the loss is gamma * |KL - C|")
        capacity = {k: options.pop(k) for k in ("capacity_max", "capacity_steps", "gamma") if k in options}
        objective = CapacityELBO(**capacity)
    else:
        if variant == "beta_vae":
            _unused(variant, options, ("capacity_steps", "gamma"), "they anneal a capacity; give capacity_max")
            options.pop("capacity_max", None)
        objective = ELBO(beta=options.pop("beta", 4.0 if variant == "beta_vae" else 1.0),
                         kl_warmup_steps=options.pop("kl_warmup_steps", 0), free_bits=options.pop("free_bits", 0.0))
    for key in ("beta", "free_bits", "kl_warmup_steps"):
        options.pop(key, None)
    if iw > 1:
        if not isinstance(objective, ELBO):
            raise ValueError(f"iw_train_samples > 1 trains on the importance-weighted bound; variant {variant!r} "
                             "has an objective of its own.")
        objective = ImportanceWeightedBound(iw)
    return objective


def _adversary(variant, options, input_shape, latent_dim):
    """FactorVAE's code discriminator or VAE-GAN's image discriminator (options popped), else None."""
    if variant == "factor_vae":
        units = tuple(options.pop("discriminator_units", (512, 512, 512)))
        return FactorDiscriminator(factor_discriminator(latent_dim, units), gamma=options.pop("gamma", 35.0))
    if variant == "vae_gan":
        filters = tuple(options.pop("discriminator_filters", (32, 64, 128)))
        weights = {k: options.pop(k) for k in ("feature_weight", "adversarial_weight") if k in options}
        return ImageDiscriminator(image_discriminator(input_shape, filters), **weights)
    return None


def build_vae(input_shape, latent_dim, architecture="conv", likelihood="bernoulli", variant="vae", **options):
    """Returns an uncompiled `VAE` (a `LadderVAE` for ``"ladder"``) with an MLP or convolutional network pair.

    Args:
        input_shape: ``(H, W, C)`` of the images.
        latent_dim: size of the latent code (for ``"ladder"``: the top layer's).
        architecture: ``"conv"`` or ``"mlp"``.
        likelihood: ``"bernoulli"`` or ``"gaussian"`` (or a likelihood layer); ``likelihood_scale=0.1`` fixes a
            Gaussian's scale (learned by default).
        variant: ``"vae"``; ``"beta_vae"`` (``beta``, default 4, or ``capacity_max``/``capacity_steps``/``gamma``);
            ``"beta_tcvae"`` (``beta``, ``alpha``, ``gamma``, ``dataset_size``); ``"cvae"`` (needs
            ``num_classes`` or ``label_dim``); ``"ladder"`` (``lower_latent_dims``, ``ladder_units``); ``"iaf"``
            (``num_flows``, ``flow_units``); ``"factor_vae"`` (``gamma``, ``discriminator_units``); ``"vae_gan"``
            (``feature_weight``, ``adversarial_weight``, ``discriminator_filters``).
        **options: network options (``hidden_units``, ``dropout``, ``gated`` for mlp; ``filters``,
            ``kernel_size``, ``dense_units``, ``upsampling`` ("transpose", "resize", "depth_to_space": the
            decoder for devices, "spatial_broadcast": Watters et al.'s decoder, "implicit": a `CoordinateMLP` of
            ``render_units``) for conv; ``activation``) and the model's parts: ``prior`` (+
            ``prior_options``), ``posterior``, ``beta``, ``kl_warmup_steps``, ``free_bits``,
            ``iw_train_samples``, ``seed``, and a condition for any variant (``num_classes`` or ``label_dim``).
            `keras_vae.names` lists them; an unknown option is a ValueError naming it.
    """
    names.check_model_options(variant, architecture, options)
    latent_dim = int(latent_dim)
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
    input_shape = tuple(int(d) for d in input_shape)
    options = dict(options)
    net_options = {k: options.pop(k) for k in names.NETWORK_OPTIONS[architecture] if k in options}
    condition = Condition.from_options(options.pop("num_classes", None), options.pop("label_dim", None))
    if variant == "cvae" and not condition:
        raise ValueError("variant 'cvae' needs num_classes (class-index labels) or label_dim (vector labels).")
    scale = options.pop("likelihood_scale", None)
    if scale is not None:
        if likelihood != "gaussian":
            raise ValueError(f"likelihood_scale is for likelihood='gaussian', got likelihood={likelihood!r}.")
        likelihood = GaussianLikelihood(scale=scale)
    parts = {
        "likelihood": get_likelihood(likelihood),
        "prior": get_prior(options.pop("prior", "standard_normal"), **(options.pop("prior_options", None) or {})),
        "objective": _objective(variant, options),
        "condition": condition,
        "seed": options.pop("seed", None),
    }
    parts["adversary"] = _adversary(variant, options, input_shape, latent_dim)
    flows = {k: options.pop(k) for k in ("num_flows", "flow_units") if k in options}
    posterior = options.pop("posterior", "iaf" if variant == "iaf" or flows else "gaussian")
    parts["posterior"] = IAFPosterior(**flows) if posterior == "iaf" else posterior
    if variant == "ladder":
        # The encoder is the bottom of the bottom-up pass; the decoder reads the bottom layer's codes.
        lower = tuple(options.pop("lower_latent_dims", DEFAULT_LOWER_LATENT_DIMS))
        bottom = int(lower[0]) if lower else latent_dim  # LadderVAE itself rejects an empty hierarchy
        encoder, decoder = build_networks(architecture, input_shape, bottom, bottom, condition.size, **net_options)
        return LadderVAE(encoder, decoder, latent_dim, lower_latent_dims=lower, **options, **parts)
    encoder, decoder = build_networks(architecture, input_shape, latent_dim, latent_dim, condition.size,
                                      **net_options)
    return VAE(encoder, decoder, latent_dim, **parts, **options)
