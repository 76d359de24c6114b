"""Ex-post samplers: the GMM recovers a known mixture, a fitted sampler matches the aggregate posterior better
than the prior, samplers are saved with the model, and a sampler of another model is refused."""

import keras
import numpy as np
import pytest

import keras_vae
from keras_vae.priors import BuiltinNoise, StatelessNoise
from keras_vae.sample_quality import frechet_distance
from keras_vae.samplers import GaussianMixtureSampler, TwoStageSampler, get_sampler
from tests.conftest import rectangles


def _mixture(n, seed=0):
    """Codes of a known 2-D mixture: weights 0.5 / 0.3 / 0.2, means far apart, scales 0.5 / 0.3 / 0.2."""
    rng = np.random.default_rng(seed)
    weights, means, scales = np.array([0.5, 0.3, 0.2]), np.array([[-4.0, 0], [4, 0], [0, 5]]), np.array([0.5, 0.3, 0.2])
    k = rng.choice(3, size=n, p=weights)
    return means[k] + scales[k, None] * rng.normal(size=(n, 2)), weights, means, scales


def test_gmm_fit_recovers_a_known_mixture():
    codes, weights, means, scales = _mixture(6000)
    sampler = GaussianMixtureSampler(num_components=3)
    sampler.build((None, 2))
    sampler.fit(codes, seed=0)
    order = np.argsort([np.argmin(np.sum((means - m) ** 2, 1)) for m in sampler.locs.numpy()])
    np.testing.assert_allclose(sampler.locs.numpy()[order], means, atol=0.05)
    np.testing.assert_allclose(np.exp(sampler.logits.numpy())[order], weights, atol=0.02)
    np.testing.assert_allclose(sampler.scales.numpy()[order], np.repeat(scales[:, None], 2, 1), rtol=0.1)
    drawn = np.asarray(sampler.sample(4000, 1.0, seed=[0, 1]))
    assert frechet_distance(codes, drawn) < 0.1


def test_full_covariance_log_densities_match_tfp_for_every_pair():
    """All components at once (EM's E-step) equals each component's own density, including codes
    far from a narrow component, where the expanded quadratic form could lose digits."""
    from tensorflow_probability import distributions as tfd

    from keras_vae.samplers import _log_gaussians_full

    rng = np.random.default_rng(3)
    k, d = 7, 5
    factors = rng.normal(size=(k, d, d)) * np.geomspace(0.02, 2.0, k)[:, None, None]
    covariances = factors @ factors.transpose(0, 2, 1) + 1e-4 * np.eye(d)
    means = rng.normal(size=(k, d)) * 3
    codes = np.concatenate([rng.normal(size=(300, d)) * 4, means + 0.01 * rng.normal(size=(k, d))])
    expected = tfd.MultivariateNormalTriL(means, np.linalg.cholesky(covariances)).log_prob(codes[:, None, :])
    got = _log_gaussians_full(codes, means, covariances)
    np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-7, atol=1e-6)


def test_full_covariance_em_in_blocks_equals_em_with_all_outer_products(monkeypatch):
    """Codes whose outer products exceed the memory limit are fitted block by block, to the same mixture."""
    from keras_vae import samplers

    codes, _, _, _ = _mixture(3000, seed=4)
    fits = []
    for limit in (samplers.OUTER_PRODUCTS_LIMIT, 100):  # 100 numbers: blocks of 3 codes, 1000 blocks
        monkeypatch.setattr(samplers, "OUTER_PRODUCTS_LIMIT", limit)
        sampler = GaussianMixtureSampler(num_components=3, covariance_type="full", max_iterations=20)
        sampler.build((None, 2))
        fits.append((sampler.fit(codes, seed=0), sampler.scale_trils.numpy(), sampler.locs.numpy()))
    np.testing.assert_allclose(fits[0][0], fits[1][0], rtol=1e-9)
    np.testing.assert_allclose(fits[0][1], fits[1][1], atol=1e-6)
    np.testing.assert_allclose(fits[0][2], fits[1][2], atol=1e-6)


