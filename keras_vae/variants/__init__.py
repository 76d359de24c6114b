"""VAE variants: each subclasses `keras_vae.VAE`, trains with the same `fit` and saves as `.keras`.

- `BetaVAE` (``"beta_vae"``): KL weight beta, or capacity annealing gamma * |KL - C|.
- `BetaTCVAE` (``"beta_tcvae"``): total-correlation penalty, minibatch-weighted sampling.
- `ConditionalVAE` (``"cvae"``): encoder and decoder conditioned on a label.
- `LadderVAE` (``"ladder"``): a hierarchy of stochastic layers with top-down inference.
- `IAFVAE` (``"iaf"``): a Gaussian posterior followed by inverse autoregressive flow steps.

Example:

>>> vae = keras_vae.build_vae((64, 64, 1), 10, variant="beta_tcvae", beta=6.0, dataset_size=663552)
"""

from keras_vae.variants.beta_tcvae import BetaTCVAE, total_correlation_terms
from keras_vae.variants.beta_vae import BetaVAE
from keras_vae.variants.cvae import ConditionalVAE, conditional_decoder, conditional_encoder
from keras_vae.variants.iaf import AutoregressiveNetwork, FlowPosterior, IAFVAE
from keras_vae.variants.ladder import LadderVAE

__all__ = [
    "BetaVAE",
    "BetaTCVAE",
    "ConditionalVAE",
    "LadderVAE",
    "IAFVAE",
    "AutoregressiveNetwork",
    "FlowPosterior",
    "conditional_encoder",
    "conditional_decoder",
    "total_correlation_terms",
]
