"""Posteriors: the diagonal Gaussian and the inverse autoregressive flow (IAF), as parts any VAE takes."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import keras_vae
from keras_vae import GaussianPosterior, IAFPosterior

tfd = tfp.distributions


def _model(**options):
    return keras_vae.build_vae((14, 14, 1), 4, architecture="mlp", hidden_units=(32,), variant="iaf", seed=0,
                               flow_units=(16,), **options)


def _randomize_flows(model, seed=0):
    rng = np.random.RandomState(seed)
    for net in model.posterior.flow_networks:
        for w in net.weights:
            w.assign(0.3 * rng.randn(*w.shape))


def test_gaussian_posterior_splits_the_encoder_output_and_floors_the_scale():
    q = GaussianPosterior(scale_floor=1e-3)
    out = np.array([[0.5, -1.0, -100.0, 2.0]], np.float32)
    loc, scale = q.parameters_from(out)
    np.testing.assert_allclose(loc, [[0.5, -1.0]])
    np.testing.assert_allclose(scale, [[1e-3, np.log1p(np.exp(2.0)) + 1e-3]], rtol=1e-5)
    dist = q.distribution(loc, scale)
    assert isinstance(dist, tfd.MultivariateNormalDiag) and dist.event_shape == (2,)
    assert q.diagonal_gaussian and not IAFPosterior.diagonal_gaussian
    assert isinstance(keras_vae.get_posterior("iaf"), IAFPosterior)
    with pytest.raises(ValueError, match="Unknown posterior 'flow'"):
        keras_vae.get_posterior("flow")
    with pytest.raises(ValueError, match="num_flows must be >= 1"):
        IAFPosterior(num_flows=0)


def test_the_variant_is_a_vae_with_an_iaf_posterior():
    model = _model(num_flows=3)
    assert type(model) is keras_vae.VAE and isinstance(model.objective, keras_vae.ELBO)
    assert isinstance(model.posterior, IAFPosterior)
    assert model.posterior.num_flows == 3 and model.posterior.flow_units == (16,)
    assert len(model.posterior.flow_networks) == 3
    # Any variant takes the flow posterior by its options.
    plain = keras_vae.build_vae((14, 14, 1), 4, architecture="mlp", hidden_units=(8,), num_flows=1)
    assert isinstance(plain.posterior, IAFPosterior) and plain.posterior.num_flows == 1
    assert isinstance(keras_vae.build_vae((14, 14, 1), 4, architecture="mlp", posterior="iaf").posterior,
                      IAFPosterior)


def test_untrained_flow_is_the_identity_so_the_weights_equal_the_gaussian_vae(small_images):
    model = _model(num_flows=1)  # more steps also reverse the dimension order between them
    plain = keras_vae.VAE(model.encoder, model.decoder, 4)
    seed = tf.constant([5, 6])
    np.testing.assert_allclose(model.log_importance_weights(small_images[:4], 3, seed=seed),
                               plain.log_importance_weights(small_images[:4], 3, seed=seed), rtol=1e-5, atol=1e-4)


def test_flow_density_matches_the_change_of_variables_by_hand(small_images):
    model = _model(num_flows=1)
    _randomize_flows(model)
    x = small_images[:3]
    (loc, scale), = model.posterior_parameters(x)
    base = GaussianPosterior().distribution(loc, scale)
    seed = tf.constant([7, 8])
    # One IAF step: z = (eps - shift(eps)) * exp(-log_scale(eps)), so log q(z) = log N(eps) + sum log_scale(eps).
    # Both the model's own draw and the tfp distribution's one-pass draw are that map of their base noise.
    eps_model = loc + scale * tf.random.stateless_normal(tf.shape(loc), seed=seed)
    posterior = model.encode(x)
    for (z, log_q), eps in ((model.posterior.sample_and_log_prob(loc, scale, seed), eps_model),
                            (posterior.experimental_sample_and_log_prob(seed=(7, 8)), base.sample(seed=(7, 8)))):
        shift, log_scale = model.posterior.flow_networks[0](eps)
        np.testing.assert_allclose(z, (eps - shift) * tf.exp(-log_scale), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(log_q, base.log_prob(eps) + tf.reduce_sum(log_scale, -1), rtol=1e-5)
        # The sequential inverse (log_prob of an arbitrary code) agrees with the one-pass density.
        np.testing.assert_allclose(posterior.log_prob(z), log_q, rtol=1e-4, atol=1e-4)
    # The KL of the objective's terms is the Monte Carlo log q(z|x) - log p(z) at the model's draw.
    z, log_q = model.posterior.sample_and_log_prob(loc, scale, seed)
    model.noise_seed = lambda: seed
    terms = model.objective.terms(model, x, None, training=False)
    np.testing.assert_allclose(terms["kl"], log_q - model.prior.distribution().log_prob(z), rtol=1e-5, atol=1e-5)


def test_posterior_moments_are_deterministic_and_close_to_sampled_ones(small_images):
    keras.utils.set_random_seed(0)  # the encoder's initial weights: the moments' accuracy depends on the shape
    model = _model()
    _randomize_flows(model, seed=3)
    posterior = model.encode(small_images[:2])
    np.testing.assert_array_equal(posterior.mean(), model.encode(small_images[:2]).mean())
    draws = posterior.sample(20000, seed=(1, 1)).numpy()
    spread = draws.std(0)
    assert spread.min() > 0.1  # the randomized flows really reshape the posterior
    np.testing.assert_array_less(np.abs(posterior.mean() - draws.mean(0)), 0.1 * spread)
    np.testing.assert_allclose(posterior.stddev(), spread, rtol=0.2)  # 512 fixed draws: a rough estimate
    # Decoding a reconstruction goes through the flow's mean, not the base Gaussian's.
    np.testing.assert_allclose(model.reconstruct(small_images[:2]), model.decode(posterior.mean()), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("prior", ["standard_normal", "mixture"])
def test_training_improves_and_round_trips(small_images, train_briefly, tmp_path, prior):
    model = _model(num_flows=2, prior=prior)
    before, after, history = train_briefly(model, small_images, epochs=10)
    assert set(history) == {"loss", "reconstruction", "kl", "elbo", "skipped_steps"}
    assert -after["elbo"] < 0.6 * -before["elbo"], (before, after)
    moved = max(np.abs(w.numpy()).max() for net in model.posterior.flow_networks for w in net.weights
                if "out" in w.path)
    assert moved > 0  # the flows trained away from the identity
    model.save(tmp_path / "iaf.keras")
    loaded = keras_vae.load_vae(tmp_path / "iaf.keras")
    assert isinstance(loaded.posterior, IAFPosterior)
    assert loaded.posterior.num_flows == 2 and loaded.posterior.flow_units == (16,)
    seed = tf.constant([3, 4])
    np.testing.assert_allclose(loaded.log_importance_weights(small_images[:4], 5, seed=seed),
                               model.log_importance_weights(small_images[:4], 5, seed=seed), rtol=1e-5)
    # A flow posterior has no per-dimension KL: the KL is the Monte Carlo estimate of the whole code.
    (layer,) = loaded.draw(small_images[:2], seed=seed).layers
    assert layer.kl_per_dim is None
    np.testing.assert_allclose(layer.kl, layer.log_q - layer.log_p, rtol=1e-6)
