"""Bounds on log p(x): the importance-weighted bound, and per-example refinement of its proposal."""

import keras
import numpy as np
import pytest

import keras_vae


def test_iwae_bound_tightens_with_more_samples_and_sits_above_the_elbo():
    vae = keras_vae.build_vae((8, 8, 1), latent_dim=2, architecture="mlp", hidden_units=(32,), seed=0)
    x = (np.random.RandomState(1).rand(64, 8, 8, 1) > 0.5).astype(np.float32)
    # K=1 is the ELBO: their averages over 20 draws per example agree within sampling error.
    elbo = np.mean([vae.objective.terms(vae, x, None, training=False)["elbo"].numpy() for _ in range(20)])
    k1 = np.mean([keras_vae.iwae_bound(vae, x, num_samples=1, seed=s).numpy() for s in range(20)])
    assert k1 == pytest.approx(elbo, abs=0.6)
    bounds = {k: keras_vae.iwae_bound(vae, x, num_samples=k, chunk_size=64, seed=0).numpy() for k in (1, 10, 500)}
    assert bounds[1].mean() < bounds[10].mean() < bounds[500].mean()
    # Chunking does not change the estimate.
    np.testing.assert_allclose(
        keras_vae.iwae_bound(vae, x, num_samples=500, chunk_size=7, seed=0).numpy().mean(),
        bounds[500].mean(),
        atol=0.2,
    )
    # The same seed gives the same estimate; bad sizes are named.
    np.testing.assert_array_equal(keras_vae.iwae_bound(vae, x[:4], num_samples=10, seed=3),
                                  keras_vae.iwae_bound(vae, x[:4], num_samples=10, seed=3))
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1, got 0"):
        keras_vae.iwae_bound(vae, x, num_samples=0)


def _held_out_vae(binary_images):
    """A VAE trained on 48 images, and 16 it has not seen (where its encoder proposes worse)."""
    keras.utils.set_random_seed(0)
    vae = keras_vae.build_vae((28, 28, 1), 4, architecture="mlp", hidden_units=(32,), seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(3e-3))
    vae.fit(binary_images[:48], epochs=20, batch_size=16, verbose=0)
    return vae, binary_images[48:]


def test_refine_posterior_tightens_the_bound_and_leaves_the_model_alone(binary_images):
    vae, x = _held_out_vae(binary_images)
    weights = [w.copy() for w in vae.get_weights()]
    refined = keras_vae.refine_posterior(vae, x, steps=100, learning_rate=0.05, seed=3)
    for before, after in zip(weights, vae.get_weights()):
        np.testing.assert_array_equal(before, after)
    (loc, scale), = refined
    assert loc.shape == (16, 4) and scale.shape == (16, 4) and np.all(scale.numpy() > 0)
    amortized = keras_vae.iwae_bound(vae, x, num_samples=200, chunk_size=100, seed=1).numpy()
    tighter = keras_vae.iwae_bound(vae, x, num_samples=200, chunk_size=100, seed=1, parameters=refined).numpy()
    assert tighter.mean() > amortized.mean() + 1.0, (tighter.mean(), amortized.mean())  # 2.6 to 6.4 seen
    # The one-sample bound (the ELBO of the refined q) gains more: the refinement maximized a 10-sample bound.
    elbo = {name: np.mean([keras_vae.iwae_bound(vae, x, num_samples=1, seed=s, parameters=p).numpy()
                           for s in range(30)]) for name, p in (("amortized", None), ("refined", refined))}
    assert elbo["refined"] > elbo["amortized"] + 3.0, elbo  # 6.5 to 17 seen


def test_refine_posterior_with_no_steps_is_the_encoder_and_bad_arguments_are_named(binary_images):
    vae = keras_vae.build_vae((28, 28, 1), 4, architecture="mlp", hidden_units=(32,), seed=0)
    x = binary_images[:4]
    (loc, scale), = keras_vae.refine_posterior(vae, x, steps=0)
    posterior = vae.encode(x)
    np.testing.assert_allclose(loc, posterior.mean(), rtol=1e-6)
    np.testing.assert_allclose(scale, posterior.stddev(), rtol=1e-6)
    for kwargs, message in ((dict(steps=-1), "steps must be an integer >= 0"), (dict(learning_rate=0.0), "learning_rate"),
                            (dict(num_samples=0), "num_samples must be an integer >= 1")):
        with pytest.raises(ValueError, match=message):
            keras_vae.refine_posterior(vae, x, **kwargs)
    with pytest.raises(ValueError, match="images"):
        keras_vae.refine_posterior(vae, x[:, :20], steps=1)


def test_refine_posterior_never_returns_non_finite_parameters(binary_images):
    # A huge step size throws the scales to overflow: those updates are refused, so the proposal stays
    # finite and the bound stays a finite (if loose) bound.
    vae = keras_vae.build_vae((28, 28, 1), 4, architecture="mlp", hidden_units=(32,), seed=0)
    x = binary_images[:8]
    refined = keras_vae.refine_posterior(vae, x, steps=30, learning_rate=1e4)
    assert all(np.all(np.isfinite(t.numpy())) for pair in refined for t in pair)
    assert np.all(np.isfinite(keras_vae.iwae_bound(vae, x, num_samples=10, parameters=refined).numpy()))


def test_bounds_of_a_conditional_model_take_labels():
    images = (np.random.RandomState(0).rand(4, 8, 8, 1) > 0.5).astype(np.float32)
    labels = np.array([0, 1, 2, 0])
    vae = keras_vae.build_vae((8, 8, 1), 2, architecture="mlp", hidden_units=(8,), variant="cvae", num_classes=3,
                              seed=0)
    log_px = keras_vae.iwae_bound(vae, images, num_samples=8, chunk_size=4, labels=labels).numpy()
    assert log_px.shape == (4,) and np.all(np.isfinite(log_px))
    other = keras_vae.iwae_bound(vae, images, num_samples=8, chunk_size=4, labels=(labels + 1) % 3).numpy()
    assert np.abs(other - log_px).max() > 1e-4  # the labels reach the model
    refined = keras_vae.refine_posterior(vae, images, steps=3, labels=labels)
    assert np.all(np.isfinite(keras_vae.iwae_bound(vae, images, num_samples=4, labels=labels,
                                                   parameters=refined).numpy()))
    with pytest.raises(ValueError, match="pass labels="):
        keras_vae.iwae_bound(vae, images, num_samples=4)
    with pytest.raises(ValueError, match="pass labels="):
        keras_vae.refine_posterior(vae, images, steps=1)
