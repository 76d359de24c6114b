"""The run config's one ``model`` section: configs and run directories of version 0.2.0 (fixtures written by that
version, tests/fixtures/v0_2_0) still load and resume, and a config is refused before anything is written."""

import csv
import os
import shutil

import pytest
import yaml

from keras_vae.run_config import read_run_config, upgrade_config
from keras_vae.training.config import config_text, load_config
from keras_vae.training.train import train

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "v0_2_0")
OLD_MODEL = {"architecture": "mlp", "latent_dim": 2, "likelihood": "bernoulli", "variant": "beta_vae",
             "prior": "standard_normal", "beta": 2.0, "kl_warmup_steps": 3, "free_bits": 0.0, "iw_train_samples": 1,
             "hidden_units": [4]}


def test_a_config_file_of_version_0_2_0_is_read_into_the_model_section():
    config = load_config(os.path.join(FIXTURES, "config.yaml"))
    assert config.model == OLD_MODEL
    assert (config.variant, config.architecture, config.latent_dim, config.iw_train_samples) == ("beta_vae", "mlp", 2, 1)
    text = config_text(config)
    assert "model_options" not in text and yaml.safe_load(text)["model"] == OLD_MODEL


def test_the_new_layout_round_trips_and_takes_dotted_overrides(tmp_path):
    path = tmp_path / "new.yaml"
    path.write_text("dataset: sprites\nmodel:\n  architecture: mlp\n  hidden_units: [8]\n  beta: 0.5\nepochs: 2\n")
    config = load_config(str(path), {"model.beta": 0.25, "latent_dim": 3, "model": {"variant": "beta_vae"}})
    assert config.model == {"architecture": "mlp", "latent_dim": 3, "likelihood": "bernoulli", "variant": "beta_vae",
                            "hidden_units": [8], "beta": 0.25}
    saved = tmp_path / "saved.yaml"
    saved.write_text(config_text(config))
    assert load_config(str(saved)) == config


def test_a_key_in_both_places_is_refused_naming_it(tmp_path):
    path = tmp_path / "both.yaml"
    path.write_text("model: {latent_dim: 4}\nlatent_dim: 5\n")
    with pytest.raises(ValueError, match="'latent_dim' is set twice.*both.yaml"):
        load_config(str(path))
    assert upgrade_config({"model": {"latent_dim": 4}, "latent_dim": 4}, fill_defaults=False)["model"] == {
        "latent_dim": 4}


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_run_directory_of_version_0_2_0_loads_and_resumes(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(os.path.join(FIXTURES, "run"), run)
    first_epoch = _rows(run / "history.csv")[0]
    assert read_run_config(run)["model"] == OLD_MODEL  # the reader that export and evaluate use
    config = load_config(str(run / "config.yaml"), {"epochs": 2, "run_dir": str(run)})
    model, metrics = train(config)
    assert metrics["epochs"] == 2 and int(model.optimizer.iterations.numpy()) == 8  # 4 steps restored, 4 new
    rows = _rows(run / "history.csv")
    assert [row["epoch"] for row in rows] == ["0", "1"] and rows[0] == first_epoch
    assert model.objective.beta == 2.0 and model.objective.kl_warmup_steps == 3
    with open(run / "config.yaml") as f:
        rewritten = yaml.safe_load(f)
    assert "model_options" not in rewritten and rewritten["model"]["hidden_units"] == [4]
    with pytest.raises(ValueError, match=r"model.hidden_units=\[4\], not \[8\]"):
        train(load_config(str(run / "config.yaml"), {"epochs": 3, "model.hidden_units": [8]}))


@pytest.mark.parametrize("model, message", [
    ({"variant": "ladder", "lower_latent_dims": []}, "lower_latent_dims needs at least one"),
    ({"variant": "beta_vae", "gamma": 3.0}, "Option 'gamma' has no effect for variant 'beta_vae'"),
    ({"prior": "vamp", "prior_options": {"num_components": 3}}, "num_components"),
])
def test_a_model_its_constructors_refuse_is_refused_before_any_write(tmp_path, model, message):
    run = tmp_path / "run"
    config = load_config(None, {"model": {"architecture": "mlp", "latent_dim": 2, "hidden_units": [4], **model},
                                "epochs": 1, "steps_per_epoch": 1, "run_dir": str(run), "verbose": 0})
    with pytest.raises(ValueError, match=message):
        train(config)
    assert not run.exists()
