"""TrainConfig: YAML + overrides, validation errors that name the key."""

import os

import pytest
import yaml

from keras_vae.training.config import TrainConfig, load_config, parse_assignment
from keras_vae.training.run_dir import save_config

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")


def test_defaults_and_file_with_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset: mnist\nepochs: 3\nlearning_rate: 1\narchitecture: mlp\nmodel_options: {hidden_units: [8]}\n")
    config = load_config(str(path), {"epochs": 7, "seed": 3})
    assert (config.dataset, config.epochs, config.seed) == ("mnist", 7, 3)
    assert config.learning_rate == 1.0 and isinstance(config.learning_rate, float)
    assert config.model["hidden_units"] == [8] and config.architecture == "mlp"  # the 0.2.0 layout, translated
    assert config.resolved_run_dir() == os.path.join("runs", "mnist")
    assert TrainConfig().dataset == "sprites"


def test_exponent_numbers_that_pyyaml_reads_as_strings(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 2e-4\nreduce_lr_factor: 5E-1\n")
    assert yaml.safe_load(path.read_text())["learning_rate"] == "2e-4"  # the YAML 1.1 quirk handled here
    config = load_config(str(path))
    assert config.learning_rate == 2e-4 and config.reduce_lr_factor == 0.5
    with pytest.raises(ValueError, match="learning_rate must be a number, got 'fast'"):
        load_config(None, {"learning_rate": "fast"})


def test_saved_config_loads_back(tmp_path):
    config = load_config(None, {"latent_dim": 4, "image_shape": [64, 64, 1], "steps_per_epoch": 5})
    save_config(config, tmp_path / "config.yaml")
    assert load_config(str(tmp_path / "config.yaml")) == config


@pytest.mark.parametrize(
    "values, message",
    [
        ({"epoch": 3}, "Unknown config key 'epoch'.*Did you mean 'epochs'"),
        ({"epochs": "3"}, "epochs must be an integer, got '3'"),
        ({"epochs": True}, "epochs must be an integer"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"learning_rate": -1}, "learning_rate must be > 0"),
        ({"strategy": "gpu"}, "Unknown strategy 'gpu'; expected one of 'auto', 'default', 'one_device', 'mirrored'"),
        ({"precision": "float16"}, "Unknown precision 'float16'"),
        ({"nan_policy": "ignore"}, "Unknown nan_policy 'ignore'; expected one of 'skip', 'stop'"),
        ({"dataset": "imagenet"}, "Unknown dataset 'imagenet'; expected one of .*'sprites'"),
        ({"architecture": "resnet"}, "Unknown architecture 'resnet'; expected one of 'conv', 'mlp'"),
        ({"steps_per_epoch": 0}, "steps_per_epoch must be >= 1"),
        ({"image_shape": [28, 28]}, "image_shape must be"),
        ({"model": "big"}, "model must be a mapping"),
        ({"model": {"architecture": "resnet"}}, r"^model.architecture: Unknown architecture 'resnet'"),
        ({"model.latent_dim": 0}, "model.latent_dim must be >= 1"),
        ({"model.latent_dim": 2.5}, "model.latent_dim must be an integer, got 2.5"),
        ({"model.objective": "elbow"}, "model.objective: Unknown objective 'elbow'.*Did you mean 'elbo'"),
        ({"model": {"variant": "beta_vae", "alpha": 1.0}}, "model: Unknown model option 'alpha'.*'beta_tcvae'"),
        ({"batch_size": None}, "batch_size may not be null"),
        ({"prior": "vampire"}, "Unknown prior 'vampire'.*Did you mean 'vamp'"),
        ({"variant": "beta-vae"}, "Unknown variant 'beta-vae'.*Did you mean 'beta_vae'"),
        ({"likelihood": "poisson"}, "Unknown likelihood 'poisson'"),
        ({"architecture": "mlp", "model_options": {"hidden_unit": [8]}}, "Unknown model option 'hidden_unit'.*'hidden_units'"),
        ({"architecture": "conv", "model_options": {"hidden_units": [8]}}, "It is an option of architecture 'mlp'"),
        ({"model_options": {"lower_latent_dims": [4]}}, "It is an option of variant 'ladder'"),
        ({"beta": float("nan")}, "model.beta must be a finite number, got nan"),
        ({"free_bits": float("inf")}, "model.free_bits must be a finite number, got inf"),
        ({"learning_rate": float("nan")}, "learning_rate must be a finite number"),
        ({"clipnorm": float("-inf")}, "clipnorm must be a finite number"),
        ({"architecture": "mlp", "model_options": {"dropout": float("nan")}}, r"model.dropout must be a finite"),
        ({"prior_options": {"scales": [1.0, float("inf")]}}, r"model.prior_options.scales\[1\] must be a finite number"),
        ({"reduce_lr_patience": 0}, "reduce_lr_patience must be >= 1"),
        ({"reduce_lr_factor": 1.5}, r"reduce_lr_factor must be in \(0, 1\)"),
        ({"learning_rate_schedule": "cosin"}, "Unknown learning_rate_schedule 'cosin'.*Did you mean 'cosine'"),
        ({"learning_rate_schedule": "cosine", "reduce_lr_patience": 2},
         "learning_rate_schedule 'cosine' and reduce_lr_patience both set the learning rate"),
        ({"fit_sampler_options": {"num_components": 5}}, "fit_sampler_options needs fit_sampler"),
        ({"fit_sampler": "gmm", "fit_sampler_options": {"epochs": 5}},
         r"fit_sampler_options.epochs is not an option of fit_sampler 'gmm' \(options: \['num_components', "
         r"'covariance_type'\]\)"),
        ({"fit_sampler": "gmm", "fit_sampler_options": {"covariance_type": "spherical"}},
         r"fit_sampler_options.covariance_type must be one of \['diag', 'full'\], got 'spherical'"),
        ({"fit_sampler": "gmm", "fit_sampler_options": {"num_components": 0}},
         "fit_sampler_options.num_components must be an integer >= 1, got 0"),
        ({"fit_sampler": "two_stage", "fit_sampler_options": {"epochs": 2.5}},
         "fit_sampler_options.epochs must be an integer >= 1, got 2.5"),
    ],
)
def test_bad_values_name_the_key(values, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, values)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(str(tmp_path / "missing.yaml"))
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="list.yaml.*mapping"):
        load_config(str(tmp_path / "list.yaml"))
    (tmp_path / "broken.yaml").write_text("epochs: [1\n")
    with pytest.raises(ValueError, match="broken.yaml.*not valid YAML"):
        load_config(str(tmp_path / "broken.yaml"))
    (tmp_path / "typo.yaml").write_text("batchsize: 3\n")
    with pytest.raises(ValueError, match="Unknown config key 'batchsize' in .*typo.yaml.*'batch_size'"):
        load_config(str(tmp_path / "typo.yaml"))


def test_parse_assignment():
    assert parse_assignment("model_options={hidden_units: [64, 32]}") == ("model_options", {"hidden_units": [64, 32]})
    assert parse_assignment("steps_per_epoch=null") == ("steps_per_epoch", None)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_assignment("epochs")
    with pytest.raises(ValueError, match="--set model_options: the value '{hidden_units: \\[8}' is not valid YAML"):
        parse_assignment("model_options={hidden_units: [8}")


def test_yaml_nan_and_inf_from_the_command_line_are_refused():
    for text, key in (("model.beta=.nan", "model.beta"), ("free_bits=.inf", "model.free_bits"),
                      ("learning_rate=-.inf", "learning_rate")):
        with pytest.raises(ValueError, match=f"^{key} must be a finite number"):
            load_config(None, dict([parse_assignment(text)]))


@pytest.mark.parametrize("name", sorted(f for f in os.listdir(CONFIGS) if f.endswith(".yaml")))
def test_shipped_configs_are_valid(name):
    path = os.path.join(CONFIGS, name)
    with open(path) as f:
        assert isinstance(yaml.safe_load(f), dict)
    load_config(path)
