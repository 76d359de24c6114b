"""Disentanglement of VAE, beta-VAE, beta-TCVAE and FactorVAE on the sprites grid (dSprites factors).

Trains each model for ``--steps`` steps on the sprites train split (the same networks for every model: an MLP
4096-512-256 as in Chen et al.'s dSprites setup but narrower, or with ``--architecture conv`` four stride-2
convolutions and a depth-to-space decoder, ``--upsampling spatial_broadcast`` for Watters et al.'s spatial broadcast
decoder; latent size, batch and seed), then measures on images rendered from uniformly drawn factors:
MIG (``--mig-examples`` codes) and the FactorVAE score (``--votes`` votes of ``--vote-batch``
images each, split 60/40 between fitting and scoring the majority-vote classifier). Prints a table
and writes JSON under benchmarks/results/.

Resumable: each finished model is saved under ``--work-dir`` (``<model>.keras`` and ``<model>.json``) and a
re-run with the same settings reuses it; a model still training is saved every ``--save-every`` steps and
continues from there. ``keras-vae plot <work-dir>/<model>.keras --dataset sprites --kind traversal`` draws it.

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
    "factor_vae": {"variant": "factor_vae", "gamma": 35.0},
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--steps", type=int, default=2000, help="training steps per model")
    parser.add_argument("--architecture", default="mlp", choices=("mlp", "conv"))
    parser.add_argument("--hidden-units", type=int, nargs="+", default=[512, 256], help="MLP encoder widths")
    parser.add_argument("--filters", type=int, nargs="+", default=[32, 32, 64, 64],
                        help="conv: one stride-2 convolution per entry (Burgess et al.'s dSprites encoder widths)")
    parser.add_argument("--dense-units", type=int, default=256, help="conv: the dense layer's width")
    parser.add_argument("--upsampling", default="depth_to_space", choices=("depth_to_space", "spatial_broadcast"),
                        help="conv: the decoder (spatial_broadcast: Watters et al. 2019, its convolutions at half "
                        "resolution have the --filters widths)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--mig-examples", type=int, default=10_000)
    parser.add_argument("--votes", type=int, default=800, help="FactorVAE votes (60%% fit, 40%% score)")
    parser.add_argument("--vote-batch", type=int, default=64, help="images per FactorVAE vote")
    parser.add_argument("--beta", type=float, help="the KL / total-correlation weight of beta_vae and beta_tcvae "
                        "(default: 4 and 6); a model with another weight is saved under its own name")
    parser.add_argument("--gamma", type=float, help="FactorVAE's total-correlation weight (default 35)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "disentanglement.json"))
    parser.add_argument("--work-dir", default=os.path.join(HERE, "results", "disentanglement"),
                        help="trained models and per-model results, for resuming")
    parser.add_argument("--save-every", type=int, default=1000, help="steps between saves of a model in training")
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size", "latent_dim", "mig_examples", "votes", "vote_batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    for name in ("beta", "gamma"):
        if getattr(args, name) is not None and not getattr(args, name) > 0:
            parser.error(f"--{name} must be > 0")
    return args


def model_options(name, args):
    """``MODELS[name]`` with the weights ``--beta`` / ``--gamma`` override."""
    options = dict(MODELS[name])
    for weight in ("beta", "gamma"):
        if weight in options and getattr(args, weight) is not None:
            options[weight] = getattr(args, weight)
    return options


def run_name(name, args):
    """The files' name of a model: ``beta_tcvae``, ``beta_tcvae-beta10`` for an overridden weight, ``-conv`` for
    the convolutional networks."""
    changed = [f"{w}{v:g}" for w, v in model_options(name, args).items() if w != "variant" and v != MODELS[name][w]]
    network = {"conv": ["conv"], "mlp": []}[args.architecture]
    if args.architecture == "conv" and args.upsampling != "depth_to_space":
        network.append(args.upsampling)
    return "-".join([name, *changed, *network])


def network_options(args):
    """`build_vae`'s architecture and network options."""
    if args.architecture == "conv":
        return {"architecture": "conv", "filters": tuple(args.filters), "dense_units": args.dense_units,
                "upsampling": args.upsampling}
    return {"architecture": "mlp", "hidden_units": tuple(args.hidden_units)}


def representation(vae, render_sprites, chunk=500):
    """factors [n, 5] -> posterior means [n, latent_dim]."""
    import keras_vae

    def represent(factors):
        return np.concatenate([
            keras_vae.encode_means(vae, render_sprites(factors[i : i + chunk]).numpy(), batch_size=chunk)
            for i in range(0, len(factors), chunk)
        ])

    return represent


