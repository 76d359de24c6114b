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
  >= 0.9) split between the shapes: real sprites split about evenly.

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


def score_model(path, clf, factors, real, train_images, args):
    import keras_vae

    model = keras_vae.load_vae(path, compile=False)
    if tuple(model.decoder.output_shape[1:]) != (64, 64, 1):
        raise SystemExit(f"{path}: not a sprites model (decoder output {model.decoder.output_shape[1:]})")
    reconstructions = np.asarray(model.reconstruct(real))
    predicted, confidence = verdicts(clf, reconstructions)
    row = {"model": path, "reconstruction_accuracy": accuracy_by_shape(predicted, factors[:, 0]),
           "reconstructions_confident": split(predicted, confidence)}
    fitted_here = args.refit_gmm or "gmm" not in getattr(model, "samplers", {})
    if fitted_here:
        model.fit_sampler(train_images, kind="gmm", num_components=args.gmm_components,
                          covariance_type=args.covariance_type, seed=args.seed)
    row["gmm_fitted_here"] = fitted_here
    for sampler in ("prior", "gmm"):
        samples = np.asarray(model.sample(args.examples, seed=args.seed, sampler=sampler,
                                          temperature=args.temperature))
        row[f"{sampler}_confident"] = split(*verdicts(clf, samples))
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
    rows = [{"model": "real sprites", "reconstruction_accuracy": accuracy_by_shape(real_verdicts[0], factors[:, 0]),
             "reconstructions_confident": split(*real_verdicts), "prior_confident": split(*real_verdicts),
             "gmm_confident": None}]
    rows += [score_model(path, clf, factors, real, train_images, args) for path in args.models]

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
    write_result(args.out, {"machine": machine(), "classifier": clf_info, "examples": args.examples,
                            "confident": CONFIDENT, "rows": rows})


if __name__ == "__main__":
    main()
