"""`build_vae`: each variant is a declaration of parts, and every option is checked by name."""

import pytest

import keras_vae
from keras_vae import Condition, likelihoods, names, objectives, posteriors, priors


def _build(variant="vae", architecture="mlp", **options):
    if architecture == "mlp":
        options.setdefault("hidden_units", (8,))
    return keras_vae.build_vae((8, 8, 1), 2, architecture=architecture, variant=variant, **options)


@pytest.mark.parametrize("variant, model_class, objective, posterior, options", [
    ("vae", keras_vae.VAE, keras_vae.ELBO, keras_vae.GaussianPosterior, {}),
    ("beta_vae", keras_vae.VAE, keras_vae.ELBO, keras_vae.GaussianPosterior, {}),
    ("beta_vae", keras_vae.VAE, keras_vae.CapacityELBO, keras_vae.GaussianPosterior, {"capacity_max": 5.0}),
    ("beta_tcvae", keras_vae.VAE, keras_vae.TotalCorrelationELBO, keras_vae.GaussianPosterior, {}),
    ("cvae", keras_vae.VAE, keras_vae.ELBO, keras_vae.GaussianPosterior, {"num_classes": 3}),
    ("ladder", keras_vae.LadderVAE, keras_vae.ELBO, keras_vae.GaussianPosterior, {}),
    ("iaf", keras_vae.VAE, keras_vae.ELBO, keras_vae.IAFPosterior, {}),
])
def test_each_variant_declares_its_parts(variant, model_class, objective, posterior, options):
    model = _build(variant, **options)
    assert type(model) is model_class
    assert type(model.objective) is objective and type(model.posterior) is posterior
    assert isinstance(model.prior, keras_vae.StandardNormalPrior)
    assert isinstance(model.likelihood, keras_vae.BernoulliLikelihood) and model.likelihood.data_range == (0.0, 1.0)
    assert bool(model.condition) == (variant == "cvae")
    assert model.image_shape == (8, 8, 1) and model.latent_dim == 2


def test_variant_defaults_and_options_reach_their_parts():
    assert _build().objective.beta == 1.0 and _build("beta_vae").objective.beta == 4.0
    assert _build("beta_vae", beta=2.5).objective.beta == 2.5
    capacity = _build("beta_vae", capacity_max=5.0, capacity_steps=10, gamma=3.0).objective
    assert (capacity.capacity_max, capacity.capacity_steps, capacity.gamma) == (5.0, 10, 3.0)
    tc = _build("beta_tcvae", beta=3.0, alpha=0.5, gamma=2.0, dataset_size=100, kl_warmup_steps=4).objective
    assert (tc.beta, tc.alpha, tc.gamma, tc.dataset_size, tc.kl_warmup_steps) == (3.0, 0.5, 2.0, 100, 4)
    assert _build("beta_tcvae").objective.beta == 6.0
    elbo = _build(beta=2.0, kl_warmup_steps=5, free_bits=0.5).objective
    assert (elbo.beta, elbo.kl_warmup_steps, elbo.free_bits) == (2.0, 5, 0.5)
    iaf = _build("iaf", num_flows=3, flow_units=(4, 4)).posterior
    assert iaf.num_flows == 3 and iaf.flow_units == (4, 4)
    ladder = _build("ladder", lower_latent_dims=(5, 3), ladder_units=16)
    assert ladder.latent_dims == (5, 3, 2) and ladder.ladder_units == 16
    assert ladder.decoder.inputs[0].shape[-1] == 5  # the decoder reads the bottom layer
    assert _build(seed=7).seed == 7
    assert _build("cvae", label_dim=4).condition == Condition.vector(4)


def test_parts_by_name_and_their_options():
    assert isinstance(_build(iw_train_samples=4).objective, keras_vae.ImportanceWeightedBound)
    assert _build(iw_train_samples=4).objective.num_samples == 4
    with pytest.raises(ValueError, match="iw_train_samples > 1"):
        _build("beta_tcvae", iw_train_samples=4)
    with pytest.raises(ValueError, match="iw_train_samples > 1"):
        _build("beta_vae", capacity_max=5.0, iw_train_samples=4)
    mixture = _build(prior="mixture", prior_options={"num_components": 3}).prior
    assert isinstance(mixture, keras_vae.MixtureOfGaussiansPrior) and mixture.num_components == 3
    with pytest.raises(ValueError, match="components"):
        _build(prior="mixture", prior_options={"components": 3})
    assert isinstance(_build(prior="vamp", prior_options={"num_pseudo_inputs": 4}).prior, keras_vae.VampPrior)
    gaussian = _build(likelihood="gaussian", likelihood_scale=0.2).likelihood
    assert isinstance(gaussian, keras_vae.GaussianLikelihood) and gaussian.scale == 0.2
    assert gaussian.data_range is None
    assert _build(likelihood="gaussian").likelihood.scale == "learned"
    with pytest.raises(ValueError, match="likelihood_scale is for likelihood='gaussian'"):
        _build(likelihood_scale=0.2)
    assert isinstance(_build(posterior="iaf").posterior, keras_vae.IAFPosterior)


