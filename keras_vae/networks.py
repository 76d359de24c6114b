"""Encoder and decoder network builders for H x W x C images.

Encoders map images to ``2 * latent_dim`` numbers (posterior mean and raw scale); decoders map
``latent_dim`` codes to an ``(H, W, C)`` tensor of likelihood parameters (logits or means).
All builders return built `keras.Sequential` models, so they serialize with the VAE.

Example:

>>> enc = conv_encoder((64, 64, 1), latent_dim=10)
>>> dec = conv_decoder((64, 64, 1), latent_dim=10)
>>> dec(enc(tf.zeros([2, 64, 64, 1]))[:, :10]).shape
TensorShape([2, 64, 64, 1])
"""

import math

import keras
import numpy as np


def _check_image_shape(image_shape):
    image_shape = tuple(int(d) for d in image_shape)
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(f"image shape must be (height, width, channels) with positive sizes, got {image_shape}")
    return image_shape


@keras.saving.register_keras_serializable(package="keras_vae")
class GatedDense(keras.layers.Layer):
    """A dense layer whose outputs are gated by a learned sigmoid: ``(x W + b) * sigmoid(x V + c)``.

    The hidden layer of the VampPrior paper's MLPs (Tomczak & Welling 2018; gated linear units, Dauphin et
    al. 2017).

    Example:

    >>> keras.Sequential([keras.Input((784,)), GatedDense(300), GatedDense(300)])
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        if self.units < 1:
            raise ValueError(f"units must be >= 1, got {units}")
        self.linear = keras.layers.Dense(self.units, name="linear")
        self.gate = keras.layers.Dense(self.units, activation="sigmoid", name="gate")

    def build(self, input_shape):
        self.linear.build(input_shape)
        self.gate.build(input_shape)

    def call(self, x):
        return self.linear(x) * self.gate(x)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _hidden_layers(hidden_units, activation, dropout, gated):
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    layers = []
    for units in hidden_units:
        layers.append(GatedDense(units) if gated else keras.layers.Dense(units, activation=activation))
        if dropout:  # regularizes against memorizing a fixed training set (e.g. statically binarized MNIST)
            layers.append(keras.layers.Dropout(float(dropout)))
    return layers


def mlp_encoder(image_shape, latent_dim, hidden_units=(512, 256), activation="relu", dropout=0.0, gated=False,
                name="encoder"):
    """A fully connected encoder: flatten, hidden layers (each followed by ``dropout``), then ``2 * latent_dim``
    outputs. ``gated=True`` makes the hidden layers `GatedDense` (``activation`` is then unused)."""
    image_shape = _check_image_shape(image_shape)
    layers = [keras.Input(shape=image_shape), keras.layers.Flatten()]
    layers += _hidden_layers(hidden_units, activation, dropout, gated)
    layers.append(keras.layers.Dense(2 * latent_dim, name="posterior_params"))
    return keras.Sequential(layers, name=name)


def mlp_decoder(image_shape, latent_dim, hidden_units=(256, 512), activation="relu", dropout=0.0, gated=False,
                name="decoder"):
    """A fully connected decoder: hidden layers (each followed by ``dropout``; `GatedDense` with ``gated``), then
    one output per pixel, reshaped to the image."""
    image_shape = _check_image_shape(image_shape)
    layers = [keras.Input(shape=(latent_dim,))]
    layers += _hidden_layers(hidden_units, activation, dropout, gated)
    layers += [keras.layers.Dense(math.prod(image_shape)), keras.layers.Reshape(image_shape)]
    return keras.Sequential(layers, name=name)


def conv_encoder(
    image_shape, latent_dim, filters=(32, 64), kernel_size=3, dense_units=256, activation="relu", name="encoder"
):
    """A convolutional encoder: one stride-2 convolution per entry of ``filters``, then dense layers."""
    image_shape = _check_image_shape(image_shape)
    layers = [keras.Input(shape=image_shape)]
    layers += [
        keras.layers.Conv2D(f, kernel_size, strides=2, padding="same", activation=activation) for f in filters
    ]
    layers += [keras.layers.Flatten()]
    if dense_units:
        layers.append(keras.layers.Dense(dense_units, activation=activation))
    layers.append(keras.layers.Dense(2 * latent_dim, name="posterior_params"))
    return keras.Sequential(layers, name=name)


UPSAMPLING = ("transpose", "resize", "depth_to_space", "spatial_broadcast", "implicit")

# Options only the decoder takes: `build_networks` keeps them from the encoder.
DECODER_ONLY_OPTIONS = ("upsampling", "render_units", "convs_per_level", "coordinate_channels")


@keras.saving.register_keras_serializable(package="keras_vae")
class DepthToSpace(keras.layers.Layer):
    """Rearranges ``(H, W, s*s*C)`` features into ``(s*H, s*W, C)`` (TFLite's builtin DEPTH_TO_SPACE op).

    The sub-pixel upsampling of Shi et al. (2016): a convolution at the low resolution followed by this
    layer replaces a transposed convolution, without the transposed convolution's cost on device.

    Example:

    >>> DepthToSpace(2)(tf.zeros([1, 7, 7, 128])).shape
    TensorShape([1, 14, 14, 32])
    """

    def __init__(self, block_size=2, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)
        if self.block_size < 2:
            raise ValueError(f"block_size must be >= 2, got {block_size}")

    def call(self, x):
        import tensorflow as tf  # the model library runs on the TensorFlow backend

        return tf.nn.depth_to_space(x, self.block_size)

    def compute_output_shape(self, input_shape):
        batch, height, width, depth = input_shape
        s = self.block_size
        scaled = [None if d is None else d * s for d in (height, width)]
        return (batch, *scaled, None if depth is None else depth // (s * s))

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


def pixel_coordinates(height, width):
    """Each pixel's (x, y), from -1 to 1 along the columns and the rows: float32 ``[1, height, width, 2]``."""
    ys, xs = np.meshgrid(np.linspace(-1.0, 1.0, height), np.linspace(-1.0, 1.0, width), indexing="ij")
    return np.stack([xs, ys], axis=-1)[np.newaxis].astype(np.float32)


@keras.saving.register_keras_serializable(package="keras_vae")
class SpatialBroadcast(keras.layers.Layer):
    """Tiles codes ``[batch, d]`` over a ``height x width`` grid and appends the pixel coordinates: ``[batch,
    height, width, d + 2]`` (channels ``d`` and ``d + 1`` are x and y, from -1 to 1).

    The start of the spatial broadcast decoder (Watters et al. 2019): convolutions that see a pixel's
    coordinates beside the code can place a sprite by comparing the two, which favours codes with one
    dimension per position axis. TFLite runs it with builtin ops (TILE, CONCATENATION).

    Example:

    >>> SpatialBroadcast(4, 6)(tf.zeros([2, 10])).shape
    TensorShape([2, 4, 6, 12])
    """

    def __init__(self, height, width, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width = int(height), int(width)
        if min(self.height, self.width) < 1:
            raise ValueError(f"height and width must be >= 1, got {height} x {width}")
        self._coordinates = pixel_coordinates(self.height, self.width)

    def call(self, codes):
        import tensorflow as tf  # the model library runs on the TensorFlow backend

        batch = tf.shape(codes)[0]
        tiled = tf.tile(codes[:, tf.newaxis, tf.newaxis, :], [1, self.height, self.width, 1])
        coordinates = tf.tile(tf.constant(self._coordinates, dtype=codes.dtype), [batch, 1, 1, 1])
        return tf.concat([tiled, coordinates], axis=-1)

    def compute_output_shape(self, input_shape):
        depth = input_shape[-1]
        return (input_shape[0], self.height, self.width, None if depth is None else depth + 2)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


@keras.saving.register_keras_serializable(package="keras_vae")
class CoordinateChannels(keras.layers.Layer):
    """Appends each pixel's x and y (from -1 to 1) to a feature map: ``[batch, H, W, C] -> [batch, H, W, C + 2]``.

    CoordConv (Liu et al. 2018): a convolution that sees where it is can draw a shape at a place and angle the
    code gives, instead of inferring position from zero padding. TFLite runs it with builtin ops (ADD,
    CONCATENATION).

    Example:

    >>> CoordinateChannels()(tf.zeros([2, 4, 6, 8])).shape
    TensorShape([2, 4, 6, 10])
    """

    def call(self, x):
        import tensorflow as tf  # the model library runs on the TensorFlow backend

        coordinates = tf.constant(pixel_coordinates(x.shape[1], x.shape[2]), dtype=x.dtype)
        return tf.concat([x, tf.zeros_like(x[..., :2]) + coordinates], axis=-1)  # broadcast over the batch

    def compute_output_shape(self, input_shape):
        depth = input_shape[-1]
        return (*input_shape[:-1], None if depth is None else depth + 2)


@keras.saving.register_keras_serializable(package="keras_vae")
class CoordinateMLP(keras.layers.Layer):
    """Codes ``[batch, d]`` to ``[batch, height, width, outputs]``: at every pixel an MLP of the pixel's (x, y) in
    [-1, 1], whose first layer's weights and every layer's biases are computed from the code.

    An implicit decoder (an occupancy function of the coordinates, as in Chen & Zhang 2019, with the code as a
    hypernetwork's input): each first-layer unit is a half-plane whose direction and offset the code sets, so a
    sprite's edges and corners are drawn directly at any angle instead of painted by upsampling convolutions.
    ``code_units`` > 0 puts a dense ReLU layer between the code and those weights. TFLite runs it with builtin
    ops (FULLY_CONNECTED, MUL, ADD).

    Example:

    >>> CoordinateMLP(32, 32, units=(64, 64), outputs=4)(tf.zeros([2, 10])).shape
    TensorShape([2, 32, 32, 4])
    """

    # Coordinates span [-4, 4], not [-1, 1]: steeper logit ramps per unit of weight, so an edge can be sharp
    # without large weights (the value benchmarks/decoder_rendering.py measured; not tuned).
    COORDINATE_SCALE = 4.0

    def __init__(self, height, width, units=(64, 64), code_units=256, outputs=1, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width = int(height), int(width)
        self.units, self.code_units, self.outputs = tuple(int(u) for u in units), int(code_units), int(outputs)
        if min(self.height, self.width) < 1:
            raise ValueError(f"height and width must be >= 1, got {height} x {width}")
        if not self.units or min(self.units) < 1 or self.code_units < 0 or self.outputs < 1:
            raise ValueError(f"CoordinateMLP needs units >= 1 (at least one layer), code_units >= 0 and outputs >= 1; "
                             f"got units={units}, code_units={code_units}, outputs={outputs}")
        self._coordinates = self.COORDINATE_SCALE * pixel_coordinates(self.height, self.width)
        self.code_layer = keras.layers.Dense(self.code_units, activation="relu", name="code") if self.code_units else None
        self.half_planes = keras.layers.Dense(3 * self.units[0], name="half_planes")
        self.hidden = [keras.layers.Dense(u, name=f"hidden_{i}") for i, u in enumerate(self.units[1:])]
        self.biases = [keras.layers.Dense(u, name=f"bias_{i}") for i, u in enumerate(self.units[1:])]
        self.logits = keras.layers.Dense(self.outputs, name="logits")

    def build(self, input_shape):
        code_shape = (None, self.code_units) if self.code_layer else (None, input_shape[-1])
        if self.code_layer:
            self.code_layer.build((None, input_shape[-1]))
        self.half_planes.build(code_shape)
        for previous, hidden, bias in zip(self.units, self.hidden, self.biases):
            hidden.build((None, previous))
            bias.build(code_shape)
        self.logits.build((None, self.units[-1]))

    def call(self, codes):
        import tensorflow as tf  # the model library runs on the TensorFlow backend

        code = self.code_layer(codes) if self.code_layer else codes
        x_weight, y_weight, offset = tf.split(self.half_planes(code), 3, axis=-1)  # [batch, units[0]] each
        xy = tf.constant(self._coordinates, dtype=codes.dtype)
        features = tf.nn.relu(xy[..., :1] * x_weight[:, None, None, :] + xy[..., 1:] * y_weight[:, None, None, :]
                              + offset[:, None, None, :])
        for hidden, bias in zip(self.hidden, self.biases):
            features = tf.nn.relu(hidden(features) + bias(code)[:, None, None, :])
        return self.logits(features)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, self.outputs)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width, "units": list(self.units),
                "code_units": self.code_units, "outputs": self.outputs}


def _upsampling_layers(upsampling, filters, channels, kernel_size, activation, convs_per_level=1,
                       coordinate_channels=False):
    """Layers that double the feature map ``len(filters)`` times and end in ``channels`` likelihood parameters.

    ``"transpose"``: one stride-2 transposed convolution per filter count, then a stride-1 one to ``channels``.
    ``"resize"``: nearest-neighbour 2x resizing and a convolution per filter count, then that convolution.
    ``"depth_to_space"``: a convolution at the low resolution to ``4 * f`` channels and `DepthToSpace` per
    further filter count ``f`` (the first one is the input's), the last of them straight to ``channels``
    parameters: no full-resolution feature map and about 70% of the default decoder's FLOPs on 28x28.
    ``"spatial_broadcast"``: the layers after `SpatialBroadcast` (half the image's resolution): one stride-1
    convolution per filter count, then one to ``4 * channels`` and `DepthToSpace` to the full resolution.
    """
    def conv(units, name=None, act=activation):
        return keras.layers.Conv2D(units, kernel_size, padding="same", activation=act, name=name)

    if upsampling == "transpose":
        layers = [keras.layers.Conv2DTranspose(f, kernel_size, strides=2, padding="same", activation=activation)
                  for f in filters]
        # The last layer as a stride-1 transposed convolution (the same function class as a convolution, as
        # in the keras.io example): TF's CPU gradient kernels of a convolution to a few channels are about 3x
        # slower, which halved the conv model's training speed (benchmarks/profile_step.py).
        return layers + [keras.layers.Conv2DTranspose(channels, kernel_size, padding="same", name="likelihood_params")]
    if upsampling == "resize":
        layers = []
        for f in filters:
            layers += [keras.layers.UpSampling2D(2, interpolation="nearest"), conv(f)]
        return layers + [conv(channels, "likelihood_params", None)]
    if upsampling == "spatial_broadcast":
        return [conv(f) for f in filters] + [conv(4 * channels, "likelihood_params", None), DepthToSpace(2)]
    if upsampling != "depth_to_space":
        raise ValueError(f"upsampling must be one of {UPSAMPLING}, got {upsampling!r}")
    layers = []
    for i, f in enumerate(filters):  # f: the channels of the feature map at this level
        layers += [CoordinateChannels()] if coordinate_channels else []
        layers += [conv(f) for _ in range(convs_per_level - 1)]
        last = i == len(filters) - 1
        upsample = conv(4 * channels, "likelihood_params", None) if last else conv(4 * filters[i + 1])
        layers += [upsample, DepthToSpace(2)]
    return layers


def conv_decoder(
    image_shape, latent_dim, filters=(64, 32), kernel_size=3, dense_units=256, activation="relu",
    upsampling="transpose", render_units=(64, 64), convs_per_level=1, coordinate_channels=False, name="decoder"
):
    """A convolutional decoder mirroring `conv_encoder`.

    It starts from a ``ceil(H / 2^n) x ceil(W / 2^n) x filters[0]`` feature map, doubles it ``n =
    len(filters)`` times and crops any excess so odd sizes (e.g. 28 with n=3) work. ``upsampling`` picks how
    (`_upsampling_layers`): ``"transpose"`` (default), ``"resize"`` or ``"depth_to_space"`` (the decoder
    for devices: convolutions at low resolution and TFLite's DEPTH_TO_SPACE, no TRANSPOSE_CONV) or
    ``"spatial_broadcast"`` (Watters et al. 2019: no dense layers; the code is tiled over a half-resolution grid
    with the pixel coordinates, `SpatialBroadcast`, and ``filters`` are stride-1 convolutions there; for
    disentangling position; ``dense_units`` is then the encoder's only) or ``"implicit"`` (`CoordinateMLP`
    at half the image's resolution with ``render_units`` per pixel and ``dense_units`` for the code, four
    parameters per pixel and `DepthToSpace`: it draws corners from informative codes, e.g. the true factors of
    benchmarks/decoder_rendering.py, but a VAE trained with it for `make train`'s budget did worse, BENCHMARKS.md;
    ``filters`` and ``kernel_size`` are then the encoder's only). The depth-to-space decoder also takes
    ``convs_per_level`` (stride-1 convolutions per resolution, counting the one that upsamples) and
    ``coordinate_channels`` (`CoordinateChannels` before each level's convolutions).

    Example:

    >>> conv_decoder((28, 28, 1), 16, upsampling="depth_to_space").output_shape
    (None, 28, 28, 1)
    """
    image_shape = _check_image_shape(image_shape)
    height, width, channels = image_shape
    if int(convs_per_level) < 1:
        raise ValueError(f"convs_per_level must be >= 1, got {convs_per_level}")
    if upsampling != "depth_to_space" and (convs_per_level != 1 or coordinate_channels):
        raise ValueError(f"convs_per_level and coordinate_channels are options of upsampling='depth_to_space', "
                         f"not of {upsampling!r}")
    if upsampling == "implicit":
        h0, w0 = math.ceil(height / 2), math.ceil(width / 2)
        render = CoordinateMLP(h0, w0, units=render_units, code_units=dense_units, outputs=4 * channels,
                               name="likelihood_params")
        layers = [keras.Input(shape=(latent_dim,)), render, DepthToSpace(2)]
        return keras.Sequential(layers + _crop(h0 * 2 - height, w0 * 2 - width), name=name)
    if upsampling == "spatial_broadcast":
        h0, w0 = math.ceil(height / 2), math.ceil(width / 2)
        layers = [keras.Input(shape=(latent_dim,)), SpatialBroadcast(h0, w0)]
        layers += _upsampling_layers(upsampling, tuple(filters), channels, kernel_size, activation)
        return keras.Sequential(layers + _crop(h0 * 2 - height, w0 * 2 - width), name=name)
    factor = 2 ** len(filters)
    h0, w0 = math.ceil(height / factor), math.ceil(width / factor)
    layers = [keras.Input(shape=(latent_dim,))]
    if dense_units:
        layers.append(keras.layers.Dense(dense_units, activation=activation))
    layers += [
        keras.layers.Dense(h0 * w0 * filters[0], activation=activation),
        keras.layers.Reshape((h0, w0, filters[0])),
    ]
    layers += _upsampling_layers(upsampling, tuple(filters), channels, kernel_size, activation, int(convs_per_level),
                                 bool(coordinate_channels))
    return keras.Sequential(layers + _crop(h0 * factor - height, w0 * factor - width), name=name)


def _crop(extra_h, extra_w):
    """A centred crop of ``extra_h x extra_w`` excess pixels, or nothing."""
    if not (extra_h or extra_w):
        return []
    return [keras.layers.Cropping2D(((extra_h // 2, extra_h - extra_h // 2), (extra_w // 2, extra_w - extra_w // 2)))]


ARCHITECTURES = {"mlp": (mlp_encoder, mlp_decoder), "conv": (conv_encoder, conv_decoder)}


def conditional_encoder(inner, image_shape, condition_dim, name="encoder"):
    """``[images, condition] -> inner(images with the condition tiled as extra channels)``.

    ``inner`` must take ``(H, W, C + condition_dim)`` images (e.g. ``conv_encoder`` built for that shape).
    """
    height, width, _ = image_shape
    images = keras.Input(shape=tuple(image_shape), name="images")
    condition = keras.Input(shape=(condition_dim,), name="condition")
    tiled = keras.layers.Reshape((height, width, condition_dim))(keras.layers.RepeatVector(height * width)(condition))
    outputs = inner(keras.layers.Concatenate(axis=-1)([images, tiled]))
    return keras.Model([images, condition], outputs, name=name)


def conditional_decoder(inner, latent_dim, condition_dim, name="decoder"):
    """``[z, condition] -> inner(concat(z, condition))``; ``inner`` takes ``latent_dim + condition_dim`` codes."""
    z = keras.Input(shape=(latent_dim,), name="z")
    condition = keras.Input(shape=(condition_dim,), name="condition")
    outputs = inner(keras.layers.Concatenate(axis=-1)([z, condition]))
    return keras.Model([z, condition], outputs, name=name)


def build_networks(architecture, image_shape, encoder_latent_dim, decoder_latent_dim, condition_dim=0, **options):
    """An encoder (images -> ``2 * encoder_latent_dim`` outputs) and a mirrored decoder (``decoder_latent_dim``
    codes -> images).

    With ``condition_dim`` > 0 both take the condition as a second input (`conditional_encoder`,
    `conditional_decoder`). ``options`` are the architecture's network options.
    """
    make_encoder, make_decoder = ARCHITECTURES[architecture]
    decoder_options = dict(options)
    options = {k: v for k, v in options.items() if k not in DECODER_ONLY_OPTIONS}
    for key in ("hidden_units", "filters"):
        if key in decoder_options:  # the decoder mirrors the encoder
            decoder_options[key] = tuple(reversed(decoder_options[key]))
    if not condition_dim:
        return (make_encoder(image_shape, encoder_latent_dim, **options),
                make_decoder(image_shape, decoder_latent_dim, **decoder_options))
    height, width, channels = image_shape
    inner_encoder = make_encoder((height, width, channels + condition_dim), encoder_latent_dim, name="image_encoder",
                                 **options)
    inner_decoder = make_decoder(image_shape, decoder_latent_dim + condition_dim, name="code_decoder",
                                 **decoder_options)
    return (conditional_encoder(inner_encoder, image_shape, condition_dim),
            conditional_decoder(inner_decoder, decoder_latent_dim, condition_dim))
