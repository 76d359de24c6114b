"""Candidate models for `make train` on sprites at a fixed wall-clock training budget.

Trains one candidate (architecture, network options, KL weight ``--beta``, learning rate, batch) for
``--seconds`` of wall time, then reports its valid −ELBO (2,000 images), fits a ``--components``-component gmm
to 5,000 training codes, and scores 1,000 samples from the prior and from the gmm against 1,000 valid images
(Fréchet distance, precision, recall in the sprites feature network). Writes the sample grids and a grid of
18 valid images over their reconstructions as PNGs, appends the row to ``--out`` (JSON lines) and prints it.
One candidate per process, so candidates run one after another on a quiet machine compare fairly.

Example:

    python benchmarks/make_train_models.py --tag conv_d2s --beta 0.1 --learning-rate 2e-3 --components 30 \\
        --options '{"filters": [16, 32], "dense_units": 128, "upsampling": "depth_to_space"}'
    python benchmarks/make_train_models.py --tag mlp --architecture mlp --batch-size 128 \\
        --options '{"hidden_units": [512, 256]}' --beta 0.1 --seconds 150
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the project root
from bench_common import RESULTS_DIR, machine  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tag", required=True, help="name of the candidate (file names and the row)")
    parser.add_argument("--architecture", default="conv", choices=("conv", "mlp"))
    parser.add_argument("--options", default='{"filters": [16, 32], "dense_units": 128}',
                        help="network options as JSON (build_vae keywords)")
    parser.add_argument("--beta", type=float, default=1.0, help="KL weight")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=150.0, help="wall-clock training budget")
    parser.add_argument("--components", type=int, default=10, help="gmm components")
    parser.add_argument("--out", default=os.path.join(RESULTS_DIR, "make_train_models.jsonl"))
    parser.add_argument("--image-dir", default=os.path.join(RESULTS_DIR, "make_train_models"))
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    import keras_vae
    from keras_vae.images import image_grid
    from keras_vae.sample_quality import feature_extractor, sample_quality
    from keras_vae.training import feature_networks
    from keras_vae.training.data import get_dataset, load_examples

    keras.utils.set_random_seed(0)
    model = keras_vae.build_vae((64, 64, 1), args.latent_dim, args.architecture, "bernoulli", "vae", seed=0,
                                beta=args.beta, **json.loads(args.options))
    model.compile(optimizer=keras_vae.FusedAdam(args.learning_rate))
    data = get_dataset("sprites", "train", batch_size=args.batch_size, shuffle=True, seed=0).repeat()

    class WallClockStop(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start, self.steps = time.time(), 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            if time.time() - self.start > args.seconds:
                self.model.stop_training = True

    stop = WallClockStop()
    model.fit(data, epochs=1_000_000, steps_per_epoch=50, callbacks=[stop], verbose=0)
    seconds = time.time() - stop.start

    valid, _ = load_examples("sprites", "valid", count=2000, shuffle=True, seed=3)
    scores = model.evaluate(valid, batch_size=250, verbose=0, return_dict=True)
    train, _ = load_examples("sprites", "train", count=5000, shuffle=True, seed=1)
    model.fit_sampler(train, kind="gmm", num_components=args.components)
    network, _ = feature_networks.get_feature_network("sprites", verbose=0)
    extractor = feature_extractor(network)
    os.makedirs(args.image_dir, exist_ok=True)
    row = {"tag": args.tag, "settings": {k: v for k, v in vars(args).items() if k not in ("out", "image_dir")},
           "steps": stop.steps, "images": stop.steps * args.batch_size, "train_seconds": round(seconds, 1),
           "images_per_second": round(stop.steps * args.batch_size / seconds, 1),
           "valid": {k: round(float(v), 2) for k, v in scores.items()}, "machine": machine()}
    for sampler in ("prior", "gmm"):
        samples = np.asarray(model.sample(1000, seed=0, sampler=sampler))
        row[sampler] = {k: round(float(v), 3) for k, v in sample_quality(extractor, valid[:1000], samples).items()}
        keras.utils.save_img(os.path.join(args.image_dir, f"{args.tag}_{sampler}.png"), image_grid(samples[:36]))
    pairs = np.concatenate([valid[:18], np.asarray(model.reconstruct(valid[:18]))])
    keras.utils.save_img(os.path.join(args.image_dir, f"{args.tag}_reconstructions.png"), image_grid(pairs, columns=6))

    print(f"{'tag':<16} {'images':>8} {'img/s':>7} {'-ELBO':>7} {'rec':>6} {'kl':>6} {'FD prior':>9} {'FD gmm':>7} "
          f"{'prec gmm':>8} {'rec gmm':>7}")
    print(f"{args.tag:<16} {row['images']:>8} {row['images_per_second']:>7} {-row['valid']['elbo']:>7} "
          f"{row['valid']['reconstruction']:>6} {row['valid']['kl']:>6} {row['prior']['frechet_distance']:>9} "
          f"{row['gmm']['frechet_distance']:>7} {row['gmm']['precision']:>8} {row['gmm']['recall']:>7}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"\nappended to {args.out}")


if __name__ == "__main__":
    main()
