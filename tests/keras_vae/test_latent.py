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
    keras.utils.set_random_seed(0)  # fit's shuffling too: the same model on every run
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


@pytest.fixture(scope="module")
def conditionals():
    """Two small conditional VAEs on 8x8 images: class labels in [0, 3) and label vectors of size 2."""
    build = dict(architecture="mlp", hidden_units=(8,), variant="cvae", seed=0)
    return {"class": keras_vae.build_vae((8, 8, 1), 2, num_classes=3, **build),
            "vector": keras_vae.build_vae((8, 8, 1), 2, label_dim=2, **build)}


_LABELS = {"class": (np.array([0, 2]), np.array([2, 1, 0])),
           "vector": (np.array([[1.0, 0.0], [0.0, 1.0]], np.float32),
                      np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0]], np.float32))}


@pytest.mark.parametrize("kind", ["class", "vector"])
def test_style_transfer_decodes_each_content_code_under_each_target(conditionals, kind):
    cvae, (labels, targets) = conditionals[kind], _LABELS[kind]
    x = np.random.RandomState(1).rand(2, 8, 8, 1).astype(np.float32)
    grid = keras_vae.style_transfer(cvae, x, labels, targets)
    assert grid.shape == (2, 3, 8, 8, 1)
    codes = cvae.encode(x, labels).mean()
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(grid[i, j], cvae.decode(codes[i : i + 1], targets[j : j + 1])[0], atol=1e-6)
    assert np.abs(grid[:, 0] - grid[:, 1]).max() > 1e-3  # the target changes the image
    # Decoded under its own label, an image comes back as its reconstruction.
    own = keras_vae.style_transfer(cvae, x, labels, labels)
    np.testing.assert_allclose(own[[0, 1], [0, 1]], cvae.reconstruct(x, labels=labels), atol=1e-6)
    one = keras_vae.style_transfer(cvae, x[0], labels[0], targets[1])  # one image, one label, one target
    np.testing.assert_allclose(one, grid[:1, 1:2], atol=1e-6)


def test_style_transfer_refusals_name_the_argument(conditionals):
    cvae, x = conditionals["class"], np.zeros((2, 8, 8, 1), np.float32)
    with pytest.raises(ValueError, match=r"^labels: one per image \(2\) or one for all; got 3 labels"):
        keras_vae.style_transfer(cvae, x, [0, 1, 2], [0])
    with pytest.raises(ValueError, match=r"^target_labels: Class labels must be in \[0, 3\)"):
        keras_vae.style_transfer(cvae, x, [0, 1], [1, 5])
    with pytest.raises(ValueError, match=r"^labels: .*\[0, 3\)"):
        keras_vae.style_transfer(cvae, x, [-1, 1], [1])
    with pytest.raises(ValueError, match="target_labels is empty"):
        keras_vae.style_transfer(cvae, x, [0, 1], [])
    with pytest.raises(ValueError, match=r"^target_labels: Expected label vectors of shape \(batch, 2\)"):
        keras_vae.style_transfer(conditionals["vector"], x, [1.0, 0.0], [[1.0, 0.0, 1.0]])
    vae = keras_vae.build_vae((8, 8, 1), 2, architecture="mlp", hidden_units=(8,))
    with pytest.raises(ValueError, match="needs a conditional model"):
        keras_vae.style_transfer(vae, x, [0, 1], [0])


@pytest.mark.parametrize("kind", ["class", "vector"])
def test_latent_tools_take_one_label_per_input(conditionals, kind):
    cvae, (labels, targets) = conditionals[kind], _LABELS[kind]
    x = np.random.RandomState(2).rand(2, 8, 8, 1).astype(np.float32)
    codes = cvae.encode(x, labels).mean().numpy()  # each input under its own label
    strip = latent.interpolate(cvae, x[0], x[1], num_steps=5, labels=labels)
    np.testing.assert_allclose(strip[[0, -1]], cvae.reconstruct(x, labels=labels), atol=1e-6)
    path = latent.lerp(codes[0], codes[1], 5)
    mid = labels[0] if kind == "class" else 0.75 * labels[0] + 0.25 * labels[1]  # nearer end's class / blended
    np.testing.assert_allclose(strip[1], cvae.decode(path[1:2], mid[np.newaxis])[0], atol=1e-6)
    under = latent.interpolate(cvae, x[0], x[1], num_steps=5, labels=labels, decode_labels=targets[1])
    np.testing.assert_allclose(under, cvae.decode(path, np.stack([targets[1]] * 5)), atol=1e-6)

    mixed = latent.blend(cvae, x, [1.0, 3.0], labels=labels)
    heavy = labels[1] if kind == "class" else 0.25 * labels[0] + 0.75 * labels[1]
    np.testing.assert_allclose(mixed, cvae.decode((0.25 * codes[0] + 0.75 * codes[1])[None], heavy[None]), atol=1e-6)
    np.testing.assert_allclose(latent.blend(cvae, x, [1.0, 3.0], labels=labels, decode_labels=targets[0]),
                               cvae.decode((0.25 * codes[0] + 0.75 * codes[1])[None], targets[:1]), atol=1e-6)

    shift = np.full(2, 0.5, np.float32)
    np.testing.assert_allclose(latent.apply_attribute(cvae, x, shift, labels=labels),
                               cvae.decode(codes + 0.5, labels), atol=1e-6)
    np.testing.assert_allclose(latent.apply_attribute(cvae, x, shift, labels=labels, decode_labels=targets[:2]),
                               cvae.decode(codes + 0.5, targets[:2]), atol=1e-6)
    grid = latent.traverse(cvae, x[1], dims=[0], values=[0.0], labels=labels[1:])  # one input: its one label
    expected = codes[1].copy()
    expected[0] = 0.0
    np.testing.assert_allclose(grid[0, 0], cvae.decode(expected[None], labels[1:])[0], atol=1e-6)


def test_latent_tools_say_what_labels_they_take(conditionals):
    cvae, x = conditionals["class"], np.zeros((2, 8, 8, 1), np.float32)
    with pytest.raises(ValueError, match=r"traverse takes one input, so one label \(its own\); got 2 labels"):
        latent.traverse(cvae, x[0], labels=[0, 1])
    with pytest.raises(ValueError, match=r"interpolate takes two inputs \(start, end\), so one label or two; got 3"):
        latent.interpolate(cvae, x[0], x[1], labels=[0, 1, 2])
    with pytest.raises(ValueError, match="blend makes one image, so decode_labels is one label; got 2"):
        latent.blend(cvae, x, [1.0, 1.0], labels=[0, 1], decode_labels=[0, 1])
    with pytest.raises(ValueError, match="Got 3 labels for 2 inputs"):
        latent.apply_attribute(cvae, x, np.zeros(2, np.float32), labels=[0, 1, 2])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        latent.interpolate(cvae, x[0], x[1], labels=[0, 1], decode_labels=7)
