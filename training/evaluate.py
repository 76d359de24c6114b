"""`keras-vae evaluate`: nats-per-example evaluation of a trained VAE on a dataset split.

Reported (JSON keys): ``nelbo`` (negative ELBO, one posterior sample per example), ``nll`` (the
importance-weighted estimate of -log p(x) with ``iw_samples`` samples, Burda et al. 2015),
``bits_per_dim`` (nll / (H*W*C * ln 2)), ``reconstruction``, ``kl``, ``active_units`` (latent
dimensions with Cov_x(E_q[z_i]) > 0.01, Burda et al.), ``kl_per_dimension`` (average KL of each
latent dimension; null for a non-factorized prior), ``iw_samples``, ``num_examples``; and
``nll_refined``, the same estimate with each example's proposal refined by ``refine_steps`` steps of
`keras_vae.refine_posterior` (null when ``refine_steps`` is 0). Both are estimates of the same model's
-log p(x), each an upper bound in expectation: the refined one is tighter where the encoder proposes poorly.

Example:

>>> from keras_vae.training.data import get_dataset
>>> result = evaluate_model(vae, get_dataset("sprites", "valid", batch_size=100), iw_samples=100,
...                         max_examples=1000)
>>> print(format_table(result))
"""

import json
import math
import os
import sys

ACTIVE_UNIT_THRESHOLD = 0.01
DECODES_PER_CHUNK = 10_000_000  # pixels decoded at once (importance samples x batch x H*W*C)


