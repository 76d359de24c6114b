"""`sprites`: the dSprites factor grid rendered procedurally in TensorFlow ops (no download).

Every image is a 64x64 binary sprite fully determined by five factor indices
``(shape, scale, orientation, pos_x, pos_y)`` on the grid 3 x 6 x 40 x 32 x 32 (737,280 images):

- shape: 0 square, 1 ellipse, 2 heart
- scale: 6 values, linearly spaced in [0.5, 1]
- orientation: 40 angles ``2*pi*k/40`` in [0, 2*pi)
- pos_x, pos_y: 32 positions each, left to right and top to bottom

The grid is never materialized: datasets carry indices and render batches on the fly.

Example:

>>> images = render_sprites([[0, 5, 0, 16, 16], [2, 0, 10, 0, 31]])   # [2, 64, 64, 1] float32, 0/1
>>> factors = factors_from_index(tf.range(4))                          # [4, 5] int32
"""

import math

import numpy as np
import tensorflow as tf

IMAGE_SIZE = 64
FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPE_NAMES = ("square", "ellipse", "heart")
NUM_IMAGES = math.prod(FACTOR_SIZES)

# Half-size of a scale-1 sprite and the span of sprite centres, as fractions of the image side:
# the largest rotated sprite (about 1.3 half-sizes) stays inside the frame at every position.
_HALF_SIZE = 0.16
_CENTRE_MIN, _CENTRE_MAX = 0.2, 0.8
# Row-major strides of the factor grid: index = sum(factor * stride).
_STRIDES = tuple(int(np.prod(FACTOR_SIZES[i + 1 :])) for i in range(len(FACTOR_SIZES)))


def factor_values(factor_indices):
    """Factor values ``[n, 5]`` float32 for indices ``[n, 5]``: shape id, scale, angle (rad), x, y in [0, 1]."""
    f = tf.cast(_checked_factors(factor_indices), tf.float32)
    shape, scale, orientation, pos_x, pos_y = tf.unstack(f, axis=-1)
    return tf.stack(
        [
            shape,
            0.5 + 0.5 * scale / (FACTOR_SIZES[1] - 1),
            2.0 * math.pi * orientation / FACTOR_SIZES[2],
            pos_x / (FACTOR_SIZES[3] - 1),
            pos_y / (FACTOR_SIZES[4] - 1),
        ],
        axis=-1,
    )


def factors_from_index(index):
    """Factor indices ``[..., 5]`` int32 of flat grid indices in ``[0, NUM_IMAGES)``."""
    index = tf.cast(index, tf.int64)[..., tf.newaxis]
    factors = (index // tf.constant(_STRIDES, tf.int64)) % tf.constant(FACTOR_SIZES, tf.int64)
    return tf.cast(factors, tf.int32)


def index_from_factors(factor_indices):
    """Flat grid indices ``[n]`` int64 of factor indices ``[n, 5]`` (inverse of `factors_from_index`)."""
    f = tf.cast(_checked_factors(factor_indices), tf.int64)
    return tf.reduce_sum(f * tf.constant(_STRIDES, tf.int64), axis=-1)


def _checked_factors(factor_indices):
    f = tf.convert_to_tensor(factor_indices)
    if not f.dtype.is_integer:
        raise ValueError(f"Sprite factor indices must be integers, got dtype {f.dtype.name}.")
    if f.shape.rank != 2 or f.shape[-1] != len(FACTOR_SIZES):
        raise ValueError(f"Sprite factor indices must have shape (n, {len(FACTOR_SIZES)}), got {tuple(f.shape)}.")
    f = tf.cast(f, tf.int32)
    sizes = tf.constant(FACTOR_SIZES, tf.int32)
    if tf.executing_eagerly():
        bad = np.argwhere((f.numpy() < 0) | (f.numpy() >= np.array(FACTOR_SIZES)))
        if bad.size:
            row, col = bad[0]
            raise ValueError(
                f"Sprite factor {FACTOR_NAMES[col]} = {int(f[row, col])} (row {row}) is outside "
                f"[0, {FACTOR_SIZES[col]})."
            )
        return f
    with tf.control_dependencies(
        [
            tf.debugging.assert_non_negative(f, message="sprite factor indices must be >= 0"),
            tf.debugging.assert_less(f, sizes, message=f"sprite factor indices must be < {FACTOR_SIZES}"),
        ]
    ):
        return tf.identity(f)


def render_sprites(factor_indices):
    """Renders sprites for factor indices ``[n, 5]`` (int) as binary float32 images ``[n, 64, 64, 1]``.

    Deterministic and pure TF ops (usable inside tf.data and tf.function). Raises ValueError for a
    wrong shape or dtype, or (when run eagerly) an index outside its factor's range.
    """
    values = factor_values(factor_indices)
    shape_id = tf.cast(values[:, 0], tf.int32)
    half = _HALF_SIZE * values[:, 1][:, None, None]
    angle = values[:, 2][:, None, None]
    centre_x = (_CENTRE_MIN + (_CENTRE_MAX - _CENTRE_MIN) * values[:, 3])[:, None, None]
    centre_y = (_CENTRE_MIN + (_CENTRE_MAX - _CENTRE_MIN) * values[:, 4])[:, None, None]

    pixel = (tf.range(IMAGE_SIZE, dtype=tf.float32) + 0.5) / IMAGE_SIZE
    dx = pixel[None, None, :] - centre_x  # columns
    dy = pixel[None, :, None] - centre_y  # rows (downwards)
    cos, sin = tf.cos(angle), tf.sin(angle)
    # Pixel offsets in the sprite's own frame (rotated by -angle), in units of its half-size.
    u = (cos * dx + sin * dy) / half
    v = (-sin * dx + cos * dy) / half

    square = tf.maximum(tf.abs(u), tf.abs(v)) <= 0.8
    ellipse = tf.square(u) + tf.square(v / 0.5) <= 1.0
    hx, hy = 1.15 * u, 0.15 - 1.15 * v  # the heart's point faces down in the unrotated sprite
    heart = tf.pow(tf.square(hx) + tf.square(hy) - 1.0, 3) - tf.square(hx) * tf.pow(hy, 3) <= 0.0

    masks = tf.stack([square, ellipse, heart], axis=1)  # [n, 3, H, W]
    chosen = tf.gather(masks, shape_id, axis=1, batch_dims=1)
    return tf.cast(chosen, tf.float32)[..., tf.newaxis]