def test_network_options_reach_the_networks():
    conv = _build(architecture="conv", filters=(4, 8), dense_units=0, kernel_size=5)
    convs = [layer for layer in conv.encoder.layers if layer.__class__.__name__ == "Conv2D"]
    assert [layer.filters for layer in convs] == [4, 8] and convs[0].kernel_size == (5, 5)
    mlp = _build(hidden_units=(12, 6), activation="tanh")
    dense = [layer for layer in mlp.encoder.layers if layer.__class__.__name__ == "Dense"]
    assert [layer.units for layer in dense] == [12, 6, 4] and dense[0].activation.__name__ == "tanh"


def test_unknown_names_and_options_are_errors_that_name_them():
    with pytest.raises(ValueError, match="Unknown variant 'betavae'.*Did you mean 'beta_vae'"):
        _build("betavae")
    with pytest.raises(ValueError, match="Unknown architecture 'resnet'"):
        keras_vae.build_vae((8, 8, 1), 3, architecture="resnet")
    with pytest.raises(ValueError, match="Unknown likelihood"):
        keras_vae.build_vae((8, 8, 1), 3, likelihood="poisson")
    with pytest.raises(ValueError, match="Unknown prior 'gauss'"):
        _build(prior="gauss")
    with pytest.raises(ValueError, match="Unknown posterior 'flow'"):
        _build(posterior="flow")
    with pytest.raises(ValueError, match="Unknown model option 'hiden_units'.*Did you mean 'hidden_units'"):
        _build(hiden_units=(8,))
    for option, owner in (("dropout", "architecture 'mlp'"), ("gated", "architecture 'mlp'"),
                          ("filters", "architecture 'conv'")):
        architecture = "mlp" if owner.endswith("'conv'") else "conv"
        with pytest.raises(ValueError, match=f"Unknown model option '{option}'.*It is an option of {owner}"):
            _build(architecture=architecture, **{option: 1})
    with pytest.raises(ValueError, match="Unknown model option 'capacity_max' for variant 'vae'.*variant 'beta_vae'"):
        _build(capacity_max=5.0)
    with pytest.raises(ValueError, match="Unknown model option 'lower_latent_dims' for variant 'iaf'"):
        _build("iaf", lower_latent_dims=(4,))
    with pytest.raises(ValueError, match="Unknown model option 'dataset_size' for variant 'beta_vae'"):
        _build("beta_vae", dataset_size=10)
    with pytest.raises(ValueError, match="latent_dim must be an integer >= 1"):
        keras_vae.build_vae((8, 8, 1), 0)


def test_names_are_the_tables_build_vae_checks():
    assert set(names.VARIANTS) == {"vae", "beta_vae", "beta_tcvae", "cvae", "ladder", "iaf", "factor_vae", "vae_gan"}
    for variant in names.VARIANTS:
        for architecture in names.ARCHITECTURES:
            known = names.model_options(variant, architecture)
            assert set(names.NETWORK_OPTIONS[architecture]) <= set(known)
            assert set(names.COMMON_OPTIONS) <= set(known) and set(names.VARIANTS[variant].options) <= set(known)
    names.check_model_options("beta_vae", "conv", {"capacity_max": 25.0, "filters": [32, 64]})
    with pytest.raises(ValueError, match="Unknown model option 'lower_latent_dims' for variant 'vae'"):
        names.check_model_options("vae", "mlp", {"lower_latent_dims": (4,)})
    with pytest.raises(ValueError, match="Unknown likelihood 'gausian'.*Did you mean 'gaussian'"):
        names.check_choice("likelihood", "gausian", names.LIKELIHOODS)
    assert set(names.OBJECTIVES) == set(objectives.OBJECTIVES)
    assert set(names.POSTERIORS) == set(posteriors.POSTERIORS)
    assert set(names.PRIORS) == set(priors.PRIORS)
    assert set(names.LIKELIHOODS) == set(likelihoods.LIKELIHOODS)


