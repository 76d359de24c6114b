"""Planar and radial flows (Rezende and Mohamed 2015): log-determinants against numerical Jacobians, the density
of the posterior's draws, the identity at initialisation, and tiny VAEs with each posterior (train, save, export)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae
from keras_vae.export.saved_model import export_model
from keras_vae.planar_flows import PlanarFlow, RadialFlow, planar_step, radial_step
from keras_vae.posteriors import PlanarPosterior, RadialPosterior


def _numerical_log_det(fn, z):
    """``log|det df/dz|`` per row from the full Jacobian (tf.GradientTape.batch_jacobian)."""
    with tf.GradientTape() as tape:
        tape.watch(z)
        y = fn(z)
    return np.linalg.slogdet(tape.batch_jacobian(y, z).numpy().astype(np.float64))


@pytest.mark.parametrize("dim", [2, 3, 5])
def test_planar_log_det_matches_the_numerical_jacobian_even_when_u_dot_w_is_below_minus_one(dim):
    rng = np.random.default_rng(dim)
    z = tf.constant(rng.standard_normal((64, dim)), tf.float32)
    for trial in range(4):
        w = rng.standard_normal(dim).astype(np.float32)
        u = rng.standard_normal(dim).astype(np.float32)
        if trial % 2:  # u.w well below -1: without the u_hat correction the step folds space (det < 0 somewhere)
            u = u - (3.0 + u @ w) * w / (w @ w)
            assert u @ w < -1.0
        b = np.float32(rng.standard_normal())
        _, log_det = planar_step(z, u, w, b)
        sign, expected = _numerical_log_det(lambda v: planar_step(v, u, w, b)[0], z)
        np.testing.assert_array_equal(sign, 1.0)  # invertible: det > 0 everywhere
        np.testing.assert_allclose(log_det.numpy(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dim", [2, 3, 5])
def test_radial_log_det_matches_the_numerical_jacobian(dim):
    rng = np.random.default_rng(10 + dim)
    z = tf.constant(rng.standard_normal((64, dim)), tf.float32)
    for _ in range(4):
        z0 = rng.standard_normal(dim).astype(np.float32)
        alpha_raw, beta_raw = (np.float32(v) for v in 2.0 * rng.standard_normal(2))
        _, log_det = radial_step(z, z0, alpha_raw, beta_raw)
        sign, expected = _numerical_log_det(lambda v: radial_step(v, z0, alpha_raw, beta_raw)[0], z)
        np.testing.assert_array_equal(sign, 1.0)
        np.testing.assert_allclose(log_det.numpy(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("posterior_class", [PlanarPosterior, RadialPosterior])
def test_log_q_of_draws_is_the_change_of_variables_density(posterior_class):
    dim = 3
    q = posterior_class(num_flows=3)
    q.build((None, dim))
    rng = np.random.default_rng(1)
    for weight in q.flow_steps.weights:  # away from the identity
        weight.assign(weight + 0.7 * rng.standard_normal(weight.shape).astype(np.float32))
    loc = tf.constant(rng.standard_normal((16, dim)), tf.float32)
    scale = tf.constant(rng.uniform(0.3, 2.0, (16, dim)), tf.float32)
    seed = tf.constant([3, 4])
    z, log_q = q.sample_and_log_prob(loc, scale, seed)

    base = loc + scale * tf.random.stateless_normal(tf.shape(loc), seed=seed)
    sign, log_det = _numerical_log_det(lambda v: q.flow_steps(v)[0], base)
    log_base = np.sum(-0.5 * ((base - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi), axis=-1)
    np.testing.assert_array_equal(sign, 1.0)
    np.testing.assert_allclose(z.numpy(), q.flow_steps(base)[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(log_q.numpy(), log_base - log_det, rtol=1e-4, atol=1e-4)
    assert np.abs(log_det).max() > 0.05  # the flow is not the identity here


@pytest.mark.parametrize("flow_class", [PlanarFlow, RadialFlow])
def test_an_untrained_flow_is_the_identity(flow_class):
    z = tf.constant(np.random.default_rng(2).standard_normal((32, 5)), tf.float32)
    y, log_det = flow_class(num_flows=4)(z)
    np.testing.assert_allclose(y.numpy(), z.numpy(), atol=1e-5)
    np.testing.assert_allclose(log_det.numpy(), 0.0, atol=1e-5)


def test_num_flows_and_flow_options_are_checked_by_name():
    with pytest.raises(ValueError, match="num_flows"):
        PlanarPosterior(num_flows=0)
    with pytest.raises(ValueError, match="num_flows"):
        RadialPosterior(num_flows=1.5)
    with pytest.raises(ValueError, match=r"\['flow_units'\] configure posterior 'iaf'; posterior='planar'"):
        keras_vae.build_vae((8, 8, 1), 2, architecture="mlp", posterior="planar", flow_units=(8,))
    q = RadialPosterior.from_config(RadialPosterior(num_flows=3, scale_floor=1e-3).get_config())
    assert (q.num_flows, q.scale_floor) == (3, 1e-3)
    assert isinstance(keras_vae.get_posterior("planar"), PlanarPosterior)


def _data(n=64):
    """Binary 8x8 images: a bright top half or a bright left half, with a little noise."""
    rng = np.random.default_rng(0)
    images = np.zeros((n, 8, 8, 1), np.float32)
    images[::2, :4] = 1.0
    images[1::2, :, :4] = 1.0
    flips = rng.random(images.shape) < 0.05
    return np.where(flips, 1.0 - images, images).astype(np.float32)


@pytest.mark.parametrize("posterior", ["planar", "radial"])
def test_a_tiny_vae_trains_saves_and_exports_with_the_flow_posterior(posterior, tmp_path):
    images = _data()
    keras.utils.set_random_seed(0)
    model = keras_vae.build_vae((8, 8, 1), 3, architecture="mlp", hidden_units=(16,), posterior=posterior,
                                num_flows=2, seed=0)
    assert isinstance(model.posterior, {"planar": PlanarPosterior, "radial": RadialPosterior}[posterior])
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    losses = model.fit(images, batch_size=16, epochs=4, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert np.isfinite(keras_vae.iwae_bound(model, images[:4], num_samples=8, chunk_size=8)).all()

    path = tmp_path / "model.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    assert type(again.posterior) is type(model.posterior) and again.posterior.num_flows == 2
    for a, b in zip(model.posterior.flow_steps.weights, again.posterior.flow_steps.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    weights = model.log_importance_weights(images[:4], 3, seed=(1, 2))
    np.testing.assert_allclose(again.log_importance_weights(images[:4], 3, seed=(1, 2)), weights, rtol=1e-5)
    means = model.encode(images[:4]).mean().numpy()
    np.testing.assert_allclose(again.encode(images[:4]).mean(), means, rtol=1e-5, atol=1e-6)

    result = export_model(model, base_dir=str(tmp_path / "export"), name=posterior, with_encoder=True)
    encoded = tf.saved_model.load(result.saved_model_dir).signatures["encode"](images=tf.constant(images[:4]))
    np.testing.assert_allclose(encoded["loc"].numpy(), means, rtol=1e-4, atol=1e-5)
    assert np.all(encoded["scale"].numpy() > 0)


@pytest.mark.parametrize("posterior_class", [PlanarPosterior, RadialPosterior])
def test_the_flow_computes_in_float32_inside_a_mixed_precision_posterior(posterior_class):
    keras.mixed_precision.set_global_policy("mixed_float16")  # as precision="mixed_float16" training sets it
    try:
        q = posterior_class(num_flows=2)
        q.build((None, 3))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    loc, scale = q.parameters_from(tf.zeros([4, 6], tf.float16))
    z, log_q = q.sample_and_log_prob(loc, scale, tf.constant([1, 2]))
    assert q.flow_steps.dtype_policy.name == "float32" and z.dtype == log_q.dtype == tf.float32
    assert np.isfinite(log_q.numpy()).all()
