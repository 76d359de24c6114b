"""The convolutional decoder's upsampling choices, in particular the device decoder (depth_to_space)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae
from keras_vae.networks import (UPSAMPLING, CoordinateChannels, CoordinateMLP, DepthToSpace, SpatialBroadcast,
                                build_networks, conv_decoder)


@pytest.mark.parametrize("upsampling", UPSAMPLING)
@pytest.mark.parametrize("shape", [(28, 28, 1), (16, 16, 3), (12, 20, 2)])
def test_every_upsampling_decodes_to_the_image_shape(upsampling, shape):
    decoder = conv_decoder(shape, 5, filters=(16, 8), dense_units=32, upsampling=upsampling)
    assert decoder.output_shape == (None, *shape)
    assert decoder(tf.zeros([3, 5])).shape == (3, *shape)


def test_the_device_decoder_has_no_transposed_convolution_and_no_full_resolution_features():
    decoder = conv_decoder((28, 28, 1), 16, upsampling="depth_to_space")
    kinds = [type(layer).__name__ for layer in decoder.layers]
    assert "Conv2DTranspose" not in kinds and kinds.count("DepthToSpace") == 2
    convs = [layer for layer in decoder.layers if isinstance(layer, keras.layers.Conv2D)]
    # 7x7x64 -> conv to 4*32 -> 14x14x32 -> conv to 4*1 -> 28x28x1 logits
    assert [c.filters for c in convs] == [128, 4] and convs[-1].activation is keras.activations.linear


def test_unknown_upsampling_is_a_value_error():
    with pytest.raises(ValueError, match="upsampling must be one of"):
        conv_decoder((28, 28, 1), 4, upsampling="bilinear")


def test_depth_to_space_layer_matches_tensorflow_and_round_trips_its_config():
    layer = DepthToSpace(2)
    x = tf.reshape(tf.range(2 * 3 * 3 * 8, dtype=tf.float32), [2, 3, 3, 8])
    np.testing.assert_array_equal(layer(x), tf.nn.depth_to_space(x, 2))
    assert layer.compute_output_shape((None, 3, 3, 8)) == (None, 6, 6, 2)
    assert DepthToSpace.from_config(layer.get_config()).block_size == 2
    with pytest.raises(ValueError, match="block_size must be >= 2"):
        DepthToSpace(1)


def test_build_networks_gives_the_upsampling_to_the_decoder_only():
    encoder, decoder = build_networks("conv", (16, 16, 1), 4, 4, filters=(8, 16), upsampling="depth_to_space")
    assert any(isinstance(layer, DepthToSpace) for layer in decoder.layers)
    assert encoder.output_shape == (None, 8)


def test_spatial_broadcast_tiles_the_code_beside_the_pixel_coordinates():
    layer = SpatialBroadcast(3, 4)
    codes = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    out = layer(codes).numpy()
    assert out.shape == (2, 3, 4, 4) == layer.compute_output_shape((2, 3, 4, 2))
    np.testing.assert_array_equal(out[1, :, :, :2], np.broadcast_to([3.0, 4.0], (3, 4, 2)))
    np.testing.assert_allclose(out[0, 0, :, 2], np.linspace(-1, 1, 4))  # x runs along the columns
    np.testing.assert_allclose(out[0, :, 0, 3], np.linspace(-1, 1, 3))  # y along the rows
    np.testing.assert_array_equal(out[0, :, :, 2:], out[1, :, :, 2:])
    restored = SpatialBroadcast.from_config(layer.get_config())
    assert (restored.height, restored.width) == (3, 4)
    with pytest.raises(ValueError, match="height and width must be >= 1"):
        SpatialBroadcast(0, 4)


def test_the_spatial_broadcast_decoder_has_no_dense_layer_and_works_at_half_resolution():
    decoder = conv_decoder((28, 28, 1), 6, filters=(16, 8), dense_units=64, upsampling="spatial_broadcast")
    assert not [layer for layer in decoder.layers if isinstance(layer, keras.layers.Dense)]
    convs = [layer for layer in decoder.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [16, 8, 4] and convs[0].input.shape == (None, 14, 14, 8)


def test_coordinate_mlp_draws_half_planes_that_the_code_turns():
    layer = CoordinateMLP(8, 8, units=(1,), code_units=0, outputs=1)
    layer.build((None, 3))
    # The code (a, b, c) is the half-plane's own weights: relu(a*x + b*y + c), then logits = that feature.
    layer.half_planes.set_weights([np.eye(3, dtype=np.float32), np.zeros(3, np.float32)])
    layer.logits.set_weights([np.ones((1, 1), np.float32), np.zeros(1, np.float32)])
    out = layer(tf.constant([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])).numpy()[..., 0]
    xy = CoordinateMLP.COORDINATE_SCALE * np.linspace(-1, 1, 8)
    np.testing.assert_allclose(out[0], np.broadcast_to(np.maximum(xy, 0), (8, 8)), atol=1e-5)  # right half lit
    np.testing.assert_allclose(out[1], np.broadcast_to(np.maximum(-xy, 0)[:, None], (8, 8)), atol=1e-5)  # top half
    assert layer.compute_output_shape((2, 3)) == (2, 8, 8, 1)


def test_coordinate_mlp_round_trips_its_config_and_refuses_bad_sizes():
    layer = CoordinateMLP(4, 6, units=(16, 8), code_units=32, outputs=4)
    assert layer(tf.zeros([2, 5])).shape == (2, 4, 6, 4)
    restored = CoordinateMLP.from_config(layer.get_config())
    assert (restored.height, restored.width, restored.units, restored.code_units, restored.outputs) == (
        4, 6, (16, 8), 32, 4)
    with pytest.raises(ValueError, match="height and width must be >= 1"):
        CoordinateMLP(0, 4)
    with pytest.raises(ValueError, match="units >= 1"):
        CoordinateMLP(4, 4, units=())


def test_the_implicit_decoder_renders_at_half_resolution_with_render_units():
    decoder = conv_decoder((28, 28, 1), 6, filters=(16, 8), dense_units=64, upsampling="implicit", render_units=(32,))
    render = decoder.get_layer("likelihood_params")
    assert isinstance(render, CoordinateMLP) and (render.height, render.units, render.outputs) == (14, (32,), 4)
    assert decoder.output_shape == (None, 28, 28, 1)


def test_coordinate_channels_append_each_pixels_x_and_y():
    layer = CoordinateChannels()
    x = tf.reshape(tf.range(2 * 3 * 4 * 1, dtype=tf.float32), [2, 3, 4, 1])
    out = layer(x).numpy()
    assert out.shape == (2, 3, 4, 3) == layer.compute_output_shape((2, 3, 4, 1))
    np.testing.assert_array_equal(out[..., :1], x)
    np.testing.assert_allclose(out[0, 0, :, 1], np.linspace(-1, 1, 4))  # x runs along the columns
    np.testing.assert_allclose(out[0, :, 0, 2], np.linspace(-1, 1, 3))  # y along the rows
    np.testing.assert_array_equal(out[0, ..., 1:], out[1, ..., 1:])
    assert isinstance(CoordinateChannels.from_config(layer.get_config()), CoordinateChannels)


def test_the_device_decoder_takes_more_convolutions_per_level_and_coordinate_channels():
    decoder = conv_decoder((28, 28, 1), 16, upsampling="depth_to_space", convs_per_level=2, coordinate_channels=True)
    convs = [layer for layer in decoder.layers if isinstance(layer, keras.layers.Conv2D)]
    # each level: its coordinates appended, a convolution at its width, then the one to 4x the next width
    assert [c.filters for c in convs] == [64, 128, 32, 4] and convs[-1].activation is keras.activations.linear
    assert [c.input.shape[-1] for c in convs] == [66, 64, 34, 32]
    assert decoder.output_shape == (None, 28, 28, 1)
    with pytest.raises(ValueError, match="options of upsampling='depth_to_space', not of 'transpose'"):
        conv_decoder((28, 28, 1), 16, convs_per_level=2)
    with pytest.raises(ValueError, match="convs_per_level must be >= 1"):
        conv_decoder((28, 28, 1), 16, upsampling="depth_to_space", convs_per_level=0)


def device_vae(shape=(16, 16, 1), latent_dim=4, upsampling="depth_to_space", **options):
    """A small conv VAE with the device decoder or another decoder that ends in `DepthToSpace`."""
    encoder, decoder = build_networks("conv", shape, latent_dim, latent_dim, filters=(8, 16), dense_units=32,
                                      upsampling=upsampling, **options)
    return keras_vae.VAE(encoder, decoder, latent_dim, seed=0)


@pytest.mark.parametrize("upsampling, options", [
    ("depth_to_space", {}), ("depth_to_space", {"convs_per_level": 2, "coordinate_channels": True}),
    ("spatial_broadcast", {}), ("implicit", {})])
def test_a_vae_with_a_depth_to_space_decoder_trains_and_round_trips_through_keras_files(tmp_path, upsampling, options):
    keras.utils.set_random_seed(0)
    images = (np.random.default_rng(0).random((256, 16, 16, 1)) > 0.7).astype(np.float32)
    model = device_vae(upsampling=upsampling, **options)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(images, batch_size=32, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    path = str(tmp_path / "device.keras")
    model.save(path)
    loaded = keras_vae.load_vae(path)
    z = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(loaded.decode(z), model.decode(z), atol=1e-6)
    assert any(isinstance(layer, DepthToSpace) for layer in loaded.decoder.layers)