def default_chunk_size(batch_size, image_shape):
    """Importance samples decoded together so that one chunk decodes about `DECODES_PER_CHUNK` pixels."""
    return max(1, DECODES_PER_CHUNK // (int(batch_size) * math.prod(image_shape)))


def evaluate_model(model, dataset, *, iw_samples=5000, chunk_size=None, seed=0, max_examples=None, refine_steps=0,
                   refine_learning_rate=0.01, refine_samples=10):
    """Evaluates ``model`` on a batched dataset of images (or ``(images, labels)`` for a conditional model).

    Args:
        model: a `keras_vae.VAE` (or variant).
        dataset: batched `tf.data.Dataset` (or any iterable of batches).
        iw_samples: K, importance samples per example for ``nll`` (5000 as in the literature).
        chunk_size: samples decoded at once; default keeps each chunk near `DECODES_PER_CHUNK` pixels.
        seed: seed of the importance samples.
        max_examples: evaluate only the first this many examples.
        refine_steps: when > 0, also report ``nll_refined`` (see `keras_vae.refine_posterior`, which takes
            ``refine_learning_rate`` and ``refine_samples``).

    Returns:
        A dict with the keys listed in the module docstring (floats in nats per example).
    """
    import numpy as np
    import tensorflow as tf

    import keras_vae

    if int(iw_samples) < 1:
        raise ValueError(f"iw_samples must be >= 1, got {iw_samples}")
    if int(refine_steps) < 0:
        raise ValueError(f"refine_steps must be >= 0, got {refine_steps}")
    conditional = bool(getattr(model, "conditional", False))
    image_shape = tuple(model.image_shape)
    # A per-dimension KL needs a factorized prior and posterior (an IAF posterior couples the dimensions).
    factorized = bool(getattr(model.prior, "factorized", False)) and getattr(model, "per_dimension_kl", True)

    def split(batch):
        if conditional:
            return (model.images_from(batch), model.labels_from(batch))
        return model.images_from(batch)

    compiled = {}

    def step_fn(batch_size):
        if batch_size not in compiled:
            chunk = chunk_size or default_chunk_size(batch_size, image_shape)

            @tf.function(reduce_retracing=True)
            def step(inputs):
                x = inputs[0] if conditional else inputs
                terms = model.compute_terms(inputs, training=False)
                posterior = model.encode(*inputs) if conditional else model.encode(x)
                log_px = keras_vae.iwae_bound(model, inputs, num_samples=int(iw_samples), chunk_size=chunk, seed=seed)
                kl_dims = model.kl_per_dimension(posterior) if factorized else tf.zeros_like(posterior.mean())
                if refine_steps:
                    refined = keras_vae.refine_posterior(model, inputs, steps=int(refine_steps), seed=seed,
                                                         learning_rate=refine_learning_rate, num_samples=refine_samples)
                    log_px_refined = keras_vae.iwae_bound(model, inputs, num_samples=int(iw_samples), chunk_size=chunk,
                                                          seed=seed, parameters=refined)
                else:
                    log_px_refined = tf.zeros_like(log_px)
                return {
                    "log_px_refined": log_px_refined,
                    "elbo": terms["elbo"],
                    "reconstruction": terms["reconstruction"],
                    "kl": terms["kl"],
                    "log_px": log_px,
                    "mean": posterior.mean(),
                    "kl_dims": kl_dims,
                }

            compiled[batch_size] = step
        return compiled[batch_size]

    parts = {}
    seen = 0
    for batch in dataset:
        inputs = split(batch)
        x = inputs[0] if conditional else inputs
        n = int(x.shape[0])
        if max_examples is not None and seen + n > max_examples:
            n = max_examples - seen
            inputs = tuple(t[:n] for t in inputs) if conditional else inputs[:n]
        if n <= 0:
            break
        out = step_fn(n)(inputs)
        for key, value in out.items():
            parts.setdefault(key, []).append(np.asarray(value, dtype=np.float64))
        seen += n
        if max_examples is not None and seen >= max_examples:
            break
    if not seen:
        raise ValueError("The dataset holds no examples to evaluate.")
    values = {k: np.concatenate(v) for k, v in parts.items()}
    for key in ("elbo", "log_px", "log_px_refined"):
        if not np.all(np.isfinite(values[key])):
            raise ValueError(f"The model gives non-finite {key} on some examples: is it trained correctly?")

    nll = float(-values["log_px"].mean())
    latent_variance = values["mean"].var(axis=0)
    return {
        "nelbo": float(-values["elbo"].mean()),
        "nll": nll,
        "bits_per_dim": nll / (math.prod(image_shape) * math.log(2.0)),
        "reconstruction": float(values["reconstruction"].mean()),
        "kl": float(values["kl"].mean()),
        "active_units": int((latent_variance > ACTIVE_UNIT_THRESHOLD).sum()),
        "kl_per_dimension": [float(v) for v in values["kl_dims"].mean(axis=0)] if factorized else None,
        "iw_samples": int(iw_samples),
        "num_examples": int(seen),
        "nll_refined": float(-values["log_px_refined"].mean()) if refine_steps else None,
        "refine_steps": int(refine_steps),
    }


def format_table(result):
    """A two-column text table of an evaluation result."""
    rows = []
    for key, value in result.items():
        if isinstance(value, list):
            value = " ".join(f"{v:.2f}" for v in value)
        elif isinstance(value, float):
            value = f"{value:.4f}"
        rows.append((key, str(value)))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


# ------------------------------------------------------------------------------------------ CLI
def add_commands(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="nats-per-example evaluation (nelbo, importance-weighted nll, bits/dim, active units)",
        description="Evaluate a trained VAE (a run directory or a .keras file) on a dataset split.",
    )
    parser.add_argument("model", metavar="RUN_DIR_OR_MODEL", help="run directory (uses model.keras) or .keras file")
    parser.add_argument("--dataset", help="dataset name (default: the run's dataset)")
    parser.add_argument("--data-dir", help="folder with canonical files or a tfds data directory")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"))
    parser.add_argument("--iw-samples", type=int, default=5000, help="importance samples K (default 5000)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--chunk-size", type=int, help="importance samples decoded at once")
    parser.add_argument("--max-examples", type=int, help="evaluate only the first N examples of the split")
    parser.add_argument("--refine-steps", type=int, default=0,
                        help="also report nll_refined: the proposal refined per example by N Adam steps (e.g. 200)")
    parser.add_argument("--refine-learning-rate", type=float, default=0.01)
    parser.add_argument("--refine-samples", type=int, default=10, help="importance samples per refinement step")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the importance samples (the -ELBO's one draw comes from the model's own seed)")
    parser.add_argument("--out", metavar="FILE.json", help="also write the result as JSON")
    parser.set_defaults(func=run_evaluate)


def _run_config(path):
    """The run's config.yaml as a dict when ``path`` is (or is inside) a run directory, else {}."""
    import yaml

    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    config_path = os.path.join(folder, "config.yaml")
    if not os.path.isfile(config_path):
        return {}
    with open(config_path) as f:
        return yaml.safe_load(f) or {}


def run_evaluate(args):
    for name in ("iw_samples", "batch_size", "chunk_size", "max_examples", "refine_samples"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    import keras_vae
    from keras_vae.training.data import get_dataset

    run = _run_config(args.model)
    dataset = args.dataset or run.get("dataset")
    if dataset is None:
        raise ValueError("--dataset is required when the model is not in a run directory with a config.yaml.")
    data_dir = args.data_dir or (run.get("data_dir") if dataset == run.get("dataset") else None)
    model = keras_vae.load_vae(args.model, compile=False)
    data = get_dataset(dataset, args.split, data_dir=data_dir, batch_size=args.batch_size,
                       with_labels=bool(getattr(model, "conditional", False)))
    result = {"dataset": dataset, "split": args.split}
    result.update(evaluate_model(model, data, iw_samples=args.iw_samples, chunk_size=args.chunk_size,
                                 seed=args.seed, max_examples=args.max_examples, refine_steps=args.refine_steps,
                                 refine_learning_rate=args.refine_learning_rate, refine_samples=args.refine_samples))
    print(format_table(result))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0
