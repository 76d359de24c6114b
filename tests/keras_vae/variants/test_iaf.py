import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae
from keras_vae.variants import AutoregressiveNetwork, IAFVAE


def _model(**options):
    return keras_vae.build_vae((14, 14, 1), 4, architecture="mlp", hidden_units=(32,), variant="iaf", seed=0,
                               flow_units=(16,), **options)


def _randomize_flows(model, seed=0):
    rng = np.random.RandomState(seed)
    for net in model.flow_networks:
        for w in net.weights:
            w.assign(0.3 * rng.randn(*w.shape))


def test_made_outputs_depend_only_on_earlier_inputs():
    net = AutoregressiveNetwork(hidden_units=(8, 8))
    net.build((None, 5))
    for w in net.weights:
        w.assign(np.random.RandomState(1).randn(*w.shape))
    z = tf.constant(np.random.RandomState(2).randn(1, 5), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(z)
        shift, log_scale = net(z)
    for out in (shift, log_scale):
        jacobian = tape.batch_jacobian(out, z)[0].numpy()  # [output i, input j]
        np.testing.assert_array_equal(np.triu(jacobian), 0.0)  # no dependence on inputs j >= i
        assert np.abs(np.tril(jacobian, -1)).sum() > 0


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
    posterior = model.encode(x)
    z, log_q = posterior.experimental_sample_and_log_prob(seed=(7, 8))
    # One IAF step: z = (eps - shift(eps)) * exp(-log_scale(eps)), so log q(z) = log N(eps) + sum log_scale(eps).
    base = model.posterior.distribution(model.encoder(x))
    eps = base.sample(seed=(7, 8))
    shift, log_scale = model.flow_networks[0](eps)
    np.testing.assert_allclose(z, (eps - shift) * tf.exp(-log_scale), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log_q, base.log_prob(eps) + tf.reduce_sum(log_scale, -1), rtol=1e-5)
    # The sequential inverse (log_prob of an arbitrary code) agrees with the one-pass density.
    np.testing.assert_allclose(posterior.log_prob(z), log_q, rtol=1e-4, atol=1e-4)
    # The KL of compute_terms is the Monte Carlo log q(z|x) - log p(z).
    model.noise_seed = lambda: tf.constant([7, 8])
    terms = model.compute_terms(x)
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


@pytest.mark.parametrize("prior", ["standard_normal", "mixture"])
def test_training_improves_and_round_trips(small_images, train_briefly, tmp_path, prior):
    model = _model(num_flows=2, prior=prior)
    before, after, history = train_briefly(model, small_images, epochs=10)
    assert set(history) == {"loss", "reconstruction", "kl", "elbo"}
    assert -after["elbo"] < 0.6 * -before["elbo"], (before, after)
    moved = max(np.abs(w.numpy()).max() for net in model.flow_networks for w in net.weights if "out" in w.path)
    assert moved > 0  # the flows trained away from the identity
    model.save(tmp_path / "iaf.keras")
    loaded = keras_vae.load_vae(tmp_path / "iaf.keras")
    assert isinstance(loaded, IAFVAE) and loaded.num_flows == 2 and loaded.flow_units == (16,)
    seed = tf.constant([3, 4])
    np.testing.assert_allclose(loaded.log_importance_weights(small_images[:4], 5, seed=seed),
                               model.log_importance_weights(small_images[:4], 5, seed=seed), rtol=1e-5)
    with pytest.raises(ValueError, match="per-dimension KL"):
        loaded.kl_per_dimension(loaded.encode(small_images[:2]))
