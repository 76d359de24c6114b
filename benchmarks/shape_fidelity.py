"""Does a sprites model draw the three shapes? A shape classifier's verdict on its reconstructions and samples.

The sample-quality metric (Fréchet distance in the sprites feature network) can rate samples close to the
data while every square has lost its corners. This benchmark asks the question of the `make train` issue
("most of the 36 samples are recognisable shapes") directly: it trains a shape-only classifier on rendered
sprites (cached under ``--work-dir``; held-out accuracy printed), then for each model

- reconstructs ``--examples`` sprites rendered from uniformly drawn factors and reports the classifier's shape
  accuracy on them, per shape (square, ellipse, heart), beside the real images' accuracy, and how the
  reconstructions split between confidently named shapes (the same measure as the samples': what a sampler
  could at best keep);
- draws ``--examples`` samples (prior, and the gmm sampler: the model's own, else, or with ``--refit-gmm``,
  fitted here to 5,000 training codes with 100 components as `make train` does, ``--covariance-type`` diag or
  full) and reports how the confidently classified ones (softmax
  >= 0.9) split between the shapes: real sprites split about evenly;
- for the same images, the intersection over union with the nearest real sprite (`SpriteBank`: every shape,
  scale and angle, matched around the centre of mass): how exactly an image is some sprite, whichever shape.

Models are ``.keras`` files (a run directory's ``best.keras``, a benchmark's saved model).

    python benchmarks/shape_fidelity.py runs/sprites_quick/best.keras
"""

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from bench_common import RESULTS_DIR, machine, write_result  # noqa: E402

CLASSIFIER_STEPS = 1200
CONFIDENT = 0.9


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help=".keras files of sprites models")
    parser.add_argument("--examples", type=int, default=1000, help="reconstructions and samples per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gmm-components", type=int, default=100,
                        help="components of the gmm fitted here to models that have none (make train: 100)")
    parser.add_argument("--covariance-type", default="diag", choices=("diag", "full"),
                        help="covariances of the gmm fitted here (make train: full)")
    parser.add_argument("--refit-gmm", action="store_true", help="fit the gmm here even to a model that has one")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="sampling temperature (the spread of the prior, or of each gmm component)")
    parser.add_argument("--work-dir", default=os.path.join(RESULTS_DIR, "shape_fidelity"),
                        help="where the shape classifier is cached")
    parser.add_argument("--out", default=os.path.join(RESULTS_DIR, "shape_fidelity.json"))
    args = parser.parse_args(argv)
    if args.examples < 36:
        parser.error("--examples must be >= 36")
    for path in args.models:
        if not os.path.isfile(path):
            parser.error(f"no such model file: {path}")
    return args


