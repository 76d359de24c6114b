"""Memory bounds and number checks of the public API (keras_vae.limits): each bound refuses at once, before
allocating, naming the argument and the limit; chunked paths give the unchunked answers; numbers are checked
for type and range."""

import time

import numpy as np
import pytest

import keras_vae
from keras_vae import limits
from keras_vae.samplers import GaussianMixtureSampler, TwoStageSampler


@pytest.fixture(scope="module")
def vae():
    return keras_vae.build_vae((14, 14, 1), 3, architecture="mlp", hidden_units=(16,), seed=0)


@pytest.fixture
def budget(monkeypatch):
    """``budget(NAME, bytes)`` sets one of the limits for the test."""
    return lambda name, value: monkeypatch.setattr(limits, name, value)


def _refused_fast(call, *fragments, seconds=1.0):
    start = time.perf_counter()
    with pytest.raises(ValueError) as info:
        call()
    elapsed = time.perf_counter() - start
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert elapsed < seconds, f"took {elapsed:.2f} s"
    return message


# ----------------------------------------------------------------- the checks themselves
@pytest.mark.parametrize("value", [2.5, True, np.bool_(True), "3", None, float("nan"), 0])
def test_integer_at_least_refuses_what_is_no_count(value):
    with pytest.raises(ValueError, match=f"latent_dim must be an integer >= 1, got {value!r}"):
        limits.integer_at_least("latent_dim", value, 1)


def test_integer_at_least_takes_ints_numpy_ints_and_whole_floats():
    assert [limits.integer_at_least("n", v, 1) for v in (3, np.int64(3), 3.0, np.float32(3.0))] == [3, 3, 3, 3]
    with pytest.raises(ValueError, match=f"seed must be an integer >= -2147483648 and <= 2147483647, got {2**70}"):
        limits.int32_seed("seed", 2**70)
    from keras_vae.objectives import integer_at_least  # its earlier home keeps working
    assert integer_at_least is limits.integer_at_least


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "0.5", True, None, 0.0, -1.0])
def test_finite_float_refuses_non_finite_strings_bools_and_out_of_range(value):
    with pytest.raises(ValueError, match="temperature must be a finite number > 0.0"):
        limits.finite_float("temperature", value, above=0.0)
    assert limits.finite_float("temperature", np.float32(0.5), above=0.0) == 0.5


def test_check_size_names_the_argument_the_limit_and_how(budget):
    budget("MAX_ARRAY_BYTES", 1000)
    message = _refused_fast(lambda: limits.check_size("count", 11, 100, "MAX_ARRAY_BYTES", "images", "load fewer"),
                            "count=11 needs 1.1 KiB of images", "limit of 1.0 KiB", "keras_vae.limits.MAX_ARRAY_BYTES",
                            "10 fit", "load fewer")
    assert limits.check_size("count", 10, 100, "MAX_ARRAY_BYTES", "images", "load fewer") == 10, message


