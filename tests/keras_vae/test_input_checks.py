"""Every input path checked the same way: each problem with the data of `fit`, `evaluate`, `predict` and the latent
tools is one ValueError, with one message, whether the data come as arrays, tensors, a tf.data.Dataset or a
generator; no examples at all is an error; an epoch whose steps were all skipped reports NaN, not 0.0."""

import numpy as np
import pytest
import tensorflow as tf

import keras
import keras_vae
from keras_vae import latent
from keras_vae.step_policy import AppliedMean

SHAPE = (8, 8, 1)
N, BATCH = 16, 8
KINDS = ("array", "tensor", "dataset", "generator")
ENTRIES = ("fit", "evaluate", "predict")

RANGE = ("Images must lie in [0.0, 1.0] for BernoulliLikelihood; they span [0, 255]. Rescale them (8-bit pixels: "
         "images / 255, or keras.layers.Rescaling(1 / 255) in a tf.data pipeline), or use likelihood='gaussian' "
         "for real-valued data.")
INTEGER = ("Images have integer dtype uint8; BernoulliLikelihood models data in [0.0, 1.0]: convert them to float32 "
           "(for 8-bit images, images / 255).")
SHAPE_MESSAGE = "Expected images of shape (batch, 8, 8, 1), got shape (batch, 8, 8, 3)."
UNCONDITIONAL = ("This model is unconditional (it takes no labels), but the data hold labels: give the images only "
                 "(for a dataset of (images, labels), as keras.utils.image_dataset_from_directory gives: "
                 "ds.map(lambda x, y: x)), or build a conditional variant (num_classes= or label_dim=).")
MISSING = ("This model is conditional (class labels in [0, 10)): give the labels with the images, as "
           "fit(images, labels), a dataset of (images, labels) or {'images': ..., 'labels': ...}.")
FLOAT_LABELS = ("Class labels must be integer class indices (class labels in [0, 10)); got dtype float32 (one-hot "
                "labels: tf.argmax(labels, -1); image_dataset_from_directory: label_mode='int').")
LABEL_DIM = "Expected label vectors of shape (batch, 3), got shape (batch, 5)."


def images01(n=N, channels=1):
    """Binary images holding both 0 and 1 in every image, so every batch spans the same range."""
    x = np.zeros((n, 8, 8, channels), np.float32)
    x[:, 2:6, 2:6] = 1.0
    return x


@pytest.fixture(scope="module")
def models():
    built = {
        "plain": keras_vae.build_vae(SHAPE, 2, architecture="mlp", hidden_units=(8,), seed=0),
        "classes": keras_vae.build_vae(SHAPE, 2, architecture="mlp", hidden_units=(8,), seed=0, variant="cvae",
                                       num_classes=10),
        "vectors": keras_vae.build_vae(SHAPE, 2, architecture="mlp", hidden_units=(8,), seed=0, variant="cvae",
                                       label_dim=3),
    }
    for model in built.values():
        model.compile(optimizer="adam")
    return built


def good_labels(model):
    return np.arange(N) % 10 if model.condition.kind == "class" else np.zeros((N, 3), np.float32)


# Each case: the model, its images, its labels (None: none given), and the message every input kind must give.
CASES = {
    "pixels 0..255": ("plain", lambda: images01() * 255.0, None, RANGE),
    "integer pixels": ("plain", lambda: (images01() * 255).astype(np.uint8), None, INTEGER),
    "wrong image shape": ("plain", lambda: images01(channels=3), None, SHAPE_MESSAGE),
    "labels for an unconditional model": ("plain", images01, lambda: np.arange(N) % 10, UNCONDITIONAL),
    "labels missing": ("classes", images01, None, MISSING),
    "class label 12": ("classes", images01, lambda: np.full(N, 12),
                       "Class labels must be in [0, 10); got values 12..12."),
    "negative class label": ("classes", images01, lambda: np.full(N, -1),
                             "Class labels must be in [0, 10); got values -1..-1."),
    "float class labels": ("classes", images01, lambda: np.full(N, 1.0, np.float32), FLOAT_LABELS),
    "wrong label_dim": ("vectors", images01, lambda: np.zeros((N, 5), np.float32), LABEL_DIM),
}