def _settings(name, args):
    """What a saved model must have been trained with to be reused."""
    keep = ("batch_size", "latent_dim", "learning_rate", "hidden_units", "seed")
    settings = {"model": name, "options": model_options(name, args), **{k: getattr(args, k) for k in keep}}
    if args.architecture == "conv":  # MLP runs keep the settings of earlier versions, so their saves resume
        settings.update(architecture="conv", filters=list(args.filters), dense_units=args.dense_units)
        if args.upsampling != "depth_to_space":  # earlier conv runs keep their settings too
            settings["upsampling"] = args.upsampling
    return settings


def _save_json(value, path):
    from keras_vae.atomic_files import atomic_write_text

    atomic_write_text(path, json.dumps(value, indent=2))


def _train(name, args, info):
    """The model trained for ``args.steps`` steps, resumed from ``--work-dir`` when a save is there."""
    import keras

    import keras_vae
    from keras_vae.atomic_files import atomic_write
    from keras_vae.training.data import get_dataset

    os.makedirs(args.work_dir, exist_ok=True)
    model_path = os.path.join(args.work_dir, f"{run_name(name, args)}.keras")
    state_path = os.path.join(args.work_dir, f"{run_name(name, args)}.state.json")
    keras.utils.set_random_seed(args.seed)
    state = {"settings": _settings(name, args), "steps": 0, "train_seconds": 0.0}
    if os.path.exists(model_path) and os.path.exists(state_path):
        with open(state_path) as f:
            saved = json.load(f)
        if saved["settings"] == state["settings"]:
            state = saved
    if state["steps"]:
        vae = keras_vae.load_vae(model_path)
        print(f"{name}: resuming at step {state['steps']}", file=sys.stderr)
    else:
        options = model_options(name, args)
        variant = options.pop("variant")
        if variant == "beta_tcvae":
            options["dataset_size"] = info.split_sizes["train"]
        vae = keras_vae.build_vae(info.image_shape, args.latent_dim, variant=variant, seed=args.seed,
                                  **network_options(args), **options)
        vae.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    # A resumed run shuffles the training split with another seed (it cannot restore the stream's position).
    train = get_dataset("sprites", "train", batch_size=args.batch_size, shuffle=True,
                        seed=args.seed + state["steps"]).repeat()
    history = {}
    while state["steps"] < args.steps:
        chunk = min(args.save_every, args.steps - state["steps"])
        start = time.time()
        history = vae.fit(train, steps_per_epoch=chunk, epochs=1, verbose=0).history
        state["train_seconds"] += time.time() - start
        state["steps"] += chunk
        state["train_last"] = {k: float(v[-1]) for k, v in history.items()}
        atomic_write(model_path, vae.save)
        _save_json(state, state_path)
        # The -ELBO too: beta-TCVAE's loss carries its minibatch-weighted TC estimate's large offset.
        last = state["train_last"]
        print(f"{name}: step {state['steps']}/{args.steps}, loss {last.get('loss', float('nan')):.1f}, "
              f"-ELBO {-last.get('elbo', float('nan')):.1f}", file=sys.stderr)
    return vae, state


def run_model(name, args, info):
    import keras_vae
    from keras_vae.training.data import get_dataset, render_sprites

    result_path = os.path.join(args.work_dir, f"{run_name(name, args)}.json")
    if os.path.exists(result_path):
        with open(result_path) as f:
            saved = json.load(f)
        if saved.get("settings") == _settings(name, args) and saved.get("steps") == args.steps \
                and saved.get("mig_examples") == args.mig_examples and saved.get("votes") == args.votes:
            print(f"{name}: reusing {result_path}", file=sys.stderr)
            return saved
    vae, state = _train(name, args, info)
    train_seconds = state["train_seconds"]
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
    row = {
        "model": run_name(name, args),
        "options": model_options(name, args),
        "settings": _settings(name, args),
        "steps": args.steps,
        "mig_examples": args.mig_examples,
        "votes": args.votes,
        "train_seconds": round(train_seconds, 1),
        "metric_seconds": round(time.time() - start, 1),
        "train_last": state.get("train_last", {}),
        "valid": {k: float(v) for k, v in evaluated.items()},
        "mig": mig["score"],
        "mig_per_factor": dict(zip(info.factor_names, [float(v) for v in mig["per_factor"]])),
        "factor_vae_score": factor_vae["score"],
        "factor_vae_active_dims": factor_vae["active_dims"],
    }
    _save_json(row, result_path)
    return row


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