# ----------------------------------------------------------------- sampling
def test_sample_of_a_billion_images_is_refused_at_once(vae):
    _refused_fast(lambda: vae.sample(10**9), "num_samples=1000000000", "MAX_ARRAY_BYTES", "(14, 14, 1) images",
                  "in batches")
    _refused_fast(lambda: vae.sample_prior(10**12), "num_samples=1000000000000", "MAX_ARRAY_BYTES")


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(num_samples=2.5), "num_samples must be an integer >= 1, got 2.5"),
    (dict(num_samples=True), "num_samples must be an integer >= 1, got True"),
    (dict(num_samples=0), "num_samples must be an integer >= 1, got 0"),
    (dict(num_samples=2, temperature=float("nan")), "temperature must be a finite number > 0.0"),
    (dict(num_samples=2, temperature=0.0), "temperature must be a finite number > 0.0"),
    (dict(num_samples=2, temperature="1"), "temperature must be a finite number > 0.0"),
])
def test_sample_checks_its_numbers(vae, kwargs, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        vae.sample(**kwargs)


def test_sample_decodes_in_chunks_within_the_chunk_budget(vae, budget, monkeypatch):
    whole = np.asarray(vae.sample(7, seed=1))
    sizes = []
    decode = type(vae).decoder_output_of
    monkeypatch.setattr(type(vae), "decoder_output_of",
                        lambda self, codes, condition, training=False: sizes.append(len(codes)) or
                        decode(self, codes, condition, training))
    budget("MAX_CHUNK_BYTES", 3 * 4 * (limits.activation_count(vae.decoder) + 14 * 14))
    chunked = np.asarray(vae.sample(7, seed=1))
    assert sizes == [3, 3, 1]
    np.testing.assert_allclose(chunked, whole, atol=1e-6)


# ----------------------------------------------------------------- build_vae
@pytest.mark.parametrize("architecture", ["conv", "mlp"])
def test_build_vae_refuses_huge_images_before_allocating(architecture):
    _refused_fast(lambda: keras_vae.build_vae((10000, 10000, 1), 16, architecture=architecture),
                  "input_shape=(10000, 10000, 1)", "MAX_WEIGHT_BYTES", "smaller images", seconds=5.0)
    from keras.src.backend.common import global_state
    assert not global_state.get_global_attribute("uninitialized_variables")  # nothing left to allocate later


def test_build_vae_refuses_one_example_whose_activations_exceed_the_budget(budget):
    budget("MAX_EXAMPLE_ACTIVATION_BYTES", 10_000)
    _refused_fast(lambda: keras_vae.build_vae((28, 28, 1), 4, architecture="conv"), "input_shape=(28, 28, 1)",
                  "layer outputs for one example", "MAX_EXAMPLE_ACTIVATION_BYTES", seconds=5.0)


def test_build_vae_still_builds_the_same_seeded_weights():
    import keras

    built = []
    for _ in range(2):
        keras.utils.set_random_seed(3)
        built.append(keras_vae.build_vae((14, 14, 1), 3, architecture="conv", filters=(4,), dense_units=8))
    for a, b in zip(*(model.get_weights() for model in built)):
        np.testing.assert_array_equal(a, b)
    assert np.asarray(built[0].sample(2, seed=0)).shape == (2, 14, 14, 1)


@pytest.mark.parametrize("shape, latent_dim, fragment", [
    ((28.5, 28, 1), 4, "each size must be an integer >= 1, got 28.5"),
    ((28, 28), 4, "input_shape must be (height, width, channels)"),
    ((28, 28, 1), 2.5, "latent_dim must be an integer >= 1, got 2.5"),
    ((28, 28, 1), True, "latent_dim must be an integer >= 1, got True"),
])
def test_build_vae_checks_its_numbers(shape, latent_dim, fragment):
    with pytest.raises(ValueError) as info:
        keras_vae.build_vae(shape, latent_dim, architecture="mlp")
    assert fragment in str(info.value)


# ----------------------------------------------------------------- bounds
def test_iwae_bound_lowers_its_chunks_to_the_budget(vae, budget, small_images):
    x = small_images[:4]
    one_at_a_time = np.asarray(keras_vae.iwae_bound(vae, x, num_samples=6, chunk_size=1, seed=2))
    budget("MAX_CHUNK_BYTES", len(x) * keras_vae.bounds.decode_bytes(vae))  # one sample of the batch at a time
    lowered = np.asarray(keras_vae.iwae_bound(vae, x, num_samples=6, chunk_size=500, seed=2))
    np.testing.assert_allclose(lowered, one_at_a_time, rtol=1e-6)


def test_iwae_bound_bounds_the_examples_in_parts(vae, budget, small_images):
    x = small_images[:4]
    parts = [np.asarray(keras_vae.iwae_bound(vae, x[i:i + 2], num_samples=3, chunk_size=1, seed=4))
             for i in range(0, 4, 2)]
    budget("MAX_CHUNK_BYTES", 2 * keras_vae.bounds.decode_bytes(vae))  # two examples' samples at a time
    np.testing.assert_allclose(np.asarray(keras_vae.iwae_bound(vae, x, num_samples=3, seed=4)),
                               np.concatenate(parts), rtol=1e-6)


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(num_samples=2.5), "num_samples must be an integer >= 1, got 2.5"),
    (dict(chunk_size=0), "chunk_size must be an integer >= 1, got 0"),
    (dict(seed=2**40), "seed must be an integer >= -2147483648"),
])
def test_iwae_bound_checks_its_numbers(vae, small_images, kwargs, fragment):
    with pytest.raises(ValueError) as info:
        keras_vae.iwae_bound(vae, small_images[:2], **kwargs)
    assert fragment in str(info.value)