def call(model, entry, kind, images, labels):
    """``model.<entry>`` on ``images`` (and ``labels``) given as ``kind``."""
    if kind == "tensor":
        images = tf.constant(images)
        labels = None if labels is None else tf.constant(labels)
    if kind == "dataset":
        data = tf.data.Dataset.from_tensor_slices(images if labels is None else (images, labels)).batch(BATCH)
        args = (data,)
    elif kind == "generator":
        def batches():
            for start in range(0, N, BATCH):
                part = slice(start, start + BATCH)
                yield (images[part],) if labels is None else (images[part], labels[part])
        args = (batches(),)
    elif entry == "predict":
        args = (images if labels is None else (images, labels),)
    else:
        args = (images, labels)
    kwargs = {"verbose": 0} if kind in ("dataset", "generator") else {"verbose": 0, "batch_size": BATCH}
    return getattr(model, entry)(*args, **kwargs)


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", list(CASES))
def test_each_problem_is_the_same_value_error_for_every_input_kind_and_entry(models, case, kind, entry):
    name, make_images, make_labels, message = CASES[case]
    labels = None if make_labels is None else make_labels()
    with pytest.raises(ValueError) as raised:
        call(models[name], entry, kind, make_images(), labels)
    assert str(raised.value) == message


@pytest.mark.parametrize("kind", KINDS)
def test_good_data_of_every_kind_trains_evaluates_and_predicts(models, kind):
    for name in ("plain", "classes"):
        model = models[name]
        labels = good_labels(model) if model.condition else None
        history = call(model, "fit", kind, images01(), labels).history
        assert np.isfinite(history["loss"]).all() and history["loss"][0] > 0
        assert np.isfinite(call(model, "evaluate", kind, images01(), labels)[0])
        assert call(model, "predict", kind, images01(), labels).shape == (N, *SHAPE)


@pytest.mark.parametrize("case", ["pixels 0..255", "integer pixels", "wrong image shape", "class label 12",
                                  "negative class label", "float class labels", "wrong label_dim"])
@pytest.mark.parametrize("kind", ["array", "tensor"])
def test_the_latent_tools_give_the_same_messages(models, case, kind):
    name, make_images, make_labels, message = CASES[case]
    model = models[name]
    images = make_images()
    labels = make_labels() if make_labels is not None else (good_labels(model) if model.condition else None)
    if kind == "tensor":
        images = tf.constant(images)
    for tool in (lambda: latent.encode_means(model, images, labels),
                 lambda: latent.interpolate(model, images[0], images[1], labels=None if labels is None else labels[0]),
                 lambda: latent.traverse(model, images[:1], dims=[0], labels=None if labels is None else labels[:1])):
        with pytest.raises(ValueError) as raised:
            tool()
        assert str(raised.value) == message


def test_a_bad_batch_after_good_ones_is_caught_in_the_step_with_the_same_message(models):
    """Generators are peeked for their first batch only; a later batch is checked in the step."""
    good, bad = images01(BATCH), images01(BATCH) * 255.0

    def batches():
        yield (good,)
        yield (bad,)

    with pytest.raises(ValueError) as raised:
        models["plain"].fit(batches(), verbose=0)
    assert str(raised.value) == RANGE
    labels = np.array([0, 1, 2, 3, 4, 5, 6, 12])
    dataset = tf.data.Dataset.from_tensor_slices((np.concatenate([good, good]),
                                                  np.concatenate([np.arange(BATCH), labels]))).batch(BATCH)
    with pytest.raises(ValueError, match=r"^Class labels must be in \[0, 10\); got values 0\.\.12\.$"):
        models["classes"].fit(dataset, verbose=0)


def test_validation_data_is_checked_up_front(models):
    with pytest.raises(ValueError) as raised:
        models["plain"].fit(images01(), batch_size=BATCH, validation_data=(images01() * 255.0,), verbose=0)
    assert str(raised.value) == RANGE


