"""Disentanglement of VAE, beta-VAE and beta-TCVAE on the sprites grid (dSprites factors), briefly trained.

Trains each model for ``--steps`` steps on the sprites train split (the same MLP networks, 4096-512-256
as in Chen et al.'s dSprites setup but narrower, latent size, batch and seed), then measures on images rendered from uniformly drawn factors:
MIG (``--mig-examples`` codes) and the FactorVAE score (``--votes`` votes of ``--vote-batch``
images each, split 60/40 between fitting and scoring the majority-vote classifier). Prints a table
and writes JSON under benchmarks/results/.

Usage:

    python benchmarks/disentanglement.py                       # about 15 minutes on 2 busy CPU cores
    python benchmarks/disentanglement.py --steps 200 --models vae beta_vae   # a smoke run
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the project root, for `training`

MODELS = {
    "vae": {"variant": "vae"},
    "beta_vae": {"variant": "beta_vae", "beta": 4.0},
    "beta_tcvae": {"variant": "beta_tcvae", "beta": 6.0},
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--steps", type=int, default=2000, help="training steps per model")
    parser.add_argument("--hidden-units", type=int, nargs="+", default=[512, 256], help="MLP encoder widths")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--mig-examples", type=int, default=10_000)
    parser.add_argument("--votes", type=int, default=800, help="FactorVAE votes (60%% fit, 40%% score)")
    parser.add_argument("--vote-batch", type=int, default=64, help="images per FactorVAE vote")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "disentanglement.json"))
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size", "latent_dim", "mig_examples", "votes", "vote_batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def representation(vae, render_sprites, chunk=500):
    """factors [n, 5] -> posterior means [n, latent_dim]."""
    import keras_vae

    def represent(factors):
        return np.concatenate([
            keras_vae.encode_means(vae, render_sprites(factors[i : i + chunk]).numpy(), batch_size=chunk)
            for i in range(0, len(factors), chunk)
        ])

    return represent


def run_model(name, args, info):
    import keras

    import keras_vae
    from keras_vae.training.data import get_dataset, render_sprites

    keras.utils.set_random_seed(args.seed)
    options = dict(MODELS[name])
    variant = options.pop("variant")
    if variant == "beta_tcvae":
        options["dataset_size"] = info.split_sizes["train"]
    vae = keras_vae.build_vae(info.image_shape, args.latent_dim, architecture="mlp", variant=variant,
                              hidden_units=tuple(args.hidden_units), seed=args.seed, **options)
    vae.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    train = get_dataset("sprites", "train", batch_size=args.batch_size, shuffle=True, seed=args.seed).repeat()
    start = time.time()
    history = vae.fit(train, steps_per_epoch=args.steps, epochs=1, verbose=0).history
    train_seconds = time.time() - start
    valid = get_dataset("sprites", "valid", batch_size=500, shuffle=True, seed=1).take(4)  # 2,000 images
    evaluated = vae.evaluate(valid, verbose=0, return_dict=True)

    start = time.time()
    represent = representation(vae, render_sprites)
    rng = np.random.RandomState(args.seed + 1)
    factors = (rng.rand(args.mig_examples, len(info.factor_sizes)) * np.array(info.factor_sizes)).astype(np.int64)
    mig = keras_vae.mutual_information_gap(represent(factors), factors)
    factor_vae = keras_vae.factor_vae_score(
        represent, info.factor_sizes, batch_size=args.vote_batch, num_train_votes=int(0.6 * args.votes),
        num_eval_votes=args.votes - int(0.6 * args.votes), seed=args.seed + 2,
    )
    return {
        "model": name,
        "options": MODELS[name],
        "steps": args.steps,
        "train_seconds": round(train_seconds, 1),
        "metric_seconds": round(time.time() - start, 1),
        "train_last": {k: float(v[-1]) for k, v in history.items()},
        "valid": {k: float(v) for k, v in evaluated.items()},
        "mig": mig["score"],
        "mig_per_factor": dict(zip(info.factor_names, [float(v) for v in mig["per_factor"]])),
        "factor_vae_score": factor_vae["score"],
        "factor_vae_active_dims": factor_vae["active_dims"],
    }


def table(rows):
    header = ("model", "steps", "train s", "valid -ELBO", "valid KL", "MIG", "FactorVAE", "active dims")
    lines = [header]
    for r in rows:
        lines.append((r["model"], str(r["steps"]), f"{r['train_seconds']:.0f}", f"{-r['valid']['elbo']:.1f}",
                      f"{r['valid']['kl']:.1f}", f"{r['mig']:.3f}", f"{r['factor_vae_score']:.3f}",
                      str(r["factor_vae_active_dims"])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in lines)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_vae.training.data import dataset_info

    info = dataset_info("sprites")
    rows = []
    for name in args.models:
        rows.append(run_model(name, args, info))
        print(f"{name}: MIG {rows[-1]['mig']:.3f}, FactorVAE {rows[-1]['factor_vae_score']:.3f} "
              f"({rows[-1]['train_seconds']:.0f} s training)", file=sys.stderr)
    print(table(rows))
    import tensorflow as tf

    result = {
        "benchmark": "disentanglement",
        "dataset": "sprites",
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "tensorflow": tf.__version__},
        "results": rows,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