def test_refine_posterior_refuses_samples_beyond_the_budget(vae, small_images):
    _refused_fast(lambda: keras_vae.refine_posterior(vae, small_images[:4], steps=1, num_samples=10**8),
                  "num_samples=100000000", "MAX_CHUNK_BYTES")
    with pytest.raises(ValueError, match="learning_rate must be a finite number > 0.0, got nan"):
        keras_vae.refine_posterior(vae, small_images[:4], learning_rate=float("nan"))


# ----------------------------------------------------------------- anomaly scores
def test_anomaly_scores_decode_their_samples_in_chunks(vae, budget, small_images, monkeypatch):
    asked = []
    weights = type(vae).log_importance_weights
    monkeypatch.setattr(type(vae), "log_importance_weights",
                        lambda self, x, k, **kw: asked.append(k) or weights(self, x, k, **kw))
    budget("MAX_CHUNK_BYTES", 3 * 4 * keras_vae.bounds.decode_bytes(vae))  # 3 samples of a batch of 4
    scores = keras_vae.anomaly_scores(vae, small_images[:4], num_samples=8, batch_size=4)
    assert asked == [3, 3, 2] and scores.shape == (4,) and np.all(np.isfinite(scores))


def test_anomaly_scores_refuse_a_batch_beyond_the_budget_and_bad_numbers(vae, budget, small_images):
    budget("MAX_CHUNK_BYTES", keras_vae.bounds.decode_bytes(vae))
    _refused_fast(lambda: keras_vae.anomaly_scores(vae, small_images[:8], batch_size=4), "batch_size=4",
                  "MAX_CHUNK_BYTES", "lower batch_size")
    for kwargs, fragment in ((dict(num_samples=2.5), "num_samples must be an integer >= 1, got 2.5"),
                             (dict(batch_size=True), "batch_size must be an integer >= 1, got True"),
                             (dict(seed=-1), "seed must be an integer >= 0")):
        with pytest.raises(ValueError, match=fragment):
            keras_vae.anomaly_scores(vae, small_images[:2], **kwargs)
    with pytest.raises(ValueError, match="at least one image"):
        keras_vae.anomaly_scores(vae, small_images[:0])
    with pytest.raises(ValueError, match="quantile must be a finite number > 0.0 and <= 1.0, got nan"):
        keras_vae.score_threshold([1.0, 2.0], quantile=float("nan"))


# ----------------------------------------------------------------- samplers
def test_a_mixture_with_more_components_than_codes_is_refused_before_it_is_kept(vae, small_images):
    message = _refused_fast(lambda: vae.fit_sampler(small_images[:10], kind="gmm", num_components=50),
                            "num_components=50", "10 codes")
    assert "gmm" not in vae.samplers, message


def test_sampler_fit_refuses_codes_beyond_the_budget_without_copying_them():
    codes = np.broadcast_to(np.zeros(4, np.float32), (10**12, 4))  # a view: no memory behind it
    sampler = GaussianMixtureSampler(num_components=2)
    sampler.build((None, 4))
    _refused_fast(lambda: sampler.fit(codes), "len(codes)=1000000000000", "MAX_ARRAY_BYTES")


def test_em_arrays_beyond_the_budget_are_refused(budget):
    budget("MAX_ARRAY_BYTES", 8 * 4 * 100 * 5)  # EM's arrays over 100 codes with 5 components fit, 6 do not
    codes = np.random.default_rng(0).normal(size=(100, 2))
    sampler = GaussianMixtureSampler(num_components=6)
    sampler.build((None, 2))
    _refused_fast(lambda: sampler.fit(codes), "num_components=6", "EM's arrays over 100 codes", "MAX_ARRAY_BYTES")
    fitted = GaussianMixtureSampler(num_components=5, max_iterations=3)
    fitted.build((None, 2))
    assert np.isfinite(fitted.fit(codes))


def test_sampler_weights_beyond_the_budget_are_refused_before_they_are_made():
    _refused_fast(lambda: GaussianMixtureSampler(num_components=10**9).build((None, 16)), "num_components=1000000000",
                  "MAX_WEIGHT_BYTES")
    _refused_fast(lambda: TwoStageSampler(hidden_units=(10**6, 10**6)).build((None, 16)),
                  "hidden_units=(1000000, 1000000)", "MAX_WEIGHT_BYTES")


