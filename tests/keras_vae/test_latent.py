import keras
import numpy as np
import pytest

import keras_vae
from keras_vae import latent


def _boxes(n, seed):
    """14x14 binary images of random filled rectangles (a module fixture cannot use conftest's function ones)."""
    rng = np.random.RandomState(seed)
    images = np.zeros((n, 14, 14, 1), np.float32)
    for image, (top, left, height, width) in zip(images, rng.randint([0, 0, 3, 3], [7, 7, 7, 7], size=(n, 4))):
        image[top : top + height, left : left + width] = 1.0
    return images


@pytest.fixture(scope="module")
def trained():
    """A small VAE trained on 14x14 rectangles, and the images."""
    images = _boxes(128, seed=3)
    vae = keras_vae.build_vae((14, 14, 1), 3, architecture="mlp", hidden_units=(48,), seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(5e-3))
    vae.fit(images, batch_size=32, epochs=25, verbose=0)
    return vae, images


def test_lerp_and_slerp_paths():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    path = latent.lerp(a, b, 5)
    np.testing.assert_allclose(path[[0, -1]], [a, b])
    np.testing.assert_allclose(path[2], [0.5, 0.5])
    arc = latent.slerp(a, b, 5)
    np.testing.assert_allclose(arc[[0, -1]], [a, b], atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(arc, axis=1), 1.0, rtol=1e-6)  # stays on the circle
    np.testing.assert_allclose(arc[2], [np.sqrt(0.5), np.sqrt(0.5)], rtol=1e-6)
    np.testing.assert_allclose(latent.slerp(a, 2 * a, 3), latent.lerp(a, 2 * a, 3))  # parallel: a line
    with pytest.raises(ValueError, match="num_steps"):
        latent.lerp(a, b, 1)


def test_interpolation_between_images_starts_and_ends_at_their_reconstructions(trained):
    vae, images = trained
    for method in ("linear", "spherical"):
        strip = latent.interpolate(vae, images[0], images[1], num_steps=6, method=method)
        assert strip.shape == (6, 14, 14, 1)
        np.testing.assert_allclose(strip[0], vae.reconstruct(images[:1])[0], atol=1e-6)
        np.testing.assert_allclose(strip[-1], vae.reconstruct(images[1:2])[0], atol=1e-6)
    codes = latent.encode_means(vae, images[:2])
    from_codes = latent.interpolate(vae, codes[0], codes[1], num_steps=6)
    np.testing.assert_allclose(from_codes, latent.interpolate(vae, images[0], images[1], num_steps=6), atol=1e-6)
    np.testing.assert_allclose(from_codes[3], vae.decode(latent.lerp(codes[0], codes[1], 6)[3:4])[0], atol=1e-6)
    with pytest.raises(ValueError, match="Unknown interpolation"):
        latent.interpolate(vae, codes[0], codes[1], method="cubic")
    with pytest.raises(ValueError, match=r"got \(5,\)"):
        latent.interpolate(vae, np.zeros(5), codes[1])


def test_attribute_vector_moves_images_towards_the_attribute(trained):
    vae, images = trained
    mass = images.reshape(len(images), 14, 14)
    left = mass[:, :, :7].sum((1, 2)) > mass[:, :, 7:].sum((1, 2))  # more ink on the left half
    vector = latent.attribute_vector(vae, images, left)
    codes = latent.encode_means(vae, images)
    np.testing.assert_allclose(vector, codes[left].mean(0) - codes[~left].mean(0), rtol=1e-6)
    right_images = images[~left][:10]
    edited = latent.apply_attribute(vae, right_images, vector, strength=1.0)
    before = vae.reconstruct(right_images).numpy()

    def left_share(x):
        return x[:, :, :7].sum() / x.sum()

    assert left_share(edited) > left_share(before) + 0.1
    with pytest.raises(ValueError, match="both with and without"):
        latent.attribute_vector(vae, images, np.ones(len(images), bool))


def test_blend_is_the_normalized_weighted_mean_code(trained):
    vae, images = trained
    codes = latent.encode_means(vae, images[:3])
    mixed = latent.blend(vae, images[:3], weights=[2.0, 1.0, 1.0])
    np.testing.assert_allclose(mixed, vae.decode((0.5 * codes[0] + 0.25 * codes[1] + 0.25 * codes[2])[None]),
                               atol=1e-6)
    np.testing.assert_allclose(latent.blend(vae, images[:2], [1.0, 0.0]), vae.reconstruct(images[:1]), atol=1e-6)
    with pytest.raises(ValueError, match="not all zero"):
        latent.blend(vae, images[:2], [0.0, 0.0])


def test_traversal_sweeps_one_dimension_at_a_time(trained):
    vae, images = trained
    values = np.array([-2.0, 0.0, 2.0], np.float32)
    grid = latent.traverse(vae, images[0], dims=[0, 2], values=values)
    assert grid.shape == (2, 3, 14, 14, 1)
    code = latent.encode_means(vae, images[:1])[0]
    expected = code.copy()
    expected[2] = 2.0
    np.testing.assert_allclose(grid[1, 2], vae.decode(expected[None])[0], atol=1e-6)
    assert not np.allclose(grid[0, 0], grid[0, 2])  # the sweep changes the image
    with pytest.raises(ValueError, match="dims"):
        latent.traverse(vae, images[0], dims=[3])


def test_conditional_models_take_labels():
    cvae = keras_vae.build_vae((8, 8, 1), 2, architecture="mlp", hidden_units=(8,), variant="cvae", num_classes=3)
    x = np.random.RandomState(0).rand(2, 8, 8, 1).astype(np.float32)
    strip = latent.interpolate(cvae, x[0], x[1], num_steps=3, labels=2)
    z = cvae.encode(x, np.array([2, 2])).mean()
    np.testing.assert_allclose(strip[[0, -1]], cvae.decode(z, np.array([2, 2])), atol=1e-6)
    with pytest.raises(ValueError, match="needs labels"):
        latent.interpolate(cvae, x[0], x[1])
    assert latent.traverse(cvae, x[0], values=[0.0, 1.0], labels=1).shape == (2, 2, 8, 8, 1)
    # One label per input encodes each input with its own label.
    codes = latent.encode_means(cvae, x, labels=[0, 1])
    np.testing.assert_allclose(codes, cvae.encode(x, np.array([0, 1])).mean(), rtol=1e-6)
    np.testing.assert_allclose(latent.apply_attribute(cvae, x, np.ones(2, np.float32), labels=[0, 1]),
                               cvae.decode(codes + 1.0, np.array([0, 1])), atol=1e-6)
    first = cvae.encode(x[:1], np.array([1])).mean()
    np.testing.assert_allclose(latent.blend(cvae, x, [1.0, 0.0], labels=[1, 1]), cvae.decode(first, np.array([1])),
                               atol=1e-6)
    vector = latent.attribute_vector(cvae, x, np.array([True, False]), labels=2)
    with_two = latent.encode_means(cvae, x, labels=2)
    np.testing.assert_allclose(vector, with_two[0] - with_two[1], rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="Got 3 labels for 2 inputs"):
        latent.encode_means(cvae, x, labels=[0, 1, 2])
    vae = keras_vae.build_vae((8, 8, 1), 2, architecture="mlp", hidden_units=(8,))
    with pytest.raises(ValueError, match="only for conditional models"):
        latent.encode_means(vae, x, labels=[0, 1])
