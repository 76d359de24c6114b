"""The feature networks of the sample-quality metric: trained once (tiny budgets here), cached atomically under
$KERAS_VAE_CACHE with their held-out accuracy beside them and printed, and refused for unsupported datasets."""

import json
import os

import pytest

from keras_vae.training import feature_networks

TINY = {"mnist": {"epochs": 1, "examples": None, "filters": (8, 16)},
        "sprites": {"epochs": 1, "examples": 600, "filters": (8, 16, 16)}}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_VAE_CACHE", str(tmp_path))
    monkeypatch.setattr(feature_networks, "BUDGETS", TINY)
    return tmp_path


def test_unsupported_datasets_are_refused_naming_the_supported_ones():
    with pytest.raises(ValueError, match="supported for mnist, binarized_mnist, sprites"):
        feature_networks.network_name("cifar10")
    assert feature_networks.network_name("binarized_mnist") == "mnist"


def test_cache_path_follows_keras_vae_cache(cache):
    assert feature_networks.cache_path("sprites") == os.path.join(str(cache), "feature_networks", "sprites.keras")


def test_sprites_network_is_trained_once_cached_with_its_accuracy_and_then_loaded(cache, capsys, monkeypatch):
    network, info = feature_networks.get_feature_network("sprites", verbose=0)
    folder = cache / "feature_networks"
    assert sorted(os.listdir(folder)) == ["sprites.json", "sprites.keras"]  # no temporaries left behind
    stored = json.loads((folder / "sprites.json").read_text())
    assert set(stored["head_accuracy"]) == {"shape", "scale", "orientation", "pos_x", "pos_y"}
    assert 0 <= stored["accuracy"] <= 1 and stored["held_out_examples"] == 1000
    printed = capsys.readouterr().out
    assert "feature network sprites: training it" in printed and "feature network sprites: held-out accuracy" in printed

    def no_training(*args, **kwargs):
        raise AssertionError("the cached network must be loaded, not trained again")

    monkeypatch.setattr(feature_networks, "train_feature_network", no_training)
    extractor, again = feature_networks.get_feature_extractor("sprites", verbose=0)
    assert again["accuracy"] == stored["accuracy"]
    assert f"held-out accuracy {stored['accuracy']:.3f}" in capsys.readouterr().out
    assert tuple(extractor.output.shape) == (None, 128)

    # Another budget (a new release's) makes the cached network stale: it is trained again, not reused.
    monkeypatch.setattr(feature_networks, "BUDGETS", {**TINY, "sprites": {**TINY["sprites"], "examples": 700}})
    with pytest.raises(AssertionError, match="must be loaded, not trained again"):
        feature_networks.get_feature_network("sprites", verbose=0)


def test_mnist_network_learns_digits_from_the_labelled_test_files(cache, shared_data_dir):
    _, info = feature_networks.get_feature_network("binarized_mnist", data_dir=shared_data_dir, verbose=0)
    assert info["network"] == "mnist" and info["held_out_examples"] == 2000  # the test set cut 80 / 20
    assert info["accuracy"] > 0.8 and info["binarized_accuracy"] > 0.8
    assert os.path.isfile(feature_networks.cache_path("mnist"))