@pytest.mark.parametrize("make, fragment", [
    (lambda: GaussianMixtureSampler(num_components=2.5), "num_components must be an integer >= 1, got 2.5"),
    (lambda: GaussianMixtureSampler(num_components=True), "num_components must be an integer >= 1, got True"),
    (lambda: GaussianMixtureSampler(tolerance=float("nan")), "tolerance must be a finite number >= 0.0"),
    (lambda: GaussianMixtureSampler(min_scale=0.0), "min_scale must be a finite number > 0.0"),
    (lambda: TwoStageSampler(epochs=2.5), "epochs must be an integer >= 1, got 2.5"),
    (lambda: TwoStageSampler(hidden_units=()), "hidden_units must be a non-empty list"),
    (lambda: TwoStageSampler(learning_rate=float("inf")), "learning_rate must be a finite number > 0.0"),
])
def test_samplers_check_their_numbers(make, fragment):
    with pytest.raises(ValueError) as info:
        make()
    assert fragment in str(info.value)


# ----------------------------------------------------------------- metrics and evaluation
def test_factor_vae_score_refuses_counts_beyond_the_budget_and_bad_numbers():
    never = lambda factors: pytest.fail("represent() must not be called")  # noqa: E731
    _refused_fast(lambda: keras_vae.factor_vae_score(never, (3, 4), batch_size=10**9), "batch_size=1000000000",
                  "MAX_ARRAY_BYTES")
    for kwargs, fragment in ((dict(num_train_votes=2.5), "num_train_votes must be an integer >= 1, got 2.5"),
                             (dict(seed=-1), "seed must be an integer >= 0"),
                             (dict(prune_threshold=float("nan")), "prune_threshold must be a finite number")):
        with pytest.raises(ValueError, match=fragment):
            keras_vae.factor_vae_score(never, (3, 4), **kwargs)
    with pytest.raises(ValueError, match="num_bins must be an integer >= 2, got 2.5"):
        keras_vae.mutual_information_gap(np.zeros((4, 2)), np.zeros((4, 1), np.int64), num_bins=2.5)


def test_distance_blocks_stay_within_the_chunk_budget(budget):
    from keras_vae import sample_quality

    budget("MAX_CHUNK_BYTES", 32 * 1000 * 7)
    assert sample_quality._block_rows(1000) == 7
    rng = np.random.default_rng(0)
    real, generated = rng.normal(size=(60, 3)), rng.normal(size=(50, 3)) + 0.5
    small_blocks = sample_quality.precision_recall(real, generated)
    budget("MAX_CHUNK_BYTES", 1 << 30)
    assert small_blocks == sample_quality.precision_recall(real, generated)
    with pytest.raises(ValueError, match="k must be an integer >= 1, got 2.5"):
        sample_quality.precision_recall(real, generated, k=2.5)


def test_evaluation_checks_its_numbers_before_any_work(vae):
    from keras_vae.training.evaluate import evaluate_model, evaluate_sample_quality

    for kwargs, fragment in ((dict(iw_samples=2.5), "iw_samples must be an integer >= 1, got 2.5"),
                             (dict(max_examples=0), "max_examples must be an integer >= 1, got 0"),
                             (dict(refine_learning_rate=float("nan")), "refine_learning_rate must be a finite")):
        with pytest.raises(ValueError, match=fragment):
            evaluate_model(vae, [], **kwargs)
    _refused_fast(lambda: evaluate_sample_quality(vae, "no-such-dataset", num_samples=10**9),
                  "num_samples=1000000000", "MAX_ARRAY_BYTES")


def test_load_examples_refuses_examples_beyond_the_budget(budget):
    from keras_vae.training.data import load_examples

    budget("MAX_ARRAY_BYTES", 300 * 64 * 64 * 4)  # 300 sprites fit, the whole split does not
    images, _ = load_examples("sprites", "valid", count=256, batch_size=128)
    assert images.shape == (256, 64, 64, 1)
    with pytest.raises(ValueError, match=r"count=None needs .*limits\.MAX_ARRAY_BYTES\): load fewer \(count=\)"):
        load_examples("sprites", "valid", batch_size=128)
