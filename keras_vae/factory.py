"""`build_vae`: a VAE for an image shape from a few names.

Example:

>>> vae = build_vae((32, 32, 3), latent_dim=32, architecture="conv", likelihood="gaussian")
>>> vae.compile(optimizer="adam")
>>> cvae = build_vae((28, 28, 1), 8, variant="cvae", num_classes=10)
>>> ladder = build_vae((28, 28, 1), 16, architecture="mlp", variant="ladder", lower_latent_dims=(64, 32))
"""

from keras_vae.model import VAE
from keras_vae.networks import ARCHITECTURES
from keras_vae.variants import (
    BetaTCVAE,
    BetaVAE,
    ConditionalVAE,
    IAFVAE,
    LadderVAE,
    conditional_decoder,
    conditional_encoder,
)
from keras_vae.variants.ladder import DEFAULT_LOWER_LATENT_DIMS

NETWORK_OPTIONS = ("hidden_units", "dropout", "gated", "filters", "kernel_size", "dense_units", "activation")
# Variants whose networks are the plain encoder/decoder pair; "cvae" and "ladder" need their own.
VARIANT_CLASSES = {"vae": VAE, "beta_vae": BetaVAE, "beta_tcvae": BetaTCVAE, "iaf": IAFVAE}
VARIANTS = ("vae", "beta_vae", "beta_tcvae", "cvae", "ladder", "iaf")


def build_vae(input_shape, latent_dim, architecture="conv", likelihood="bernoulli", variant="vae", **options):
    """Returns an uncompiled `VAE` (or variant) with an MLP or convolutional encoder/decoder pair.

    Args:
        input_shape: ``(H, W, C)`` of the images.
        latent_dim: size of the latent code (for ``"ladder"``: the top layer's).
        architecture: ``"conv"`` or ``"mlp"``.
        likelihood: ``"bernoulli"`` or ``"gaussian"`` (or a likelihood layer).
        variant: ``"vae"`` (`VAE`), ``"beta_vae"`` (`BetaVAE`), ``"beta_tcvae"`` (`BetaTCVAE`; needs
            ``dataset_size``), ``"cvae"`` (`ConditionalVAE`; needs ``num_classes`` or ``label_dim``),
            ``"ladder"`` (`LadderVAE`; ``lower_latent_dims``, ``ladder_units``) or ``"iaf"`` (`IAFVAE`;
            ``num_flows``, ``flow_units``). Any of them takes ``prior="mixture"``.
        **options: network options (``hidden_units``, ``dropout`` and ``gated`` for mlp; ``filters``, ``kernel_size``,
            ``dense_units`` for conv; ``activation``), the rest go to the model class (``prior``, ``beta``,
            ``kl_warmup_steps``, ``free_bits``, ``seed``, and the variant's own options).
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {architecture!r}; expected one of {sorted(ARCHITECTURES)}.")
    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; expected one of {list(VARIANTS)}.")
    latent_dim = int(latent_dim)
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
    input_shape = tuple(int(d) for d in input_shape)
    net_options = {k: options.pop(k) for k in NETWORK_OPTIONS if k in options}
    if architecture == "mlp" and ({"filters", "kernel_size", "dense_units"} & set(net_options)):
        raise ValueError(f"Options {sorted(net_options)} include conv-only options for architecture 'mlp'.")
    if architecture == "conv" and {"hidden_units", "dropout", "gated"} & set(net_options):
        raise ValueError(f"Options {sorted({'hidden_units', 'dropout', 'gated'} & set(net_options))} are for architecture "
                         "'mlp'; use 'filters'/'dense_units' for 'conv'.")
    make_encoder, make_decoder = ARCHITECTURES[architecture]
    decoder_options = dict(net_options)
    for key in ("hidden_units", "filters"):
        if key in decoder_options:  # the decoder mirrors the encoder
            decoder_options[key] = tuple(reversed(decoder_options[key]))

    if variant == "cvae":
        size = options.get("num_classes") or options.get("label_dim")
        if size is None:
            raise ValueError("variant 'cvae' needs num_classes (class-index labels) or label_dim (vector labels).")
        height, width, channels = input_shape
        inner_encoder = make_encoder((height, width, channels + int(size)), latent_dim, name="image_encoder", **net_options)
        inner_decoder = make_decoder(input_shape, latent_dim + int(size), name="code_decoder", **decoder_options)
        encoder = conditional_encoder(inner_encoder, input_shape, int(size))
        decoder = conditional_decoder(inner_decoder, latent_dim, int(size))
        return ConditionalVAE(encoder, decoder, latent_dim, likelihood=likelihood, **options)

    if variant == "ladder":
        # The encoder is the bottom of the bottom-up pass; the decoder reads the bottom layer's codes.
        lower = tuple(options.setdefault("lower_latent_dims", DEFAULT_LOWER_LATENT_DIMS))
        bottom = int(lower[0]) if lower else latent_dim  # LadderVAE itself rejects an empty hierarchy
        encoder = make_encoder(input_shape, bottom, **net_options)
        decoder = make_decoder(input_shape, bottom, **decoder_options)
        return LadderVAE(encoder, decoder, latent_dim, likelihood=likelihood, **options)

    encoder = make_encoder(input_shape, latent_dim, **net_options)
    decoder = make_decoder(input_shape, latent_dim, **decoder_options)
    return VARIANT_CLASSES[variant](encoder, decoder, latent_dim, likelihood=likelihood, **options)
