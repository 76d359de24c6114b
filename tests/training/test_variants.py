"""Every model variant runs through the training pipeline: config -> build_vae(variant=...) -> fit -> evaluate."""

import numpy as np
import pytest

import keras_vae
from keras_vae.training.config import load_config
from keras_vae.training.data import get_dataset
from keras_vae.training.evaluate import evaluate_model
from keras_vae.training.build import build_model
from keras_vae.training.train import train

TINY = {
    "dataset": "sprites",
    "architecture": "mlp",
    "latent_dim": 2,
    "batch_size": 8,
    "epochs": 1,
    "steps_per_epoch": 2,
    "validation_steps": 1,
    "strategy": "default",
    "image_grid_size": 4,
    "verbose": 0,
}
VARIANTS = [  # (variant, the class build_vae returns for it, options)
    ("beta_vae", keras_vae.VAE, {"capacity_max": 5.0, "capacity_steps": 10}),
    ("beta_tcvae", keras_vae.VAE, {"dataset_size": 663_552}),
    ("cvae", keras_vae.VAE, {"label_dim": 5}),  # sprite factor vectors as labels
    ("ladder", keras_vae.LadderVAE, {"lower_latent_dims": [4], "ladder_units": 8}),
    ("iaf", keras_vae.VAE, {"num_flows": 1, "flow_units": [8]}),
]


def _config(tmp_path, variant, options, **values):
    return load_config(None, {**TINY, "variant": variant, "run_dir": str(tmp_path / "run"),
                              "model_options": {"hidden_units": [8], **options}, **values})


@pytest.mark.parametrize("variant, cls, options", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_config_builds_the_variant_and_evaluate_model_takes_it(tmp_path, variant, cls, options):
    model = build_model(_config(tmp_path, variant, options, prior="mixture", beta=3.0, image_shape=[64, 64, 1]))
    assert type(model) is cls and getattr(model.objective, "beta", 3.0) == 3.0  # capacity annealing has none
    assert isinstance(model.prior, keras_vae.MixtureOfGaussiansPrior)
    data = get_dataset("sprites", "valid", batch_size=4, with_labels=bool(model.condition)).take(2)
    result = evaluate_model(model, data, iw_samples=3, refine_steps=20, refine_learning_rate=0.05)
    assert result["num_examples"] == 8 and np.isfinite(result["nll"]) and np.isfinite(result["nelbo"])
    assert result["nll_refined"] < result["nll"], result  # every variant's proposal can be refined


def test_a_variant_trains_end_to_end_from_its_config(tmp_path):
    config = _config(tmp_path, "iaf", {"num_flows": 1, "flow_units": [8]}, eval_iw_samples=4,
                     eval_max_examples=8, eval_batch_size=8)
    model, metrics = train(config)
    assert type(model) is keras_vae.VAE
    assert {"loss", "reconstruction", "kl", "elbo"} <= set(metrics["final"])
    evaluation = metrics["evaluation"]
    assert np.isfinite(evaluation["nll"]) and evaluation["kl_per_dimension"] is None  # no per-dimension KL
    assert type(keras_vae.load_vae(tmp_path / "run")) is keras_vae.VAE
