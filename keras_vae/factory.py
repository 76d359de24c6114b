"""`build_vae`: a VAE for an image shape from a few names.

Example:

>>> vae = build_vae((32, 32, 3), latent_dim=32, architecture="conv", likelihood="gaussian")
>>> vae.compile(optimizer="adam")
"""

from keras_vae.model import VAE
from keras_vae.networks import ARCHITECTURES

NETWORK_OPTIONS = ("hidden_units", "filters", "kernel_size", "dense_units", "activation")


def build_vae(input_shape, latent_dim, architecture="conv", likelihood="bernoulli", **options):
    """Returns an uncompiled `VAE` with an MLP or convolutional encoder/decoder pair.

    Args:
        input_shape: ``(H, W, C)`` of the images.
        latent_dim: size of the latent code.
        architecture: ``"conv"`` or ``"mlp"``.
        likelihood: ``"bernoulli"`` or ``"gaussian"`` (or a likelihood layer).
        **options: network options (``hidden_units`` for mlp; ``filters``, ``kernel_size``,
            ``dense_units`` for conv; ``activation``), the rest go to `VAE` (``prior``, ``beta``,
            ``kl_warmup_steps``, ``free_bits``, ``seed``, ...).
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {architecture!r}; expected one of {sorted(ARCHITECTURES)}.")
    latent_dim = int(latent_dim)
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
    net_options = {k: options.pop(k) for k in NETWORK_OPTIONS if k in options}
    if architecture == "mlp" and ({"filters", "kernel_size", "dense_units"} & set(net_options)):
        raise ValueError(f"Options {sorted(net_options)} include conv-only options for architecture 'mlp'.")
    if architecture == "conv" and "hidden_units" in net_options:
        raise ValueError("Option 'hidden_units' is for architecture 'mlp'; use 'filters'/'dense_units' for 'conv'.")
    make_encoder, make_decoder = ARCHITECTURES[architecture]
    decoder_options = dict(net_options)
    for key in ("hidden_units", "filters"):
        if key in decoder_options:  # the decoder mirrors the encoder
            decoder_options[key] = tuple(reversed(decoder_options[key]))
    encoder = make_encoder(input_shape, latent_dim, **net_options)
    decoder = make_decoder(input_shape, latent_dim, **decoder_options)
    return VAE(encoder, decoder, latent_dim, likelihood=likelihood, **options)