def test_an_image_folder_pipeline_says_what_to_do(tmp_path):
    """keras.utils.image_dataset_from_directory gives (images, labels) in 0..255: each step of the fix is named."""
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        for i in range(4):
            pixels = rng.integers(0, 256, (8, 8, 1), dtype=np.uint8)
            pixels[0, 0, 0], pixels[0, 1, 0] = 0, 255
            tf.io.write_file(str(tmp_path / cls / f"{i}.png"), tf.io.encode_png(pixels))
    ds = keras.utils.image_dataset_from_directory(tmp_path, image_size=(8, 8), color_mode="grayscale",
                                                  batch_size=4, shuffle=False)
    vae = keras_vae.build_vae(SHAPE, 2, architecture="mlp", hidden_units=(8,), seed=0)
    vae.compile(optimizer="adam")
    with pytest.raises(ValueError) as raised:
        vae.fit(ds, verbose=0)
    assert str(raised.value) == UNCONDITIONAL
    with pytest.raises(ValueError) as raised:
        vae.fit(ds.map(lambda x, y: x), verbose=0)
    assert str(raised.value) == RANGE
    rescale = keras.layers.Rescaling(1 / 255)
    history = vae.fit(ds.map(lambda x, y: rescale(x)), epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all() and 0 < history["loss"][-1] < 100  # 64 pixels in [0, 1]: tens of nats
    cvae = keras_vae.build_vae(SHAPE, 2, architecture="mlp", hidden_units=(8,), seed=0, variant="cvae", num_classes=2)
    cvae.compile(optimizer="adam")
    assert np.isfinite(cvae.fit(ds.map(lambda x, y: (rescale(x), y)), verbose=0).history["loss"]).all()


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("kind", ["array", "tensor", "dataset", "filtered dataset", "generator"])
def test_zero_examples_is_a_value_error_naming_it(models, kind, entry):
    images = images01()[:0]
    if kind == "array":
        data = images
    elif kind == "tensor":
        data = tf.constant(images)
    elif kind == "dataset":
        data = tf.data.Dataset.from_tensor_slices(images).batch(BATCH)
    elif kind == "filtered dataset":  # of unknown size until it runs
        data = tf.data.Dataset.from_tensor_slices(images01()).batch(BATCH).filter(lambda x: False)
    else:
        data = (x for x in [])
    with pytest.raises(ValueError, match=f"^{entry} got zero examples: the data hold no images.$"):
        getattr(models["plain"], entry)(data, verbose=0)


def test_an_epoch_whose_steps_were_all_skipped_reports_nan_not_zero():
    """Under mixed_float16 the loss scale's warm-up skips the first steps (float16 gradients overflow at 2**15)."""
    images = np.zeros((256, 28, 28, 1), np.float32)
    images[:, 8:20, 6:22] = 1.0
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        vae = keras_vae.build_vae((28, 28, 1), 4, architecture="conv", seed=0)
        vae.compile(optimizer="adam")
        history = vae.fit(images, epochs=12, steps_per_epoch=1, batch_size=64, verbose=0).history
    finally:
        keras.mixed_precision.set_global_policy("float32")
    skipped = np.array(history["skipped_steps"])
    assert skipped[0] == 1 and (skipped == 0).any(), skipped  # the warm-up, then applied steps
    for key in ("loss", "reconstruction", "kl", "elbo"):
        values = np.array(history[key])
        assert np.isnan(values[skipped == 1]).all(), (key, values, skipped)
        assert np.isfinite(values[skipped == 0]).all(), (key, values, skipped)
    assert (np.array(history["loss"])[skipped == 0] > 100).all()


def test_a_partly_skipped_epoch_averages_its_applied_steps_only():
    metric = AppliedMean(name="loss")
    metric.update_state([0.0, 0.0], sample_weight=[0.0, 0.0], applied=0.0)  # a skipped step
    assert np.isnan(float(metric.result()))
    metric.update_state([500.0, 600.0], sample_weight=[1.0, 1.0])
    assert float(metric.result()) == 550.0
    metric.reset_state()
    metric.update_state([7.0], sample_weight=[0.0])  # applied, with no weight: 0.0 as keras.metrics.Mean gives
    assert float(metric.result()) == 0.0


def test_datasets_are_checked_under_xla_too():
    """XLA drops assertions from the step it compiles: under jit_compile the pipeline checks the batches."""
    vae = keras_vae.build_vae(SHAPE, 2, architecture="mlp", hidden_units=(8,), seed=0)
    vae.compile(optimizer="adam", jit_compile=True)
    with pytest.raises(ValueError) as raised:
        vae.fit(tf.data.Dataset.from_tensor_slices(images01() * 255.0).batch(BATCH), verbose=0)
    assert str(raised.value) == RANGE
    history = vae.fit(tf.data.Dataset.from_tensor_slices((images01(), np.zeros(N))).batch(BATCH).map(
        lambda x, y: x), verbose=0).history
    assert np.isfinite(history["loss"]).all()
