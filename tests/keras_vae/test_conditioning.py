"""Conditional models: the `Condition` part (class indices or label vectors) and a VAE conditioned on it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae
from keras_vae import Condition


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


def _terms(model, x, labels):
    return {k: v.numpy() for k, v in model.objective.terms(model, x, labels, training=False).items()}


# ----------------------------------------------------------------- Condition
def test_condition_kinds_encode_labels_for_the_networks():
    classes, vectors, none = Condition.classes(3), Condition.vector(2), Condition.none()
    assert (bool(classes), bool(vectors), bool(none)) == (True, True, False)
    np.testing.assert_array_equal(classes.encode([2, 0]), [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(classes.encode(1, batch_size=2), [[0, 1, 0], [0, 1, 0]])  # one for the batch
    np.testing.assert_array_equal(vectors.encode([[0.5, 1.0]]), [[0.5, 1.0]])
    np.testing.assert_array_equal(vectors.encode([0.5, 1.0], batch_size=3), [[0.5, 1.0]] * 3)
    assert none.encode(None) is None and none.label_spec() is None
    assert classes.label_spec() == tf.TensorSpec([None], tf.int32, name="label")
    assert vectors.label_spec("y") == tf.TensorSpec([None, 2], tf.float32, name="y")
    for c in (classes, vectors, none):
        assert Condition.from_config(c.get_config()) == c
    assert classes.get_config() == {"kind": "class", "size": 3}
    assert Condition.from_options(num_classes=3) == classes and Condition.from_options(label_dim=2) == vectors
    assert Condition.from_options() == none and Condition.get(None) == none
    assert classes != Condition.vector(3)


def test_condition_rejects_bad_labels_and_settings():
    classes, vectors = Condition.classes(3), Condition.vector(2)
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        classes.encode([0, 3])
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        classes.encode([-1])
    with pytest.raises(ValueError, match="integer class indices"):
        classes.encode([0.0, 1.0])
    with pytest.raises(ValueError, match=r"shape \(batch,\)"):
        classes.encode([[0, 1]])
    with pytest.raises(ValueError, match=r"label vectors of shape \(batch, 2\)"):
        vectors.encode([[0.0, 1.0, 2.0]])
    with pytest.raises(ValueError, match="numeric labels"):
        vectors.encode([["a", "b"]])
    with pytest.raises(ValueError, match="pass labels="):
        classes.encode(None)
    with pytest.raises(ValueError, match="Unknown condition kind"):
        Condition("classes", 3)
    with pytest.raises(ValueError, match="needs size >= 1"):
        Condition("class", 0)
    with pytest.raises(ValueError, match="not both"):
        Condition.from_options(num_classes=3, label_dim=2)


# ----------------------------------------------------------------- conditional VAE
def test_objective_matches_a_numpy_computation_at_the_posterior_mean(fixed_noise):
    model = fixed_noise(_cvae(), 0.0)  # no noise: the terms are deterministic
    assert type(model) is keras_vae.VAE and model.condition == Condition.classes(3)
    x, y = stripes(5)
    terms = _terms(model, x, y)
    q = model.encode(x, y)
    mu, sigma = q.mean().numpy(), q.stddev().numpy()
    logits = model.decoder_output(mu, y).numpy()
    bce = np.maximum(logits, 0) - logits * x + np.log1p(np.exp(-np.abs(logits)))
    np.testing.assert_allclose(terms["reconstruction"], bce.sum(axis=(1, 2, 3)), rtol=1e-5)
    kl = 0.5 * np.sum(mu**2 + sigma**2 - 1 - 2 * np.log(sigma), axis=1)
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(terms["elbo"], -(terms["reconstruction"] + terms["kl"]), rtol=1e-6)
    # The label reaches the decoder: other labels give other reconstruction terms.
    other = _terms(model, x, (y + 1) % 3)["reconstruction"]
    assert np.abs(other - terms["reconstruction"]).max() > 1e-3
    # ... and the encoder.
    assert np.abs(model.encode(x, (y + 1) % 3).mean().numpy() - mu).max() > 1e-4


def test_training_improves_and_the_label_controls_the_decoded_class(tmp_path):
    x, y = stripes(96)
    model = _cvae()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = model.evaluate(x, y, batch_size=96, verbose=0, return_dict=True)
    history = model.fit(x, y, batch_size=16, epochs=15, verbose=0)
    after = model.evaluate(x, y, batch_size=96, verbose=0, return_dict=True)
    assert set(history.history) == {"loss", "reconstruction", "kl", "elbo", "skipped_steps"}
    assert -after["elbo"] < 0.4 * -before["elbo"], (before, after)
    # The same code decodes to the stripe of the requested class.
    decoded = model.decode(np.zeros((3, 2), np.float32), np.arange(3)).numpy()
    columns = decoded[..., 0].mean(axis=1)  # [3 classes, 8 columns]
    for label in range(3):
        assert columns[label, 3 * label : 3 * label + 2].min() > 0.5, columns
        assert np.delete(columns[label], [3 * label, 3 * label + 1]).max() < 0.5, columns
    samples = model.sample(4, labels=2, seed=0)
    assert samples.shape == (4, 8, 8, 1)
    assert samples.numpy()[..., 6:8, 0].mean() > samples.numpy()[..., 0:5, 0].mean()  # class 2's stripe
    np.testing.assert_array_equal(model.sample(3, labels=[0, 1, 2], seed=1), model.sample(3, labels=[0, 1, 2], seed=1))
    # predict / call take the labels too and give reconstructions in data space.
    np.testing.assert_allclose(model.predict((x[:8], y[:8]), batch_size=8, verbose=0),
                               model.reconstruct(x[:8], y[:8]), rtol=1e-5, atol=1e-6)
    # A dataset of (image, label) pairs, or of dicts, trains the same way.
    dataset = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32))).batch(32)
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    dicts = tf.data.Dataset.from_tensor_slices({"images": x, "labels": y.astype(np.int32)}).batch(32)
    assert np.isfinite(model.evaluate(dicts, verbose=0, return_dict=True)["loss"])

    path = tmp_path / "cvae.keras"
    model.save(path)
    loaded = keras_vae.load_vae(path)
    assert isinstance(loaded, keras_vae.VAE) and loaded.condition == Condition.classes(3)
    np.testing.assert_array_equal(loaded.decode(np.ones((3, 2), np.float32), np.arange(3)),
                                  model.decode(np.ones((3, 2), np.float32), np.arange(3)))
    log_px = keras_vae.iwae_bound(loaded, x[:4], num_samples=8, chunk_size=4, labels=y[:4])
    assert log_px.shape == (4,) and np.all(np.isfinite(log_px))


def test_vector_labels_and_mixture_prior(tmp_path):
    x, y = stripes(32)
    vectors = np.eye(3, dtype=np.float32)[y]
    model = keras_vae.build_vae(
        (8, 8, 1), 2, architecture="mlp", hidden_units=(16,), variant="cvae", label_dim=3, prior="mixture"
    )
    assert model.condition.kind == "vector" and model.condition.size == 3
    assert isinstance(model.prior, keras_vae.MixtureOfGaussiansPrior)
    model.compile(optimizer="adam")
    result = model.fit(x, vectors, batch_size=16, epochs=1, verbose=0).history
    assert np.isfinite(result["loss"][0])
    assert model.decode(np.zeros((2, 2), np.float32), vectors[:2]).shape == (2, 8, 8, 1)
    assert model.sample(2, labels=vectors[0], seed=0).shape == (2, 8, 8, 1)  # one vector for all samples
    model.save(tmp_path / "v.keras")
    assert keras_vae.load_vae(tmp_path / "v.keras").condition == Condition.vector(3)
    with pytest.raises(ValueError, match=r"label vectors of shape \(batch, 3\)"):
        model.decode(np.zeros((2, 2), np.float32), y[:2])


def test_any_variant_takes_a_condition():
    model = keras_vae.build_vae((8, 8, 1), 2, architecture="mlp", hidden_units=(8,), variant="beta_vae",
                                num_classes=3)
    assert model.condition == Condition.classes(3) and model.objective.beta == 4.0
    x, y = stripes(4)
    assert model.reconstruct(x, y).shape == (4, 8, 8, 1)
    ladder = keras_vae.build_vae((8, 8, 1), 2, architecture="mlp", hidden_units=(8,), variant="ladder",
                                 lower_latent_dims=(3,), ladder_units=8, label_dim=2)
    assert isinstance(ladder, keras_vae.LadderVAE) and ladder.condition == Condition.vector(2)
    assert ladder.sample(2, labels=[[0.0, 1.0], [1.0, 0.0]], seed=0).shape == (2, 8, 8, 1)


def test_bad_labels_and_missing_labels_raise_clear_errors():
    x, y = stripes(8)
    model = _cvae()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        model.decode(np.zeros((2, 2), np.float32), np.array([0, 3]))
    with pytest.raises(ValueError, match="integer class indices"):
        model.decode(np.zeros((2, 2), np.float32), np.array([0.0, 1.0]))
    for call in (lambda: model.decode(np.zeros((2, 2), np.float32)), lambda: model.encode(x),
                 lambda: model.sample(2), lambda: model.reconstruct(x), lambda: model(x),
                 lambda: model.log_importance_weights(x, 2)):
        with pytest.raises(ValueError, match="pass labels="):
            call()
    with pytest.raises(ValueError, match=r"\(images, labels\)"):
        model.fit(tf.data.Dataset.from_tensor_slices(x).batch(4), verbose=0)
    with pytest.raises(ValueError, match=r"\(images, labels\)"):
        model.fit(x, verbose=0)
    with pytest.raises(ValueError, match=r"Class labels must be in \[0, 3\); got values 3\.\.5\."):
        model.fit(x, y + 3, verbose=0)  # checked before the step (and inside it, for datasets)
    with pytest.raises(ValueError, match="one input"):
        keras_vae.VAE(model.encoder, model.decoder, 2)  # conditional networks need a condition
    with pytest.raises(ValueError, match=r"condition input must be \(batch, 4\)"):
        keras_vae.VAE(model.encoder, model.decoder, 2, condition=Condition.classes(4))
    with pytest.raises(ValueError, match="needs num_classes"):
        keras_vae.build_vae((8, 8, 1), 2, architecture="mlp", variant="cvae")
    with pytest.raises(ValueError, match="not both"):
        keras_vae.build_vae((8, 8, 1), 2, architecture="mlp", variant="cvae", num_classes=3, label_dim=3)


def test_networks_take_the_condition_as_a_second_input():
    inner_encoder = keras_vae.mlp_encoder((8, 8, 1 + 3), 2, hidden_units=(8,))
    encoder = keras_vae.conditional_encoder(inner_encoder, (8, 8, 1), 3)
    decoder = keras_vae.conditional_decoder(keras_vae.mlp_decoder((8, 8, 1), 2 + 3, hidden_units=(8,)), 2, 3)
    assert [tuple(t.shape) for t in encoder.inputs] == [(None, 8, 8, 1), (None, 3)]
    assert [tuple(t.shape) for t in decoder.inputs] == [(None, 2), (None, 3)]
    model = keras_vae.VAE(encoder, decoder, 2, condition=Condition.classes(3))
    x, y = stripes(2)
    # The condition is tiled over the pixels as extra channels of the encoder's input.
    one_hot = np.eye(3, dtype=np.float32)[y]
    tiled = np.concatenate([x, np.broadcast_to(one_hot[:, None, None, :], (2, 8, 8, 3))], axis=-1)
    np.testing.assert_allclose(model.encoder([x, one_hot]), inner_encoder(tiled), rtol=1e-6)
    assert model.reconstruct(x, y).shape == (2, 8, 8, 1)
