"""Disentanglement metrics against ground-truth factors: MIG and the FactorVAE score.

Both take plain numpy: latent codes (usually posterior means, see `keras_vae.latent.encode_means`)
and integer factor values. They follow the definitions of disentanglement_lib (Locatello et al. 2019).

- MIG (Chen et al. 2018): for each factor, the gap between the two largest mutual informations
  with single (discretized) latent dimensions, divided by the factor's entropy; averaged over factors.
  1 = each factor captured by one dimension alone; 0 = no dimension stands out (or no information).
- FactorVAE score (Kim & Mnih 2018): fix one factor, vary the others, and find the latent dimension of
  least (normalized) variance; a majority-vote classifier maps dimensions to factors, and the score is
  its accuracy on fresh votes. 1 = each factor has its own dimension; chance level is 1 / num_factors.

Example:

>>> codes = encode_means(vae, render_sprites(factors))
>>> mutual_information_gap(codes, factors)["score"]
>>> factor_vae_score(lambda f: encode_means(vae, render_sprites(f)), factor_sizes=(3, 6, 40, 32, 32))["score"]
"""

import numpy as np

from keras_vae import limits
from keras_vae.limits import finite_float, integer_at_least
from keras_vae.progress import progress_bar

VOTES_PER_CALL = 50  # votes whose examples one call of represent() encodes


def discretize(codes, num_bins=20):
    """Each column of ``codes`` ``[n, d]`` binned into ``num_bins`` equal-width bins: int ``[n, d]``."""
    codes = _finite_2d(codes, "codes")
    num_bins = integer_at_least("num_bins", num_bins, 2)
    binned = np.empty(codes.shape, np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, j], bins=num_bins)
        binned[:, j] = np.digitize(codes[:, j], edges[1:-1])
    return binned


def discrete_mutual_information(a, b):
    """Mutual information (nats) between two integer arrays of the same length."""
    a, b = np.unique(a, return_inverse=True)[1], np.unique(b, return_inverse=True)[1]
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1.0)
    joint /= joint.sum()
    outer = joint.sum(1, keepdims=True) @ joint.sum(0, keepdims=True)
    nonzero = joint > 0
    return float(np.sum(joint[nonzero] * np.log(joint[nonzero] / outer[nonzero])))


def discrete_entropy(a):
    """Entropy (nats) of an integer array."""
    counts = np.unique(a, return_counts=True)[1]
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


def mutual_information_gap(codes, factors, num_bins=20):
    """MIG of ``codes`` ``[n, d]`` (at least 2 dims) w.r.t. integer ``factors`` ``[n, num_factors]``.

    Returns ``{"score", "per_factor" [num_factors], "mutual_information" [d, num_factors],
    "factor_entropy" [num_factors]}``; constant factors (entropy 0) are left out of the score.
    """
    codes = _finite_2d(codes, "codes")
    factors = _factor_array(factors, len(codes))
    if codes.shape[1] < 2:
        raise ValueError("MIG needs at least 2 latent dimensions (it is a gap between the best two).")
    binned = discretize(codes, num_bins)
    mi = np.array([[discrete_mutual_information(binned[:, j], factors[:, k]) for k in range(factors.shape[1])]
                   for j in range(codes.shape[1])])
    entropy = np.array([discrete_entropy(factors[:, k]) for k in range(factors.shape[1])])
    top_two = -np.sort(-mi, axis=0)[:2]
    varying = entropy > 0
    if not varying.any():
        raise ValueError("Every factor is constant in this sample: MIG is undefined.")
    per_factor = np.full(factors.shape[1], np.nan)
    per_factor[varying] = (top_two[0, varying] - top_two[1, varying]) / entropy[varying]
    return {
        "score": float(np.mean(per_factor[varying])),
        "per_factor": per_factor,
        "mutual_information": mi,
        "factor_entropy": entropy,
    }


