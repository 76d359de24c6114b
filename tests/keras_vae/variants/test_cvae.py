import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae
from keras_vae.variants import ConditionalVAE


def stripes(n, seed=0):
    """8x8 images with a vertical stripe whose position is the class (0, 1 or 2)."""
    labels = np.random.RandomState(seed).randint(0, 3, size=n)
    images = np.zeros((n, 8, 8, 1), np.float32)
    for i, label in enumerate(labels):
        images[i, :, 3 * label : 3 * label + 2] = 1.0
    return images, labels


def _cvae(**options):
    return keras_vae.build_vae(
        (8, 8, 1), 2, architecture="mlp", hidden_units=(32,), variant="cvae", num_classes=3, seed=0, **options
    )


def test_objective_matches_a_numpy_computation_at_the_posterior_mean():
    model = _cvae()
    model.sample_posterior = lambda posterior: posterior.mean()  # no noise: the terms are deterministic
    x, y = stripes(5)
    terms = model.compute_terms((x, y))
    q = model.encode(x, y)
    mu, sigma = q.mean().numpy(), q.stddev().numpy()
    logits = model.decoder_output(mu, y).numpy()
    bce = np.maximum(logits, 0) - logits * x + np.log1p(np.exp(-np.abs(logits)))
    np.testing.assert_allclose(terms["reconstruction"], bce.sum(axis=(1, 2, 3)), rtol=1e-5)
    kl = 0.5 * np.sum(mu**2 + sigma**2 - 1 - 2 * np.log(sigma), axis=1)
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(terms["elbo"], -(terms["reconstruction"] + terms["kl"]), rtol=1e-6)
    # The label reaches the decoder: other labels give other reconstruction terms.
    other = model.compute_terms((x, (y + 1) % 3))["reconstruction"].numpy()
    assert np.abs(other - terms["reconstruction"].numpy()).max() > 1e-3


def test_training_improves_and_the_label_controls_the_decoded_class(tmp_path):
    x, y = stripes(96)
    model = _cvae()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = model.evaluate(x, y, batch_size=96, verbose=0, return_dict=True)
    history = model.fit(x, y, batch_size=16, epochs=15, verbose=0)
    after = model.evaluate(x, y, batch_size=96, verbose=0, return_dict=True)
    assert set(history.history) == {"loss", "reconstruction", "kl", "elbo"}
    assert -after["elbo"] < 0.4 * -before["elbo"], (before, after)
    # The same code decodes to the stripe of the requested class.
    decoded = model.decode(np.zeros((3, 2), np.float32), np.arange(3)).numpy()
    columns = decoded[..., 0].mean(axis=1)  # [3 classes, 8 columns]
    for label in range(3):
        assert columns[label, 3 * label : 3 * label + 2].min() > 0.5, columns
        assert np.delete(columns[label], [3 * label, 3 * label + 1]).max() < 0.5, columns
    samples = model.sample(4, labels=2, seed=0)
    assert samples.shape == (4, 8, 8, 1)
    # A dataset of (image, label) pairs trains the same way.
    dataset = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32))).batch(32)
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)

    path = tmp_path / "cvae.keras"
    model.save(path)
    loaded = keras_vae.load_vae(path)
    assert isinstance(loaded, ConditionalVAE) and loaded.conditional and loaded.num_classes == 3
    np.testing.assert_array_equal(loaded.decode(np.ones((3, 2), np.float32), np.arange(3)),
                                  model.decode(np.ones((3, 2), np.float32), np.arange(3)))
    log_px = keras_vae.iwae_bound(loaded, (x[:4], y[:4]), num_samples=8, chunk_size=4)
    assert log_px.shape == (4,) and np.all(np.isfinite(log_px))


def test_vector_labels_and_mixture_prior():
    x, y = stripes(32)
    vectors = np.eye(3, dtype=np.float32)[y]
    model = keras_vae.build_vae(
        (8, 8, 1), 2, architecture="mlp", hidden_units=(16,), variant="cvae", label_dim=3, prior="mixture"
    )
    assert model.num_classes is None and model.label_dim == 3
    model.compile(optimizer="adam")
    result = model.fit(x, vectors, batch_size=16, epochs=1, verbose=0).history
    assert np.isfinite(result["loss"][0])
    assert model.decode(np.zeros((2, 2), np.float32), vectors[:2]).shape == (2, 8, 8, 1)


def test_bad_labels_and_missing_labels_raise_clear_errors():
    x, y = stripes(8)
    model = _cvae()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        model.decode(np.zeros((2, 2), np.float32), np.array([0, 3]))
    with pytest.raises(ValueError, match="integer class indices"):
        model.decode(np.zeros((2, 2), np.float32), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="needs labels"):
        model.decode(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match=r"\(images, labels\)"):
        model.fit(tf.data.Dataset.from_tensor_slices(x).batch(4), verbose=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="class label >= num_classes"):
        model.fit(x, y + 3, verbose=0)  # checked inside the compiled step too
    with pytest.raises(ValueError, match="exactly one of num_classes"):
        ConditionalVAE(model.encoder, model.decoder, 2)
