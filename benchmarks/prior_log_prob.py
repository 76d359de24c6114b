"""Gaussian-mixture prior density: tfp's `MixtureSameFamily.log_prob` against `gaussian_mixture_log_prob`.

The VampPrior's density is evaluated at every importance sample when the NLL is estimated (K=5000
codes per image), so its cost matters. Both functions run side by side in one process on the same
codes and components (random, or a trained model's VampPrior with ``--model``), traced with
`tf.function`; each time is the median of repeated calls after a warm-up. Prints a table and writes JSON.

    python benchmarks/prior_log_prob.py                                  # about 1 minute on 2 CPU cores
    python benchmarks/prior_log_prob.py --model runs/binarized_mnist_ladder_vamp_iw/best.keras
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import keras_vae  # noqa: E402
from bench_common import RESULTS_DIR, machine, write_result  # noqa: E402
from keras_vae.priors import gaussian_mixture_log_prob  # noqa: E402

tfd = tfp.distributions
ERROR_CODES = 2000  # codes per row checked against float64 tfp


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a .keras VAE with a mixture prior (default: random components)")
    parser.add_argument("--components", type=int, default=500, help="components of the random mixture")
    parser.add_argument("--latent-dim", type=int, default=32, help="dimensions of the random mixture")
    parser.add_argument("--codes", type=int, nargs="+", default=[1000, 10000, 50000], help="codes per call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(RESULTS_DIR, "prior_log_prob.json"))
    return parser.parse_args(argv)


def mixture(args):
    if args.model:
        return keras_vae.load_vae(args.model).prior.distribution()
    rng = np.random.default_rng(0)
    loc = rng.standard_normal((args.components, args.latent_dim)).astype(np.float32)
    scale = np.exp(rng.uniform(-2.5, 0.0, (args.components, args.latent_dim))).astype(np.float32)
    return tfd.MixtureSameFamily(tfd.Categorical(logits=tf.zeros([args.components])),
                                 tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale))


def median_seconds(fn, z, repeats):
    fn(z).numpy()  # trace and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(z).numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    args = parse_args(argv)
    dist = mixture(args)
    num_components, latent_dim = dist.components_distribution.mean().shape
    tfp_log_prob = tf.function(dist.log_prob)
    matmul_log_prob = tf.function(lambda z: gaussian_mixture_log_prob(dist, z))
    rows = []
    for n in args.codes:
        z = dist.sample(n, seed=(1, 2))  # codes where the density is not negligible
        checked = z[:ERROR_CODES]  # the float64 reference broadcasts [codes, components, dims]: kept small
        exact = tfd.MixtureSameFamily(
            tfd.Categorical(logits=tf.cast(dist.mixture_distribution.logits_parameter(), tf.float64)),
            tfd.MultivariateNormalDiag(tf.cast(dist.components_distribution.mean(), tf.float64),
                                       tf.cast(dist.components_distribution.stddev(), tf.float64)),
        ).log_prob(tf.cast(checked, tf.float64)).numpy()
        row = {"codes": n}
        for name, fn in (("tfp", tfp_log_prob), ("matmul", matmul_log_prob)):
            row[f"{name}_seconds"] = median_seconds(fn, z, args.repeats)
            row[f"{name}_max_abs_error"] = float(np.abs(fn(z).numpy()[:ERROR_CODES] - exact).max())
        row["speedup"] = row["tfp_seconds"] / row["matmul_seconds"]
        rows.append(row)

    print(f"mixture of {num_components} diagonal Gaussians in {latent_dim} dimensions "
          f"({'model ' + args.model if args.model else 'random components'}); "
          f"max abs errors (nats) against float64 tfp on the first {ERROR_CODES} codes")
    print(f"{'codes':>7} {'tfp s':>9} {'matmul s':>9} {'speedup':>8} {'tfp err':>9} {'matmul err':>10}")
    for r in rows:
        print(f"{r['codes']:>7} {r['tfp_seconds']:>9.4f} {r['matmul_seconds']:>9.4f} {r['speedup']:>7.1f}x "
              f"{r['tfp_max_abs_error']:>9.1e} {r['matmul_max_abs_error']:>10.1e}")
    write_result(args.out, {"benchmark": "prior_log_prob", "model": args.model, "components": num_components,
                            "latent_dim": latent_dim, "repeats": args.repeats, "rows": rows, "machine": machine()})


if __name__ == "__main__":
    main()
