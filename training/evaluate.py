"""Nats-per-example evaluation of a trained VAE on a dataset split (the library behind `keras-vae evaluate`).

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

import math

from keras_vae.limits import check_size, finite_float, int32_seed, integer_at_least

ACTIVE_UNIT_THRESHOLD = 0.01
DECODES_PER_CHUNK = 10_000_000  # pixels decoded at once (importance samples x batch x H*W*C)


def default_chunk_size(batch_size, image_shape):
    """Importance samples decoded together so that one chunk decodes about `DECODES_PER_CHUNK` pixels."""
    return max(1, DECODES_PER_CHUNK // (int(batch_size) * math.prod(image_shape)))


def split_batch(batch):
    """``(images, labels or None)`` of a batch given as images, ``(images, labels[, weights])`` or a dict.

    >>> split_batch({"images": x, "labels": y}) == (x, y)
    True
    """
    from keras_vae.model import VAE

    images, labels, _ = VAE.unpack(batch)
    return images, labels


def _example_count(dataset, max_examples):
    """How many examples the evaluation will see, when the dataset says (for the progress bar's ETA)."""
    import tensorflow as tf

    cardinality = int(dataset.cardinality()) if isinstance(dataset, tf.data.Dataset) else -1
    batch = dataset.element_spec if isinstance(dataset, tf.data.Dataset) else None
    total = None
    if cardinality >= 0 and batch is not None:
        spec = batch[0] if isinstance(batch, tuple) else batch
        if spec.shape.rank and spec.shape[0] is not None:
            total = cardinality * int(spec.shape[0])
    if max_examples is not None:
        total = max_examples if total is None else min(total, max_examples)
    return total


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

    iw_samples = integer_at_least("iw_samples", iw_samples, 1)
    chunk_size = None if chunk_size is None else integer_at_least("chunk_size", chunk_size, 1)
    seed = int32_seed("seed", seed)
    max_examples = None if max_examples is None else integer_at_least("max_examples", max_examples, 1)
    refine_steps = integer_at_least("refine_steps", refine_steps, 0)
    refine_learning_rate = finite_float("refine_learning_rate", refine_learning_rate, above=0.0)
    refine_samples = integer_at_least("refine_samples", refine_samples, 1)
    conditional = bool(model.condition)
    image_shape = tuple(model.image_shape)
    # A per-dimension KL needs a factorized prior and posterior (an IAF posterior couples the dimensions):
    # the model's top layer then has one (``kl_per_dim``); which it is shows when the step is traced.
    factorized = {}
    compiled = {}

    def step_fn(batch_size):
        if batch_size not in compiled:
            chunk = chunk_size or default_chunk_size(batch_size, image_shape)
            bound = dict(num_samples=int(iw_samples), chunk_size=chunk, seed=seed)

            @tf.function(reduce_retracing=True)
            def step(x, labels):
                terms, layers = model.elbo_terms(x, labels=labels, training=False)
                posterior = model.encode(x, labels=labels)
                log_px = keras_vae.iwae_bound(model, x, labels=labels, **bound)
                kl_dims = layers[-1].kl_per_dim
                factorized["top"] = kl_dims is not None
                kl_dims = tf.zeros_like(posterior.mean()) if kl_dims is None else kl_dims
                if refine_steps:
                    refined = keras_vae.refine_posterior(model, x, labels=labels, steps=int(refine_steps), seed=seed,
                                                         learning_rate=refine_learning_rate, num_samples=refine_samples)
                    log_px_refined = keras_vae.iwae_bound(model, x, labels=labels, parameters=refined, **bound)
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

    from keras_vae.progress import progress_bar

    parts = {}
    seen = 0
    bar = progress_bar(_example_count(dataset, max_examples), unit="example")
    for batch in dataset:
        x, labels = split_batch(batch)
        labels = labels if conditional else None  # an unconditional model takes no labels
        n = int(x.shape[0])
        if max_examples is not None and seen + n > max_examples:
            n = max_examples - seen
            x, labels = x[:n], None if labels is None else labels[:n]
        if n <= 0:
            break
        out = step_fn(n)(x, labels)
        for key, value in out.items():
            parts.setdefault(key, []).append(np.asarray(value, dtype=np.float64))
        seen += n
        bar.add(n)
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
        "kl_per_dimension": [float(v) for v in values["kl_dims"].mean(axis=0)] if factorized["top"] else None,
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


def evaluate_sample_quality(model, dataset, split="test", *, data_dir=None, sampler="prior", num_samples=1000,
                            seed=0, batch_size=250, features=None):
    """Fréchet distance, precision and recall of ``model``'s samples against ``num_samples`` images of a split.

    Features come from the dataset's cached domain network (`keras_vae.training.feature_networks`; a
    ValueError names the supported datasets for any other). Samples are the decoder's means (``sampler``:
    ``"prior"`` or an ex-post sampler the model keeps), clipped to [0, 1] as the network's inputs are;
    a conditional model is given the reference images' labels. ``features``: the ``(extractor, info)`` of
    `get_feature_extractor`, to reuse it across calls (default: loaded here).

    Returns ``{"frechet_distance", "precision", "recall", "sampler", "sample_quality_examples",
    "feature_network", "feature_network_accuracy"}``.

    >>> evaluate_sample_quality(vae, "sprites", "valid", sampler="gmm", num_samples=500)["frechet_distance"]
    """
    import numpy as np

    from keras_vae.sample_quality import NEAREST_NEIGHBOURS, sample_quality
    from keras_vae.training.data import load_examples
    from keras_vae.training.feature_networks import get_feature_extractor

    num_samples = integer_at_least("num_samples", num_samples, NEAREST_NEIGHBOURS + 1)
    batch_size = integer_at_least("batch_size", batch_size, 1)
    seed = integer_at_least("seed", seed, 0)
    # The reference images and the samples are held whole, float32 each.
    check_size("num_samples", num_samples, 8 * math.prod(model.image_shape), "MAX_ARRAY_BYTES",
               f"reference and sampled {tuple(model.image_shape)} images", "compare fewer samples")
    # unsupported datasets fail here
    extractor, info = features or get_feature_extractor(dataset, data_dir=data_dir, verbose=0)
    model.sampler(sampler)  # an unknown sampler fails before any work
    reference, labels = load_examples(dataset, split, data_dir=data_dir, count=num_samples,
                                      with_labels=bool(model.condition))
    # Drawn in batches (bounded memory), each with its own seed derived from ``seed``.
    parts = [model.sample(len(reference[i:i + batch_size]), seed=seed * 100_003 + i, sampler=sampler,
                          labels=None if labels is None else labels[i:i + batch_size])
             for i in range(0, len(reference), batch_size)]
    generated = np.clip(np.concatenate([np.asarray(p) for p in parts]), 0.0, 1.0)
    scores = sample_quality(extractor, reference, generated)
    return {**scores, "sampler": sampler, "sample_quality_examples": int(len(reference)),
            "feature_network": info["network"], "feature_network_accuracy": info["accuracy"]}
