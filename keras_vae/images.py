"""Tiling images into one grid picture (for sample sheets, reconstructions, TensorBoard).

Example:

>>> grid = image_grid(vae.sample(16, seed=0), columns=4)    # uint8 [4*H + 3*pad, 4*W + 3*pad, C]
>>> keras.utils.save_img("samples.png", grid)
"""

import math

import numpy as np


def image_grid(images, columns=None, padding=1, pad_value=255):
    """Tiles ``[n, H, W, C]`` images with values in [0, 1] into a uint8 ``[rows*H, columns*W, C]`` grid.

    Args:
        images: array-like of floats in [0, 1] (values outside are clipped).
        columns: images per row (default: the smallest square that holds them all).
        padding: pixels between tiles.
        pad_value: uint8 value of the padding.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"Expected images of shape (n, H, W, C), got shape {images.shape}.")
    if not np.all(np.isfinite(images)):
        raise ValueError("Images contain non-finite values (NaN or Inf).")
    n, height, width, channels = images.shape
    if n == 0:
        raise ValueError("No images to tile.")
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.full(
        (rows * height + (rows - 1) * padding, columns * width + (columns - 1) * padding, channels),
        pad_value,
        dtype=np.uint8,
    )
    pixels = np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        top, left = r * (height + padding), c * (width + padding)
        grid[top : top + height, left : left + width] = pixels[i]
    return grid
