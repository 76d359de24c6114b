"""`keras-vae fit-sampler` and `evaluate --sample-quality` end to end on a tiny run directory, the train config's
``fit_sampler`` option, and the refusals: another dataset, options of the other kind, unsupported datasets."""

import json
import os

import numpy as np
import pytest

import keras_vae
from keras_vae.cli import main
from keras_vae.training import feature_networks

TINY = ["--dataset", "sprites", "--architecture", "mlp", "--latent-dim", "3", "--epochs", "1", "--steps-per-epoch", "3",
        "--validation-steps", "1", "--batch-size", "16", "--strategy", "default", "--set", "image_grid_size=4",
        "--set", "verbose=0", "--set", "model_options={hidden_units: [16]}"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished tiny sprites run trained with ``fit_sampler: gmm`` (4 components, on 200 train codes)."""
    run = str(tmp_path_factory.mktemp("runs") / "sprites")
    assert main(["train", *TINY, "--run-dir", run, "--set", "fit_sampler=gmm",
                 "--set", "fit_sampler_examples=200", "--set", "fit_sampler_options={num_components: 4}"]) == 0
    return run


def test_the_train_option_fits_the_sampler_before_the_final_model_is_saved(run_dir):
    model = keras_vae.load_vae(run_dir)
    assert set(model.samplers) == {"gmm"}
    assert model.sampler("gmm").num_components == 4  # fit_sampler_options reach the sampler
    assert model.sample(2, seed=0, sampler="gmm").shape == (2, 64, 64, 1)


def test_an_unknown_fit_sampler_in_the_config_is_refused(tmp_path, capsys):
    assert main(["train", *TINY, "--run-dir", str(tmp_path / "r"), "--set", "fit_sampler=gmn"]) == 2
    assert "Unknown fit_sampler 'gmn'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_fit_sampler_adds_a_sampler_and_rewrites_the_model_atomically(run_dir, capsys):
    before = keras_vae.load_vae(run_dir)
    assert main(["fit-sampler", run_dir, "--kind", "gmm", "--name", "gmm3", "--num-components", "3",
                 "--covariance-type", "full", "--examples", "150"]) == 0
    assert "added sampler 'gmm3'" in capsys.readouterr().out
    after = keras_vae.load_vae(run_dir)
    assert {"gmm", "gmm3"} <= set(after.samplers) and after.sampler("gmm3").num_components == 3
    assert after.sampler("gmm3").covariance_type == "full"
    best = keras_vae.load_vae(os.path.join(run_dir, "best.keras"))
    assert best.sampler("gmm3").num_components == 3  # a run directory's best.keras gets it too
    assert int(after.optimizer.iterations) == int(before.optimizer.iterations)  # optimizer state kept
    for a, b in zip(after.weights, before.weights):
        if not any(a is v for s in after.samplers.values() for v in s.weights):
            np.testing.assert_array_equal(a, b)
    assert not [f for f in os.listdir(run_dir) if f.startswith(".tmp-")]


def test_fit_sampler_refuses_another_dataset_and_options_of_the_other_kind(run_dir, capsys):
    assert main(["fit-sampler", run_dir, "--dataset", "mnist"]) == 2
    err = capsys.readouterr().err
    assert "was trained on 'sprites'" in err and "'mnist'" in err
    assert main(["fit-sampler", run_dir, "--kind", "two_stage", "--num-components", "3"]) == 2
    assert "--num-components is not an option of --kind two_stage" in capsys.readouterr().err
    assert main(["fit-sampler", run_dir, "--kind", "two_stage", "--covariance-type", "full"]) == 2
    assert "--covariance-type is not an option of --kind two_stage" in capsys.readouterr().err


def test_fit_sampler_on_a_bare_model_file_checks_the_dataset_images(run_dir, tmp_path, capsys):
    bare = str(tmp_path / "model.keras")
    keras_vae.load_vae(run_dir).save(bare)
    assert main(["fit-sampler", bare]) == 2
    assert "--dataset is required" in capsys.readouterr().err
    assert main(["fit-sampler", bare, "--dataset", "mnist"]) == 2
    assert "takes (64, 64, 1) images; dataset 'mnist' has (28, 28, 1)" in capsys.readouterr().err


def test_sample_quality_on_an_unsupported_dataset_names_the_supported_ones(run_dir, tmp_path, capsys):
    bare = str(tmp_path / "model.keras")
    keras_vae.load_vae(run_dir).save(bare)
    assert main(["evaluate", bare, "--dataset", "cifar10", "--sample-quality", "--iw-samples", "1"]) == 2
    assert "sample quality is supported for mnist, binarized_mnist, sprites" in capsys.readouterr().err


def test_evaluate_reports_sample_quality_beside_the_nll(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_VAE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(feature_networks, "BUDGETS",
                        {"sprites": {"epochs": 1, "examples": 600, "filters": (8, 16, 16)}})
    out = str(tmp_path / "eval.json")
    assert main(["evaluate", run_dir, "--split", "valid", "--iw-samples", "2", "--max-examples", "20",
                 "--sample-quality", "--sampler", "gmm", "--quality-samples", "60", "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "feature network sprites: held-out accuracy" in printed and "frechet_distance" in printed
    result = json.load(open(out))
    assert result["sampler"] == "gmm" and result["sample_quality_examples"] == 60
    assert result["frechet_distance"] > 0 and 0 <= result["precision"] <= 1 and 0 <= result["recall"] <= 1
    assert np.isfinite(result["nll"]) and 0 <= result["feature_network_accuracy"] <= 1
    assert main(["evaluate", run_dir, "--iw-samples", "1", "--sample-quality", "--sampler", "nope"]) == 2
    assert "Unknown sampler 'nope'" in capsys.readouterr().err


def test_train_scores_samples_of_the_prior_and_the_fitted_sampler_at_the_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_VAE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(feature_networks, "BUDGETS",
                        {"sprites": {"epochs": 1, "examples": 600, "filters": (8, 16, 16)}})
    run = tmp_path / "run"
    assert main(["train", *TINY, "--run-dir", str(run), "--set", "fit_sampler=gmm", "--set", "fit_sampler_examples=200",
                 "--set", "eval_sample_quality=40"]) == 0
    evaluation = json.loads((run / "metrics.json").read_text())["evaluation"]
    for sampler in ("prior", "gmm"):
        assert evaluation[f"frechet_distance_{sampler}"] > 0
        assert 0 <= evaluation[f"precision_{sampler}"] <= 1 and 0 <= evaluation[f"recall_{sampler}"] <= 1
    assert evaluation["frechet_distance_prior"] != evaluation["frechet_distance_gmm"]
    assert evaluation["sample_quality_examples"] == 40 and evaluation["split"] == "valid"
    printed = capsys.readouterr().out
    assert "frechet_distance_gmm" in printed and "feature network sprites: held-out accuracy" in printed


def test_train_refuses_sample_quality_on_a_dataset_without_a_feature_network(tmp_path, capsys):
    args = [a if a != "sprites" else "fashion_mnist" for a in TINY]
    assert main(["train", *args, "--run-dir", str(tmp_path / "r"), "--set", "eval_sample_quality=40"]) == 2
    err = capsys.readouterr().err
    assert "eval_sample_quality" in err and "supported for" in err
    assert not (tmp_path / "r").exists()


def test_sample_quality_of_a_conditional_model_draws_with_the_reference_labels(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_VAE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(feature_networks, "BUDGETS",
                        {"sprites": {"epochs": 1, "examples": 600, "filters": (8, 16, 16)}})
    args = [a if a != "model_options={hidden_units: [16]}" else "model_options={hidden_units: [16], label_dim: 5}"
            for a in TINY]
    run = tmp_path / "run"
    assert main(["train", *args, "--variant", "cvae", "--run-dir", str(run), "--set", "fit_sampler=gmm",
                 "--set", "fit_sampler_examples=200", "--set", "eval_sample_quality=40"]) == 0
    evaluation = json.loads((run / "metrics.json").read_text())["evaluation"]
    assert all(np.isfinite(evaluation[f"frechet_distance_{s}"]) for s in ("prior", "gmm"))

    from keras_vae.training.evaluate import evaluate_sample_quality

    model, seen = keras_vae.load_vae(str(run)), []
    sample = model.sample
    monkeypatch.setattr(model, "sample", lambda n, labels=None, **kw: seen.append(labels) or sample(n, labels=labels, **kw))
    evaluate_sample_quality(model, "sprites", "valid", num_samples=30, batch_size=20)
    assert [len(labels) for labels in seen] == [20, 10]
    from keras_vae.training.data import load_examples

    _, reference_labels = load_examples("sprites", "valid", count=30, with_labels=True)
    np.testing.assert_array_equal(np.concatenate(seen), reference_labels)


def test_best_keras_carries_the_sampler_fitted_to_its_own_codes(run_dir, tmp_path):
    from keras_vae.training import train as train_module
    from keras_vae.training.config import load_config

    # One epoch: best.keras holds the final weights, so it carries the final model's sampler.
    final, best = keras_vae.load_vae(run_dir), keras_vae.load_vae(os.path.join(run_dir, "best.keras"))
    for a, b in zip(final.sampler("gmm").weights, best.sampler("gmm").weights):
        np.testing.assert_array_equal(a, b)
    # Other weights in best.keras (as when an earlier epoch was best): its sampler is fitted to its own codes.
    run = tmp_path / "run"
    os.makedirs(run)
    config = load_config(os.path.join(run_dir, "config.yaml"))
    other = keras_vae.load_vae(os.path.join(run_dir, "best.keras"))
    for variable in other.encoder.trainable_variables:
        variable.assign(variable + 0.5)
    other.save(str(run / "best.keras"))
    train_module._fit_sampler_into_best(config, final, str(run), with_labels=False)
    refitted = keras_vae.load_vae(str(run / "best.keras"))
    means = [np.asarray(w) for w in refitted.sampler("gmm").weights]
    assert any(not np.allclose(a, b) for a, b in zip(means, final.sampler("gmm").weights))
    np.testing.assert_array_equal(refitted.encoder.get_weights()[0], other.encoder.get_weights()[0])
    assert not [f for f in os.listdir(run) if f.startswith(".tmp-")]