def test_full_covariance_gmm_recovers_correlated_components_and_its_density():
    rng = np.random.default_rng(0)
    means = np.array([[-4.0, 0.0], [4.0, 0.0]])
    covariances = np.array([[[0.25, 0.225], [0.225, 0.25]], [[0.3, -0.2], [-0.2, 0.3]]])  # along two diagonals
    k = rng.choice(2, size=6000, p=[0.6, 0.4])
    codes = means[k] + np.einsum("nij,nj->ni", np.linalg.cholesky(covariances)[k], rng.normal(size=(6000, 2)))
    full = GaussianMixtureSampler(num_components=2, covariance_type="full")
    full.build((None, 2))
    log_likelihood = full.fit(codes, seed=0)
    order = np.argsort(full.locs.numpy()[:, 0])
    np.testing.assert_allclose(full.locs.numpy()[order], means, atol=0.05)
    np.testing.assert_allclose(np.exp(full.logits.numpy())[order], [0.6, 0.4], atol=0.02)
    trils = full.scale_trils.numpy()[order]
    np.testing.assert_allclose(trils @ np.swapaxes(trils, 1, 2), covariances, atol=0.03)
    # Its density is the one EM maximised, and beats the diagonal mixture's on correlated codes.
    np.testing.assert_allclose(float(np.mean(full.log_prob(codes.astype("float32")))), log_likelihood, atol=2e-3)
    diagonal = GaussianMixtureSampler(num_components=2)
    diagonal.build((None, 2))
    assert log_likelihood > diagonal.fit(codes, seed=0) + 0.3
    drawn = np.asarray(full.sample(6000, 1.0, seed=[0, 1]))
    for sign, covariance in ((-1, covariances[0]), (1, covariances[1])):
        np.testing.assert_allclose(np.cov(drawn[np.sign(drawn[:, 0]) == sign].T), covariance, atol=0.03)
    assert frechet_distance(codes, drawn) < 0.1


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_draw_with_stateless_noise_is_deterministic_and_builtin_noise_has_the_shape(covariance_type):
    sampler = GaussianMixtureSampler(num_components=2, covariance_type=covariance_type)
    sampler.build((None, 3))
    sampler.fit(np.random.default_rng(0).normal(size=(200, 3)))
    same = [sampler.draw(5, 1.0, StatelessNoise([1, 2])) for _ in range(2)]
    np.testing.assert_array_equal(*same)
    assert tuple(sampler.draw(5, 1.0, BuiltinNoise()).shape) == (5, 3)


@pytest.fixture(scope="module")
def trained():
    """A small VAE trained briefly on rectangles, and its training images."""
    keras.utils.set_random_seed(0)
    images = rectangles(256, seed=1)
    vae = keras_vae.build_vae((28, 28, 1), 4, "mlp", hidden_units=[64], seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(2e-3))
    vae.fit(images, epochs=4, batch_size=64, verbose=0)
    return vae, images


def test_fitted_sampler_is_closer_to_the_aggregate_posterior_than_the_prior(trained):
    vae, images = trained
    vae.fit_sampler(images, kind="gmm", num_components=5)
    codes = keras_vae.encode_means(vae, images)
    prior = np.asarray(vae.sample_prior(2000, seed=0))
    gmm = np.asarray(vae.sample_prior(2000, seed=0, sampler="gmm"))
    assert frechet_distance(codes, gmm) < 0.5 * frechet_distance(codes, prior)
    assert vae.sample(3, seed=0, sampler="gmm").shape == (3, 28, 28, 1)