def shape_classifier(work_dir):
    """A 3-way shape classifier on sprites, trained for `CLASSIFIER_STEPS` steps of 128 (cached), and its
    held-out accuracy."""
    import json

    import keras

    from keras_vae.training import data

    path, info_path = os.path.join(work_dir, "shape_classifier.keras"), os.path.join(work_dir, "shape_classifier.json")
    if os.path.isfile(path) and os.path.isfile(info_path):
        with open(info_path) as f:
            return keras.saving.load_model(path), json.load(f)
    keras.utils.set_random_seed(0)
    conv = dict(kernel_size=3, strides=2, padding="same", activation="relu")
    clf = keras.Sequential([keras.Input((64, 64, 1)), keras.layers.Conv2D(32, **conv), keras.layers.Conv2D(64, **conv),
                            keras.layers.Conv2D(64, **conv), keras.layers.Flatten(),
                            keras.layers.Dense(128, activation="relu"), keras.layers.Dense(3)])
    clf.compile(keras.optimizers.Adam(2e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"])

    def shape_labels(images, factors):
        return images, factors[:, 0]

    train = data.get_dataset("sprites", "train", batch_size=128, shuffle=True, seed=0, with_labels=True)
    held_out = data.get_dataset("sprites", "valid", batch_size=500, with_labels=True).take(4)
    start = time.perf_counter()
    clf.fit(train.map(shape_labels).repeat(), steps_per_epoch=CLASSIFIER_STEPS, epochs=1, verbose=0)
    accuracy = clf.evaluate(held_out.map(shape_labels), verbose=0, return_dict=True)["accuracy"]
    info = {"steps": CLASSIFIER_STEPS, "batch_size": 128, "held_out_accuracy": round(float(accuracy), 4),
            "held_out_examples": 2000, "train_seconds": round(time.perf_counter() - start, 1)}
    os.makedirs(work_dir, exist_ok=True)
    clf.save(path)
    with open(info_path, "w") as f:
        json.dump(info, f)
    return clf, info


def verdicts(clf, images):
    """(predicted shape, confidence) of ``images``."""
    import tensorflow as tf

    p = tf.nn.softmax(clf.predict(images, batch_size=500, verbose=0)).numpy()
    return p.argmax(1), p.max(1)


def split(predicted, confidence):
    """How the confidently classified images split between the shapes, as fractions of all images."""
    from keras_vae.training.sprites import SHAPE_NAMES

    sure = confidence >= CONFIDENT
    return {name: round(float(np.mean(sure & (predicted == i))), 3) for i, name in enumerate(SHAPE_NAMES)}


def accuracy_by_shape(predicted, shapes):
    from keras_vae.training.sprites import SHAPE_NAMES

    out = {"all": round(float(np.mean(predicted == shapes)), 3)}
    for i, name in enumerate(SHAPE_NAMES):
        out[name] = round(float(np.mean(predicted[shapes == i] == i)), 3)
    return out


class SpriteBank:
    """Every (shape, scale, angle) of the sprites grid at two positions per axis, binarized and cut out around
    its centre of mass, to find the real sprite nearest to an image (`nearest_iou`)."""

    WINDOW = 40  # the largest turned sprite spans 27 pixels; room for the +-1 pixel shifts
    POSITIONS = (15, 16)  # two neighbouring grid positions per axis: two sub-pixel phases of the 64-pixel grid

    def __init__(self):
        from keras_vae.training import sprites

        grid = np.stack(np.meshgrid(*[np.arange(n) for n in sprites.FACTOR_SIZES[:3]], self.POSITIONS, self.POSITIONS,
                                    indexing="ij"), -1).reshape(-1, 5).astype("int32")
        self.templates = self.windows(sprites.render_sprites(grid).numpy(), shifts=False)[:, 0]

    @classmethod
    def windows(cls, images, shifts=True):
        """``[n, 9 or 1, WINDOW * WINDOW]`` binary cut-outs around each image's centre of mass (thresholded at
        0.5), moved by -1, 0 and +1 pixels on each axis when ``shifts``; all zeros for an empty image."""
        binary = np.asarray(images)[..., 0] >= 0.5
        half, pad = cls.WINDOW // 2, cls.WINDOW // 2 + 1
        padded = np.pad(binary, ((0, 0), (pad, pad), (pad, pad)))
        offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)] if shifts else [(0, 0)]
        out = np.zeros((len(binary), len(offsets), cls.WINDOW * cls.WINDOW), np.float32)
        rows, cols = np.arange(binary.shape[1]), np.arange(binary.shape[2])
        for n, image in enumerate(binary):
            mass = image.sum()
            if not mass:
                continue
            cy = int(round(float((image.sum(1) * rows).sum() / mass))) + pad
            cx = int(round(float((image.sum(0) * cols).sum() / mass))) + pad
            for k, (dy, dx) in enumerate(offsets):
                y0, x0 = cy + dy - half, cx + dx - half
                out[n, k] = padded[n, y0 : y0 + cls.WINDOW, x0 : x0 + cls.WINDOW].reshape(-1)
        return out

    def nearest_iou(self, images, chunk=250):
        """Each image's intersection over union with the nearest sprite of the bank (best of nine shifts)."""
        best = []
        sizes = self.templates.sum(1)
        for start in range(0, len(images), chunk):
            cut = self.windows(images[start : start + chunk])
            flat = cut.reshape(-1, cut.shape[-1])
            inter = flat @ self.templates.T
            iou = inter / np.maximum(flat.sum(1, keepdims=True) + sizes[None] - inter, 1.0)
            best.append(iou.max(1).reshape(len(cut), -1).max(1))
        return np.concatenate(best)


def iou_summary(iou):
    """The median nearest-sprite IoU and the shares of images at or above 0.8 and 0.9."""
    return {"median": round(float(np.median(iou)), 3), "at_least_0.8": round(float(np.mean(iou >= 0.8)), 3),
            "at_least_0.9": round(float(np.mean(iou >= 0.9)), 3)}