def factor_vae_score(represent, factor_sizes, batch_size=64, num_train_votes=500, num_eval_votes=300,
                     num_variance_examples=5000, prune_threshold=0.05, seed=0):
    """FactorVAE score of a representation of data generated from factors.

    Args:
        represent: function, int factors ``[m, num_factors]`` -> codes ``[m, d]`` (e.g. render the
            images for these factor values, then encode them).
        factor_sizes: number of values of each factor (factors are drawn uniformly).
        batch_size: examples per vote (all sharing the value of one factor).
        num_train_votes, num_eval_votes: votes to fit the majority-vote classifier / to score it.
        num_variance_examples: examples used for each dimension's global scale.
        prune_threshold: dimensions whose codes vary less than this (standard deviation over the data,
            i.e. collapsed to the prior) never vote.
        seed: seed of the factor draws.

    Returns ``{"score" (eval accuracy), "train_accuracy", "active_dims", "votes" [d, num_factors]}``.
    """
    sizes = np.asarray(factor_sizes, np.int64)
    if sizes.ndim != 1 or not len(sizes) or sizes.min() < 1:
        raise ValueError(f"factor_sizes must be positive ints, one per factor; got {factor_sizes!r}")
    varying = np.flatnonzero(sizes > 1)
    if not len(varying):
        raise ValueError("At least one factor must take more than one value.")
    batch_size = integer_at_least("batch_size", batch_size, 1)
    num_train_votes = integer_at_least("num_train_votes", num_train_votes, 1)
    num_eval_votes = integer_at_least("num_eval_votes", num_eval_votes, 1)
    num_variance_examples = integer_at_least("num_variance_examples", num_variance_examples, 2)
    prune_threshold = finite_float("prune_threshold", prune_threshold, low=0.0)
    seed = integer_at_least("seed", seed, 0, 2**32 - 1)
    # represent() gets VOTES_PER_CALL * batch_size factor rows at once (and num_variance_examples once).
    how = "lower it: represent() is given that many factor rows at once"
    limits.check_size("batch_size", batch_size, VOTES_PER_CALL * 8 * len(sizes), "MAX_ARRAY_BYTES",
                      f"factor rows ({VOTES_PER_CALL} votes of batch_size examples)", how)
    limits.check_size("num_variance_examples", num_variance_examples, 8 * len(sizes), "MAX_ARRAY_BYTES", "factor rows",
                      how)
    rng = np.random.RandomState(seed)

    def draw(n):
        return (rng.rand(n, len(sizes)) * sizes).astype(np.int64)

    def codes_for(factors):
        codes = _finite_2d(represent(factors), "represent(factors)")
        if len(codes) != len(factors):
            raise ValueError(f"represent returned {len(codes)} codes for {len(factors)} factor rows.")
        return codes

    scale = codes_for(draw(num_variance_examples)).std(axis=0)
    active = scale >= prune_threshold
    num_dims = len(scale)

    def votes(n):
        fixed = varying[rng.randint(len(varying), size=n)]
        factors = draw(n * int(batch_size)).reshape(n, int(batch_size), len(sizes))
        factors[np.arange(n), :, fixed] = factors[np.arange(n), :1, fixed]
        codes = codes_for(factors.reshape(-1, len(sizes))).reshape(n, int(batch_size), num_dims)
        variances = np.var(codes / np.where(active, scale, 1.0), axis=1)
        variances[:, ~active] = np.inf
        return np.argmin(variances, axis=1), fixed

    bar = progress_bar(int(num_train_votes) + int(num_eval_votes), unit="vote")

    def votes_with_progress(n, chunk=VOTES_PER_CALL):
        parts = []
        for start in range(0, n, chunk):
            parts.append(votes(min(chunk, n - start)))
            bar.add(min(chunk, n - start))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    counts = np.zeros((num_dims, len(sizes)), np.int64)
    if active.any():
        dims, fixed = votes_with_progress(int(num_train_votes))
        np.add.at(counts, (dims, fixed), 1)
        assigned = counts.argmax(axis=1)
        eval_dims, eval_fixed = votes_with_progress(int(num_eval_votes))
        score = float(np.mean(assigned[eval_dims] == eval_fixed))
        train_accuracy = float(counts.max(axis=1).sum() / counts.sum())
    else:
        score = train_accuracy = 0.0
    return {"score": score, "train_accuracy": train_accuracy, "active_dims": int(active.sum()), "votes": counts}


def _finite_2d(array, what):
    array = np.asarray(array, np.float64)
    if array.ndim != 2 or not array.size:
        raise ValueError(f"Expected {what} of shape (n, d) with n, d >= 1, got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contain non-finite values (NaN or Inf).")
    return array


def _factor_array(factors, n):
    factors = np.asarray(factors)
    if factors.ndim != 2 or len(factors) != n:
        raise ValueError(f"Expected factors of shape ({n}, num_factors), got {factors.shape}.")
    if not np.issubdtype(factors.dtype, np.integer):
        raise ValueError(f"Factors must be integer values, got dtype {factors.dtype}.")
    return factors
