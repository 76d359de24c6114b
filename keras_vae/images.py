"""Image pixels in and out: tiling images into one grid picture (sample sheets, reconstructions, TensorBoard)
and decoding an image file (the studio's uploads) into a model's input pixels.

Example:

>>> grid = image_grid(vae.sample(16, seed=0), columns=4)    # uint8 [4*H + 3*pad, 4*W + 3*pad, C]
>>> keras.utils.save_img("samples.png", grid)
>>> decode_image(open("digit.png", "rb").read(), (28, 28, 1)).shape
(28, 28, 1)
"""

import io
import math

import numpy as np

from keras_vae.limits import integer_at_least

DECODED_FORMATS = ("PNG", "JPEG")
# Decompression bombs: a small file claiming a huge image. 40 million pixels decode in well under a second
# and at most 160 MB as 32-bit pixels.
MAX_IMAGE_PIXELS = 40_000_000
# Pillow mode -> (mode the pixels are resized in, value of full intensity). Transparent images keep their alpha
# through the resize (Pillow resizes premultiplied) and are composited on white afterwards; 16-bit greyscale
# PNGs (modes I;16 and I) are resized as 32-bit integers and scaled by 65535.
_WORKING_MODES = {
    "1": ("L", 255), "L": ("L", 255), "LA": ("LA", 255), "PA": ("RGBA", 255),
    "RGB": ("RGB", 255), "RGBA": ("RGBA", 255), "CMYK": ("RGB", 255), "YCbCr": ("RGB", 255),
    "I": ("I", 65535), "I;16": ("I", 65535), "I;16B": ("I", 65535), "I;16L": ("I", 65535), "I;16N": ("I", 65535),
}
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601-2, as Pillow's convert("L")


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
    padding = integer_at_least("padding", padding, 0)
    columns = math.ceil(math.sqrt(n)) if columns is None else integer_at_least("columns", columns, 1)
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


def _open_image(data, max_pixels):
    """The Pillow image of a PNG/JPEG file's bytes, fully decoded; ValueError for anything else."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ValueError("The image is empty: give a PNG or JPEG file.")
    damaged = "The image is not a valid PNG or JPEG image: it is damaged or truncated ({})."
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:  # Pillow's own limit, checked before ours can see the size
        raise ValueError(f"The image is too large: more than {2 * Image.MAX_IMAGE_PIXELS} pixels (a decompression "
                         f"bomb); the limit is {max_pixels} pixels.") from None
    except UnidentifiedImageError:
        raise ValueError("The image is not a PNG or JPEG image (the file could not be decoded).") from None
    except (OSError, SyntaxError, ValueError) as err:  # a known header with corrupt fields
        raise ValueError(damaged.format(err)) from None
    if image.format not in DECODED_FORMATS:
        raise ValueError(f"The image is a {image.format} file; use a PNG or JPEG file.")
    if image.width * image.height > max_pixels:
        raise ValueError(f"The image is too large: {image.width}x{image.height} pixels "
                         f"({image.width * image.height}); the limit is {max_pixels} pixels.")
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt data inside a valid header
        raise ValueError(damaged.format(err)) from None
    return image


def _working_image(image):
    """``(image, full intensity)`` in a mode Pillow resizes without losing range or transparency."""
    if image.mode == "P":
        return image.convert("RGBA" if image.has_transparency_data else "RGB"), 255
    if image.mode not in _WORKING_MODES:
        raise ValueError(f"Images of mode {image.mode} are not supported; use an 8-bit or 16-bit greyscale, RGB or "
                         "RGBA PNG, or a JPEG.")
    mode, full = _WORKING_MODES[image.mode]
    return (image if image.mode == mode else image.convert(mode)), full


def decode_image(data, image_shape, max_pixels=MAX_IMAGE_PIXELS):
    """Pixels ``[H, W, C]`` float32 in [0, 1] of a PNG/JPEG file's bytes, centre-cropped and resized to ``image_shape``.

    Every mode a PNG or JPEG holds is scaled by its own range: 1-bit, 8-bit and 16-bit greyscale, palette, RGB,
    CMYK. Transparent pixels (LA, RGBA, palette transparency) are composited on white, as an image viewer shows
    them. Colour images are turned to grey (ITU-R 601-2 luma) for one-channel models and grey images repeated
    for three-channel ones. Raises ValueError saying what is wrong: empty, not a PNG/JPEG, damaged, too large
    (more than ``max_pixels``), an unsupported mode.

    >>> decode_image(open("photo.jpg", "rb").read(), (64, 64, 3)).shape
    (64, 64, 3)
    """
    from PIL import Image

    height, width, channels = image_shape
    if channels not in (1, 3):
        raise ValueError(f"Images can be decoded for models of 1 or 3 channels, not {channels}.")
    image, full = _working_image(_open_image(data, max_pixels))
    # Crop to the model's aspect ratio first, so photos are not squashed.
    scale = min(image.width / width, image.height / height)
    crop_w, crop_h = round(width * scale), round(height * scale)
    left, top = (image.width - crop_w) // 2, (image.height - crop_h) // 2
    image = image.resize((width, height), Image.Resampling.LANCZOS, box=(left, top, left + crop_w, top + crop_h))
    pixels = np.asarray(image, np.float32).reshape(height, width, -1) / full
    if image.mode in ("LA", "RGBA"):
        colour, alpha = pixels[..., :-1], np.clip(pixels[..., -1:], 0.0, 1.0)
        pixels = colour * alpha + (1.0 - alpha)  # on white
    if channels == 1 and pixels.shape[-1] == 3:
        pixels = pixels @ _LUMA[:, None]
    elif channels == 3 and pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    return np.clip(pixels, 0.0, 1.0)  # Lanczos overshoots at edges
