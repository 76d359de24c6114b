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

Names load on first use (PEP 562): ``import keras_vae`` and ``keras_vae.names`` import no TensorFlow, so the
``keras-vae`` command answers ``--help`` at once; ``keras_vae.build_vae`` imports `keras_vae.factory` (and
TensorFlow) the first time it is read. Submodules (``keras_vae.priors``, ...) resolve the same way.
`load_vae` registers the library's Keras classes before it reads a file; so does importing the package when
Keras or TensorFlow is already imported (``import keras, keras_vae``), for ``keras.saving.load_model``.
Otherwise call `load_library` before ``keras.saving.load_model``.
"""

import importlib
import importlib.util
import sys

__version__ = "0.2.0"

# Public name -> the module that defines it, in the order of `__all__`.
_EXPORTS = {
    "VAE": "model", "LadderVAE": "ladder", "build_vae": "factory", "Condition": "conditioning",
    "NonFiniteLossError": "model", "NonFiniteSkipping": "optimizers", "FusedAdam": "optimizers",
    "Likelihood": "likelihoods", "BernoulliLikelihood": "likelihoods", "GaussianLikelihood": "likelihoods",
    "get_likelihood": "likelihoods",
    "Posterior": "posteriors", "GaussianPosterior": "posteriors", "IAFPosterior": "posteriors",
    "PlanarPosterior": "posteriors", "RadialPosterior": "posteriors", "get_posterior": "posteriors",
    "Prior": "priors", "StandardNormalPrior": "priors", "GaussianMixturePrior": "priors",
    "MixtureOfGaussiansPrior": "priors", "VampPrior": "priors", "get_prior": "priors",
    "Objective": "objectives", "ELBO": "objectives", "CapacityELBO": "objectives",
    "TotalCorrelationELBO": "objectives", "ImportanceWeightedBound": "objectives", "get_objective": "objectives",
    "Sampler": "samplers", "GaussianMixtureSampler": "samplers", "TwoStageSampler": "samplers",
    "get_sampler": "samplers",
    "iwae_bound": "bounds", "refine_posterior": "bounds", "image_grid": "images", "load_vae": "saving",
    "mlp_encoder": "networks", "mlp_decoder": "networks", "conv_encoder": "networks", "conv_decoder": "networks",
    "GatedDense": "networks", "DepthToSpace": "networks", "SpatialBroadcast": "networks",
    "CoordinateChannels": "networks", "CoordinateMLP": "networks", "conditional_encoder": "networks",
    "conditional_decoder": "networks",
    "encode_means": "latent", "interpolate": "latent", "attribute_vector": "latent", "apply_attribute": "latent",
    "blend": "latent", "traverse": "latent", "style_transfer": "latent",
    "anomaly_scores": "anomaly", "score_threshold": "anomaly",
    "mutual_information_gap": "disentanglement", "factor_vae_score": "disentanglement",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    """A public name from its module, or a submodule (``keras_vae.priors``), imported on first use."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value  # later reads skip this function
        return value
    if not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


def load_library():
    """Imports every module of the public names, registering their Keras classes for ``keras.saving.load_model``.

    >>> keras_vae.load_library()
    >>> keras.saving.load_model("vae.keras")
    """
    for module in dict.fromkeys(_EXPORTS.values()):
        importlib.import_module(f"{__name__}.{module}")


if "keras" in sys.modules or "tensorflow" in sys.modules:  # TensorFlow's start-up is paid already
    load_library()
