"""keras_vae: variational autoencoders for Keras 3 with TensorFlow Probability distributions.

Example:

>>> import keras, keras_vae
>>> vae = keras_vae.build_vae((28, 28, 1), latent_dim=16)
>>> vae.compile(optimizer=keras.optimizers.Adam(1e-3))
>>> vae.fit(images, epochs=5, batch_size=128)
>>> samples = vae.sample(16, seed=0)
"""

__version__ = "0.1.0"

from keras_vae.anomaly import anomaly_scores, score_threshold
from keras_vae.disentanglement import factor_vae_score, mutual_information_gap
from keras_vae.factory import build_vae
from keras_vae.images import image_grid
from keras_vae.latent import apply_attribute, attribute_vector, blend, encode_means, interpolate, traverse
from keras_vae.likelihoods import BernoulliLikelihood, GaussianLikelihood, get_likelihood
from keras_vae.model import VAE
from keras_vae.networks import GatedDense, conv_decoder, conv_encoder, mlp_decoder, mlp_encoder
from keras_vae.objectives import iwae_bound, refine_posterior
from keras_vae.posteriors import GaussianPosterior
from keras_vae.priors import MixtureOfGaussiansPrior, StandardNormalPrior, VampPrior, get_prior
from keras_vae.saving import load_vae
from keras_vae.variants import IAFVAE, BetaTCVAE, BetaVAE, ConditionalVAE, LadderVAE

__all__ = [
    "VAE",
    "BetaVAE",
    "BetaTCVAE",
    "ConditionalVAE",
    "LadderVAE",
    "IAFVAE",
    "build_vae",
    "BernoulliLikelihood",
    "GaussianLikelihood",
    "GaussianPosterior",
    "StandardNormalPrior",
    "MixtureOfGaussiansPrior",
    "VampPrior",
    "get_likelihood",
    "get_prior",
    "iwae_bound",
    "refine_posterior",
    "image_grid",
    "load_vae",
    "mlp_encoder",
    "GatedDense",
    "mlp_decoder",
    "conv_encoder",
    "conv_decoder",
    "encode_means",
    "interpolate",
    "attribute_vector",
    "apply_attribute",
    "blend",
    "traverse",
    "anomaly_scores",
    "score_threshold",
    "mutual_information_gap",
    "factor_vae_score",
]
