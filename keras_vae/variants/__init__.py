"""VAE variants: each subclasses `keras_vae.VAE`, trains with the same `fit` and saves as `.keras`.

Example:

>>> vae = keras_vae.build_vae((64, 64, 1), 10, variant="beta_tcvae", beta=6.0, dataset_size=737280)
"""

from keras_vae.variants.cvae import ConditionalVAE, conditional_decoder, conditional_encoder

__all__ = ["ConditionalVAE", "conditional_encoder", "conditional_decoder"]