def test_parts_as_a_name_a_config_or_an_object():
    import keras

    by_name = _build(objective="importance_weighted", num_samples=3).objective
    assert isinstance(by_name, keras_vae.ImportanceWeightedBound) and by_name.num_samples == 3
    by_object = _build(objective=keras_vae.ELBO(beta=2.0)).objective
    assert isinstance(by_object, keras_vae.ELBO) and by_object.beta == 2.0
    config = keras.saving.serialize_keras_object(keras_vae.CapacityELBO(capacity_max=3.0))
    assert _build(objective=config).objective.capacity_max == 3.0
    assert isinstance(_build(posterior=keras_vae.IAFPosterior(num_flows=1)).posterior, keras_vae.IAFPosterior)
    assert isinstance(_build(prior=keras_vae.VampPrior(num_pseudo_inputs=3)).prior, keras_vae.VampPrior)
    assert _build(likelihood=keras_vae.GaussianLikelihood(scale=0.3)).likelihood.scale == 0.3
    with pytest.raises(ValueError, match="Unknown objective 'elbow'.*Did you mean 'elbo'"):
        _build(objective="elbow")


def test_options_that_would_change_nothing_are_refused_by_name():
    with pytest.raises(ValueError, match="Option 'beta' has no effect.*objective= is given"):
        _build(objective=keras_vae.ELBO(), beta=2.0)
    with pytest.raises(ValueError, match="Option 'free_bits' has no effect for variant 'beta_tcvae'"):
        _build("beta_tcvae", free_bits=0.5)
    with pytest.raises(ValueError, match="Option 'gamma' has no effect for variant 'beta_vae'"):
        _build("beta_vae", gamma=3.0)  # a capacity's weight, without capacity_max
    with pytest.raises(ValueError, match="Option 'gamma' has no effect.*'importance_weighted'"):
        _build("beta_vae", iw_train_samples=3, gamma=2.0)
    with pytest.raises(ValueError, match="configure posterior 'iaf'"):
        _build(posterior="gaussian", num_flows=2)
    with pytest.raises(ValueError, match="latent_dim must be an integer >= 1, got 2.5"):
        keras_vae.build_vae((8, 8, 1), 2.5)
    # the ELBO's neutral values are accepted everywhere, and the objectives a config switches to keep its weights
    assert isinstance(_build("beta_vae", capacity_max=2.0, beta=3.0, free_bits=0.0).objective, keras_vae.CapacityELBO)
    assert _build(iw_train_samples=3, beta=2.0, kl_warmup_steps=5).objective.num_samples == 3


def test_a_variant_added_to_the_table_alone_trains_and_saves(tmp_path, monkeypatch):
    """One declaration, no code: an IAF posterior with a beta of 0.5 and a VampPrior-free ladder of parts."""
    import numpy as np

    variant = names.Variant("an IAF-posterior beta-VAE declared by a test", defaults={"beta": 0.5}, posterior="iaf",
                            switches={"capacity_max": "capacity"})
    monkeypatch.setitem(names.VARIANTS, "test_iaf_beta", variant)
    assert ("capacity_max", "capacity_steps", "gamma") == variant.options
    assert "test_iaf_beta" in [row[0] for row in names.variant_table()]
    model = _build("test_iaf_beta", num_flows=1, seed=0)
    assert isinstance(model.posterior, keras_vae.IAFPosterior) and model.objective.beta == 0.5
    assert isinstance(_build("test_iaf_beta", capacity_max=2.0).objective, keras_vae.CapacityELBO)
    images = (np.random.default_rng(0).random((32, 8, 8, 1)) > 0.5).astype("float32")
    model.compile(optimizer="adam")
    history = model.fit(images, epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras_vae.load_vae(path)
    assert isinstance(loaded.posterior, keras_vae.IAFPosterior) and loaded.objective.beta == 0.5
    np.testing.assert_allclose(loaded.encode(images[:4]).mean(), model.encode(images[:4]).mean(), rtol=1e-5)


def test_a_declaration_with_unknown_parts_is_refused():
    with pytest.raises(ValueError, match="Unknown objective 'elbow'"):
        names.Variant("bad", objective="elbow")
    with pytest.raises(ValueError, match="Unknown adversary 'pixel'"):
        names.Variant("bad", adversary="pixel")
