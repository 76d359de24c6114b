"""Sample quality of VAE, beta-VAE, FactorVAE and VAE-GAN, with the prior and with an ex-post GMM sampler.

For each dataset (the procedural sprites; MNIST from the shared test images, grey-scale, Bernoulli on
[0, 1]) and each variant: train a small conv model for ``--sprites-steps`` / ``--mnist-steps`` steps (an MNIST
step costs far less than a 64x64 sprite step), fit a GMM to its training codes,
then score ``--num-samples`` samples from the prior and from the GMM against held-out images: Fréchet
distance, precision and recall in the feature space of the package's own domain network
(`keras_vae.training.feature_networks`). A ``data`` row scores real training images the same way (the floor).

Example:

    python benchmarks/sample_quality.py --sprites-steps 250 --mnist-steps 1000 --data-dir ../shared/data
    python benchmarks/sample_quality.py --datasets sprites --variants vae factor_vae --sprites-steps 50   # smoke
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import RESULTS_DIR, machine, write_result  # noqa: E402

VARIANTS = {  # variant -> (build_vae variant, its options): the usual settings, discriminators kept small
    "vae": ("vae", {}),
    "beta_vae": ("beta_vae", {"beta": 4.0}),
    "factor_vae": ("factor_vae", {"gamma": 10.0, "discriminator_units": [256, 256]}),
    "vae_gan": ("vae_gan", {"discriminator_filters": [16, 32, 64]}),
}
NETWORK = {"filters": [16, 32], "dense_units": 128, "upsampling": "depth_to_space"}  # as configs/sprites_quick.yaml
LATENT_DIMS = {"sprites": 10, "mnist": 16}
MNIST_TRAIN = 8000  # of the 10,000 shared test images; the rest are the held-out reference


def load_data(dataset, data_dir, count):
    """``(train images, reference images)`` as numpy: ``count`` held-out images as the reference."""
    from keras_vae.training.data import load_examples

    if dataset == "mnist":
        images, _ = load_examples("mnist", "test", data_dir=data_dir)
        return images[:MNIST_TRAIN], images[MNIST_TRAIN:MNIST_TRAIN + count]
    train, _ = load_examples("sprites", "train", count=10_000, shuffle=True, seed=1)
    reference, _ = load_examples("sprites", "test", count=count, shuffle=True, seed=2)
    return train, reference


def train_model(variant, dataset, train_images, steps, batch_size, seed, learning_rate):
    """A small conv model of ``variant`` trained for ``steps`` steps; returns ``(model, seconds)``."""
    import keras
    import tensorflow as tf

    import keras_vae

    keras.utils.set_random_seed(seed)
    kind, options = VARIANTS[variant]
    model = keras_vae.build_vae(train_images.shape[1:], LATENT_DIMS[dataset], "conv", "bernoulli", kind, seed=seed,
                                **NETWORK, **options)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    data = (tf.data.Dataset.from_tensor_slices(train_images).shuffle(len(train_images), seed=seed).repeat()
            .batch(batch_size, drop_remainder=True))
    start = time.monotonic()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return model, time.monotonic() - start


def score_model(model, extractor, train_images, reference, num_samples, seed, gmm_components):
    """``{"prior": scores, "gmm": scores}``: samples of each sampler against ``reference``."""
    import numpy as np

    from keras_vae.sample_quality import sample_quality

    model.fit_sampler(train_images[:5000], kind="gmm", num_components=gmm_components, seed=seed)
    return {sampler: sample_quality(extractor, reference, np.asarray(model.sample(num_samples, seed=seed,
                                                                                  sampler=sampler)))
            for sampler in ("prior", "gmm")}


def run_dataset(dataset, args):
    """Rows ``{"dataset", "model", "sampler", frechet_distance, precision, recall, steps, train_seconds}``."""
    from keras_vae.sample_quality import sample_quality
    from keras_vae.training.feature_networks import get_feature_extractor

    extractor, info = get_feature_extractor(dataset, data_dir=args.data_dir, verbose=0)
    train_images, reference = load_data(dataset, args.data_dir, args.num_samples)
    rows = [{"dataset": dataset, "model": "data", "sampler": "-", "steps": 0, "train_seconds": 0.0,
             **sample_quality(extractor, reference, train_images[:args.num_samples])}]
    steps = getattr(args, f"{dataset}_steps")
    for variant in args.variants:
        model, seconds = train_model(variant, dataset, train_images, steps, args.batch_size, args.seed,
                                     args.learning_rate)
        for sampler, scores in score_model(model, extractor, train_images, reference, args.num_samples,
                                           args.seed, args.gmm_components).items():
            rows.append({"dataset": dataset, "model": variant, "sampler": sampler, "steps": steps,
                         "train_seconds": round(seconds, 1), **scores})
            print(format_row(rows[-1]), flush=True)
    return rows, info


def format_row(row):
    return (f"{row['dataset']:<8} {row['model']:<11} {row['sampler']:<6} {row['frechet_distance']:>9.2f} "
            f"{row['precision']:>9.3f} {row['recall']:>7.3f} {row['steps']:>6} {row['train_seconds']:>8.1f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["sprites", "mnist"], choices=["sprites", "mnist"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--sprites-steps", type=int, default=250, help="training steps per sprites model")
    parser.add_argument("--mnist-steps", type=int, default=1000, help="training steps per MNIST model")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--gmm-components", type=int, default=10, help="components of the gmm sampler")
    parser.add_argument("--num-samples", type=int, default=1000, help="generated and held-out images scored")
    parser.add_argument("--data-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(RESULTS_DIR, "sample_quality.json"))
    args = parser.parse_args(argv)

    start = time.monotonic()
    header = f"{'dataset':<8} {'model':<11} {'sampler':<6} {'frechet':>9} {'precision':>9} {'recall':>7} " \
             f"{'steps':>6} {'train_s':>8}"
    print(header)
    rows, networks = [], {}
    for dataset in args.datasets:
        dataset_rows, networks[dataset] = run_dataset(dataset, args)
        rows += dataset_rows
    print("\n" + header + "\n" + "\n".join(format_row(r) for r in rows))
    for dataset, info in networks.items():
        print(f"{dataset}: feature network {info['network']} held-out accuracy {info['accuracy']:.3f}")
    write_result(args.out, {
        "benchmark": "sample_quality", "machine": machine(), "seconds": round(time.monotonic() - start, 1),
        "budget": {"steps": {"sprites": args.sprites_steps, "mnist": args.mnist_steps},
                   "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                   "gmm_components": args.gmm_components, "num_samples": args.num_samples,
                   "network": NETWORK, "latent_dims": LATENT_DIMS, "variants": VARIANTS},
        "feature_networks": networks, "rows": rows,
    })


if __name__ == "__main__":
    main()