def test_samplers_are_saved_with_the_model(trained, tmp_path):
    vae, images = trained
    vae.fit_sampler(images, kind="gmm", name="gmm3", num_components=3)
    vae.fit_sampler(images, kind="gmm", name="gmm_full", num_components=3, covariance_type="full")
    vae.fit_sampler(images, kind="two_stage", hidden_units=(16,), epochs=2)
    path = str(tmp_path / "vae.keras")
    vae.save(path)
    loaded = keras_vae.load_vae(path)
    assert {"gmm3", "gmm_full", "two_stage"} <= set(loaded.samplers)
    assert loaded.sampler("gmm3").num_components == 3
    assert loaded.sampler("gmm_full").covariance_type == "full"
    for name in ("gmm3", "gmm_full", "two_stage"):
        np.testing.assert_allclose(loaded.sample(4, seed=3, sampler=name), vae.sample(4, seed=3, sampler=name),
                                   atol=1e-6)
        assert not loaded.sampler(name).trainable_variables  # kept frozen: the model's fit never moves it


@pytest.mark.parametrize("reload_first", [False, True])
def test_a_sampler_refitted_under_its_name_is_the_one_saved(trained, tmp_path, reload_first):
    vae, images = trained
    vae.fit_sampler(images[:200], kind="gmm", name="refit", num_components=2)
    if reload_first:  # as `keras-vae fit-sampler` does: a loaded model that already has the sampler
        vae.save(str(tmp_path / "first.keras"))
        vae = keras_vae.load_vae(str(tmp_path / "first.keras"))
    refitted = vae.fit_sampler(images, kind="gmm", name="refit", num_components=4, seed=1)
    vae.save(str(tmp_path / "vae.keras"))
    loaded = keras_vae.load_vae(str(tmp_path / "vae.keras")).sampler("refit")
    assert loaded.num_components == 4
    for saved, fitted in zip(loaded.weights, refitted.weights):
        np.testing.assert_array_equal(saved, fitted)


def test_a_sampler_of_a_model_with_another_latent_size_is_refused(trained):
    vae, images = trained
    fitted = vae.fit_sampler(images, kind="gmm", num_components=2)
    other = keras_vae.build_vae((28, 28, 1), 6, "mlp", hidden_units=[16])
    with pytest.raises(ValueError, match="another model"):
        other.add_sampler("gmm", fitted)


def test_unknown_samplers_and_options_are_refused(trained):
    vae, _ = trained
    with pytest.raises(ValueError, match="Unknown sampler 'nope'"):
        vae.sample(2, sampler="nope")
    with pytest.raises(ValueError, match="num_componentz"):
        get_sampler("gmm", num_componentz=3)
    with pytest.raises(ValueError, match=r"covariance_type must be one of \('diag', 'full'\), got 'tied'"):
        get_sampler("gmm", covariance_type="tied")
    with pytest.raises(ValueError):
        TwoStageSampler(hidden_units=())


def test_a_sampler_of_another_dataset_is_refused():
    import keras_vae

    vae = keras_vae.build_vae((8, 8, 1), 2, architecture="mlp", hidden_units=(8,))
    other = keras_vae.GaussianMixtureSampler(2, dataset="mnist")
    other.build((None, 2))
    with pytest.raises(ValueError, match="fitted to codes of 'mnist', not 'sprites'"):
        vae.add_sampler("gmm", other, dataset="sprites")
    assert vae.add_sampler("gmm", other, dataset="mnist") is other
    assert keras_vae.get_sampler(keras.saving.serialize_keras_object(other)).dataset == "mnist"


def test_a_mixed_bfloat16_model_fits_its_sampler_to_float32_codes():
    from keras_vae.latent import encode_means
    from keras_vae.precision import float32_compute

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = keras_vae.build_vae((8, 8, 1), 3, architecture="mlp", hidden_units=(16,), seed=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    images = np.random.default_rng(0).random((64, 8, 8, 1)).astype(np.float32)
    sampler = model.fit_sampler(images, kind="gmm", num_components=1)
    with float32_compute(model):
        in_float32 = encode_means(model, images).mean(axis=0)
    in_bfloat16 = encode_means(model, images).mean(axis=0)
    assert model.encoder.compute_dtype == "bfloat16"
    np.testing.assert_allclose(sampler.locs.numpy()[0], in_float32, atol=1e-6)
    assert np.abs(in_bfloat16 - in_float32).max() > 1e-5
