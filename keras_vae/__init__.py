"""keras_vae: variational autoencoders for Keras 3 with TensorFlow Probability distributions.

The model library (this package's top-level modules) builds, trains and explores models;
`keras_vae.training` runs configured training jobs, `keras_vae.export` writes SavedModels and TFLite
files and serves them, and `keras_vae.cli` is the ``keras-vae`` command line.

Example:

>>> import keras, keras_vae
>>> vae = keras_vae.build_vae((28, 28, 1), latent_dim=16)
>>> vae.compile(optimizer=keras.optimizers.Adam(1e-3))
>>> vae.fit(images, epochs=5, batch_size=128)
>>> samples = vae.sample(16, seed=0)
"""

__version__ = "0.2.0"

from keras_vae._startup import command_line_cpu_kernels, quiet_tensorflow_startup

command_line_cpu_kernels()
with quiet_tensorflow_startup():  # the keras-vae command hides TensorFlow's start-up lines unless --verbose
    import tensorflow  # noqa: F401

from keras_vae.anomaly import anomaly_scores, score_threshold
from keras_vae.bounds import iwae_bound, refine_posterior
from keras_vae.conditioning import Condition
from keras_vae.disentanglement import factor_vae_score, mutual_information_gap
from keras_vae.factory import build_vae
from keras_vae.images import image_grid
from keras_vae.ladder import LadderVAE
from keras_vae.latent import apply_attribute, attribute_vector, blend, encode_means, interpolate, traverse
from keras_vae.likelihoods import BernoulliLikelihood, GaussianLikelihood, Likelihood, get_likelihood
from keras_vae.model import VAE, NonFiniteLossError
from keras_vae.networks import (CoordinateChannels, CoordinateMLP, DepthToSpace, GatedDense, SpatialBroadcast, conditional_decoder, conditional_encoder, conv_decoder, conv_encoder,
                                mlp_decoder, mlp_encoder)
from keras_vae.objectives import (ELBO, CapacityELBO, ImportanceWeightedBound, Objective, TotalCorrelationELBO,
                                  get_objective)
from keras_vae.optimizers import FusedAdam, NonFiniteSkipping
from keras_vae.posteriors import GaussianPosterior, IAFPosterior, Posterior, get_posterior
from keras_vae.priors import (GaussianMixturePrior, MixtureOfGaussiansPrior, Prior, StandardNormalPrior, VampPrior,
                              get_prior)
from keras_vae.samplers import GaussianMixtureSampler, Sampler, TwoStageSampler, get_sampler
from keras_vae.saving import load_vae

__all__ = [
    "VAE", "LadderVAE", "build_vae", "Condition", "NonFiniteLossError", "NonFiniteSkipping", "FusedAdam",
    "Likelihood", "BernoulliLikelihood", "GaussianLikelihood", "get_likelihood",
    "Posterior", "GaussianPosterior", "IAFPosterior", "get_posterior",
    "Prior", "StandardNormalPrior", "GaussianMixturePrior", "MixtureOfGaussiansPrior", "VampPrior", "get_prior",
    "Objective", "ELBO", "CapacityELBO", "TotalCorrelationELBO", "ImportanceWeightedBound", "get_objective",
    "Sampler", "GaussianMixtureSampler", "TwoStageSampler", "get_sampler",
    "iwae_bound", "refine_posterior", "image_grid", "load_vae",
    "mlp_encoder", "mlp_decoder", "conv_encoder", "conv_decoder", "GatedDense", "DepthToSpace", "SpatialBroadcast", "CoordinateChannels", "CoordinateMLP", "conditional_encoder",
    "conditional_decoder",
    "encode_means", "interpolate", "attribute_vector", "apply_attribute", "blend", "traverse",
    "anomaly_scores", "score_threshold", "mutual_information_gap", "factor_vae_score",
]