def score_model(path, clf, factors, real, train_images, args, bank):
    import keras_vae

    model = keras_vae.load_vae(path, compile=False)
    if tuple(model.decoder.output_shape[1:]) != (64, 64, 1):
        raise SystemExit(f"{path}: not a sprites model (decoder output {model.decoder.output_shape[1:]})")
    reconstructions = np.asarray(model.reconstruct(real))
    predicted, confidence = verdicts(clf, reconstructions)
    row = {"model": path, "reconstruction_accuracy": accuracy_by_shape(predicted, factors[:, 0]),
           "reconstructions_confident": split(predicted, confidence),
           "reconstructions_nearest_iou": iou_summary(bank.nearest_iou(reconstructions))}
    fitted_here = args.refit_gmm or "gmm" not in getattr(model, "samplers", {})
    if fitted_here:
        model.fit_sampler(train_images, kind="gmm", num_components=args.gmm_components,
                          covariance_type=args.covariance_type, seed=args.seed)
    row["gmm_fitted_here"] = fitted_here
    for sampler in ("prior", "gmm"):
        samples = np.asarray(model.sample(args.examples, seed=args.seed, sampler=sampler,
                                          temperature=args.temperature))
        row[f"{sampler}_confident"] = split(*verdicts(clf, samples))
        row[f"{sampler}_nearest_iou"] = iou_summary(bank.nearest_iou(samples))
    return row


def main(argv=None):
    args = parse_args(argv)
    from keras_vae.training import data, sprites

    clf, clf_info = shape_classifier(args.work_dir)
    print(f"shape classifier: held-out accuracy {clf_info['held_out_accuracy']:.3f} "
          f"({clf_info['steps']} steps of {clf_info['batch_size']})")
    rng = np.random.default_rng(args.seed + 1)
    factors = np.stack([rng.integers(0, size, args.examples) for size in sprites.FACTOR_SIZES], 1).astype("int32")
    real = sprites.render_sprites(factors).numpy()
    train_images, _ = data.load_examples("sprites", "train", count=5000, shuffle=True, seed=args.seed)
    real_verdicts = verdicts(clf, real)
    bank = SpriteBank()
    real_iou = iou_summary(bank.nearest_iou(real))
    rows = [{"model": "real sprites", "reconstruction_accuracy": accuracy_by_shape(real_verdicts[0], factors[:, 0]),
             "reconstructions_confident": split(*real_verdicts), "prior_confident": split(*real_verdicts),
             "gmm_confident": None, "reconstructions_nearest_iou": real_iou, "prior_nearest_iou": real_iou,
             "gmm_nearest_iou": None}]
    rows += [score_model(path, clf, factors, real, train_images, args, bank) for path in args.models]

    print(f"\n{args.examples} images each; accuracy of the shape named for reconstructions (real row: the images), "
          f"and the share of reconstructions and samples classified with >= {CONFIDENT} confidence as each shape\n")
    print("| model | shape accuracy: all / square / ellipse / heart | reconstructions: square / ellipse / heart "
          "| prior samples: square / ellipse / heart | gmm samples: square / ellipse / heart |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        acc = row["reconstruction_accuracy"]
        cells = [" / ".join(f"{v:.3f}" for v in acc.values())]
        for key in ("reconstructions_confident", "prior_confident", "gmm_confident"):
            cells.append(" / ".join(f"{v:.3f}" for v in row[key].values()) if row[key] else "-")
        print(f"| {row['model']} | " + " | ".join(cells) + " |")
    print("\nIntersection over union of each image (thresholded at 0.5) with the nearest real sprite (every shape, "
          "scale and angle, cut out around the centre of mass, best of nine 1-pixel shifts): median / share >= 0.8 "
          "/ share >= 0.9\n")
    print("| model | reconstructions | prior samples | gmm samples |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        cells = [" / ".join(f"{v:.3f}" for v in row[key].values()) if row[key] else "-"
                 for key in ("reconstructions_nearest_iou", "prior_nearest_iou", "gmm_nearest_iou")]
        print(f"| {row['model']} | " + " | ".join(cells) + " |")
    write_result(args.out, {"machine": machine(), "classifier": clf_info, "examples": args.examples,
                            "confident": CONFIDENT, "rows": rows})


if __name__ == "__main__":
    main()
