"""`keras-vae sample`: a grid of samples from a run directory, a SavedModel or a .tflite file.

Example:

    keras-vae sample saved_models/vae -n 16 --out grid.png --seed 0
    keras-vae sample runs/cvae --label 7 --out sevens.png            # class-conditional
    keras-vae sample runs/sprites_cvae --label 0,2,1,3 --out s.png   # conditioned on a label vector
"""

import os

from keras_vae.cli.common import IMAGE_FORMATS, int_range, output_path, positive_float, positive_int, seed
from keras_vae.export.limits import MAX_SAMPLES


def parse_label(text):
    """``--label``: a class index (``7``) or a comma-separated label vector (``0,2.5,1``)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--label must be a class index or comma-separated numbers, got {text!r}.") from None
    if "," in text:
        return values
    return int(values[0]) if values[0].is_integer() and "." not in text else values[0]


def add_command(subparsers):
    """Registers ``sample`` on ``subparsers`` (TensorFlow is imported only when it runs)."""
    parser = subparsers.add_parser(
        "sample",
        help="write a grid of samples from a run directory, a SavedModel or a .tflite file",
        description="Draws images from the prior and writes them as one grid image (PNG, JPEG, ...).",
    )
    parser.add_argument("source", metavar="SOURCE", help="RUN_DIR, FILE.keras, SAVED_MODEL_DIR (or BASE/NAME), FILE.tflite")
    parser.add_argument("-n", "--num-samples", type=int_range(1, MAX_SAMPLES, name="num_samples"), default=16,
                        help=f"number of images (default 16, at most {MAX_SAMPLES})")
    parser.add_argument("--out", required=True, type=output_path(IMAGE_FORMATS, create_folder=True),
                        help=f"output image file ({', '.join(IMAGE_FORMATS)}), e.g. grid.png")
    parser.add_argument("--seed", type=seed, help="random seed (same seed, same grid; a SavedModel and its .tflite files agree)")
    parser.add_argument("--temperature", type=positive_float, default=1.0, help="prior temperature (default 1.0)")
    parser.add_argument("--label", help="for conditional models: a class index, or a label vector as 0,1,2.5")
    parser.add_argument("--columns", type=positive_int, help="images per row (default: a square grid)")
    parser.add_argument("--sampler", default="prior",
                        help="'prior' (default) or an ex-post sampler fitted with `keras-vae fit-sampler` (e.g. gmm)")
    parser.set_defaults(func=run)


def run(args):
    import keras

    import keras_vae
    from keras_vae.export.sampling import sample_images

    label = None if args.label is None else parse_label(args.label)
    images = sample_images(args.source, args.num_samples, args.seed, args.temperature, label, args.sampler)
    grid = keras_vae.image_grid(images, columns=args.columns)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    keras.utils.save_img(args.out, grid, scale=False)
    print(f"Wrote {len(images)} samples to {args.out}")
    return 0
