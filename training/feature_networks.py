"""The domain feature networks behind the sample-quality metric, trained by the package itself and cached.

- ``mnist`` (also used for ``binarized_mnist``): a digit classifier on the labelled MNIST files, trained
  on grey images and on Bernoulli draws of them, so its features suit both datasets. The train split is
  used when the data holds it; otherwise (the shared data holds only the labelled test set) the first
  80% of the test split, with the rest held out for its accuracy.
- ``sprites``: a classifier of all five sprite factors (one head each) on rendered train sprites.

The network is cached as ``<cache>/feature_networks/<name>.keras`` (``<cache>`` is ``$KERAS_VAE_CACHE``,
default ``~/.cache/keras-vae``), written atomically, with ``<name>.json`` beside it holding its held-out
accuracy (printed whenever it is loaded) and its training budget: a network cached under another budget is
retrained, so every figure comes from the network the current `BUDGETS` describe.

Example:

>>> extractor, info = get_feature_extractor("binarized_mnist", data_dir="../shared/data")
feature network mnist: held-out accuracy 0.978 (...)
>>> info["accuracy"]
0.978
"""

import json
import os

from keras_vae.training.names import feature_network_name as network_name

HELD_OUT_FRACTION = 0.2
# Training budgets: small, the metric needs discriminative features rather than a state-of-the-art classifier.
# The sprites network trains in under a minute on 2 CPU cores (held-out accuracy 0.74, as 4 epochs at the
# default 1e-3 gave in twice the time; a third epoch gives 0.80), so `make train` can print sample quality on its
# first run. Adam's learning rate is 1e-3 unless a budget names one.
BUDGETS = {"mnist": {"epochs": 4, "examples": None, "filters": (32, 64, 128)},
           "sprites": {"epochs": 2, "examples": 30_000, "filters": (16, 32, 64, 64), "learning_rate": 3e-3}}
# A square looks the same every quarter turn and an ellipse every half turn: orientation classes are
# ambiguous, so that head shapes the features but stays out of the reported accuracy.
AMBIGUOUS_HEADS = ("orientation",)


def cache_path(name):
    """``$KERAS_VAE_CACHE/feature_networks/<name>.keras`` (default cache ``~/.cache/keras-vae``)."""
    root = os.environ.get("KERAS_VAE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "keras-vae")
    return os.path.join(root, "feature_networks", f"{name}.keras")


def _mnist_folder(data_dir):
    """``data_dir``, or its parent when ``data_dir`` is a sibling folder (e.g. ``shared/data/binarized_mnist``)."""
    from keras_vae.training.local_files import canonical_folder as _canonical_folder

    if data_dir and not _canonical_folder("mnist", "idx", data_dir):
        parent = os.path.dirname(os.path.abspath(data_dir))
        return parent if _canonical_folder("mnist", "idx", parent) else data_dir
    return data_dir


def _mnist_examples(data_dir):
    """(train images, labels, held-out images, labels) of MNIST: train/valid splits, else the test split cut."""
    from keras_vae.training.data import load_examples

    data_dir = _mnist_folder(data_dir)

    try:
        train = load_examples("mnist", "train", data_dir=data_dir, with_labels=True)
        held_out = load_examples("mnist", "valid", data_dir=data_dir, with_labels=True)
    except (ValueError, FileNotFoundError):  # only the test set is at hand (e.g. the shared data)
        images, labels = load_examples("mnist", "test", data_dir=data_dir, with_labels=True)
        cut = int(len(images) * (1 - HELD_OUT_FRACTION))
        train, held_out = (images[:cut], labels[:cut]), (images[cut:], labels[cut:])
    return (*train, *held_out)


def _sprite_examples(count, seed):
    from keras_vae.training.data import load_examples

    held = max(1000, int(count * HELD_OUT_FRACTION))
    train = load_examples("sprites", "train", count=count, with_labels=True, shuffle=True, seed=seed)
    held_out = load_examples("sprites", "valid", count=held, with_labels=True, shuffle=True, seed=seed)
    return (*train, *held_out)


def _heads(name, labels):
    """``{head: class indices}`` for a network's heads from a dataset's labels."""
    if name == "mnist":
        return {"digit": labels.astype("int32")}
    from keras_vae.training.sprites import FACTOR_NAMES

    return {factor: labels[:, i].astype("int32") for i, factor in enumerate(FACTOR_NAMES)}


def _binarized_copies(images, seed):
    """``images`` and a Bernoulli draw of them, stacked: the digit features then suit binarized MNIST too."""
    import numpy as np

    draws = (np.random.default_rng(seed).random(images.shape) < images).astype(images.dtype)
    return np.concatenate([images, draws])


def _accuracies(network, images, heads):
    import numpy as np

    outputs = network.predict(images, batch_size=256, verbose=0)
    return {h: float(np.mean(np.argmax(outputs[h], -1) == y)) for h, y in heads.items()}


def train_feature_network(dataset, data_dir=None, epochs=None, examples=None, seed=0, verbose=1):
    """Trains the feature network of ``dataset``; returns ``(network, info)`` with its held-out accuracy.

    ``info``: ``{"network", "accuracy" (mean over heads but `AMBIGUOUS_HEADS`), "head_accuracy", "train_examples",
    "held_out_examples", "epochs"}``. For MNIST the accuracy is on grey held-out digits; ``binarized_accuracy``
    is on Bernoulli draws of them.
    """
    import keras
    import numpy as np

    from keras_vae.sample_quality import feature_network

    name = network_name(dataset)
    budget = BUDGETS[name]
    epochs = int(epochs or budget["epochs"])
    keras.utils.set_random_seed(seed)
    if name == "mnist":
        x, y, x_held, y_held = _mnist_examples(data_dir)
        x, y = _binarized_copies(x, seed), np.concatenate([y, y])
    else:
        x, y, x_held, y_held = _sprite_examples(int(examples or budget["examples"]), seed)
    heads, held_heads = _heads(name, y), _heads(name, y_held)
    network = feature_network(x.shape[1:], _head_sizes(name), filters=budget["filters"], name=f"{name}_features")
    network.compile(optimizer=keras.optimizers.Adam(budget.get("learning_rate", 1e-3)),
                    loss={h: keras.losses.SparseCategoricalCrossentropy(from_logits=True) for h in heads})
    network.fit(x, heads, batch_size=128, epochs=epochs, shuffle=True, verbose=verbose)
    accuracy = _accuracies(network, x_held, held_heads)
    scored = [a for h, a in accuracy.items() if h not in AMBIGUOUS_HEADS]
    info = {"network": name, "accuracy": float(np.mean(scored)), "head_accuracy": accuracy,
            "train_examples": int(len(x)), "held_out_examples": int(len(x_held)), "epochs": epochs,
            "budget": _budget_record(name)}
    if name == "mnist":
        info["binarized_accuracy"] = _accuracies(network, _binarized_copies(x_held, seed + 1)[len(x_held):],
                                                 held_heads)["digit"]
    return network, info


def _budget_record(name):
    """The budget as JSON stores it: a cached network trained on another budget is retrained."""
    return json.loads(json.dumps(BUDGETS[name]))


def _cached_info(path, name):
    """The cached network's info, or None when it is missing or was trained on another budget."""
    if not (os.path.isfile(path) and os.path.isfile(info_path(path))):
        return None
    with open(info_path(path)) as f:
        info = json.load(f)
    return info if info.get("budget") == _budget_record(name) else None


def _head_sizes(name):
    """``{head: number of classes}`` of a feature network."""
    if name == "mnist":
        return {"digit": 10}
    from keras_vae.training.sprites import FACTOR_NAMES, FACTOR_SIZES

    return dict(zip(FACTOR_NAMES, FACTOR_SIZES))


def _save(network, info, path):
    from keras_vae.training.run_dir import atomic_write, atomic_write_text

    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write(path, network.save)
    atomic_write_text(info_path(path), json.dumps(info, indent=2))


def info_path(path):
    """The JSON beside a cached network that records its held-out accuracy."""
    return os.path.splitext(path)[0] + ".json"


def describe(info):
    """One line: the network and its held-out accuracy."""
    extra = f", binarized {info['binarized_accuracy']:.3f}" if "binarized_accuracy" in info else ""
    return (f"feature network {info['network']}: held-out accuracy {info['accuracy']:.3f}{extra} "
            f"({info['held_out_examples']} held-out examples, {info['epochs']} epochs)")


def get_feature_network(dataset, data_dir=None, retrain=False, verbose=1):
    """The cached feature network of ``dataset`` (trained and cached first when missing) and its info.

    Prints its held-out accuracy. Raises a ValueError naming the supported datasets for any other dataset.
    """
    import keras

    name = network_name(dataset)
    path = cache_path(name)
    info = None if retrain else _cached_info(path, name)
    if info is None:
        print(f"feature network {name}: training it for the sample-quality metric (once; cached as {path})", flush=True)
        network, info = train_feature_network(dataset, data_dir=data_dir, verbose=verbose)
        _save(network, info, path)
    else:
        network = keras.saving.load_model(path, compile=False)
    info = {**info, "path": path}
    print(describe(info))
    return network, info


def get_feature_extractor(dataset, data_dir=None, retrain=False, verbose=1):
    """``(extractor, info)``: the cached network's images -> features model (see `get_feature_network`)."""
    from keras_vae.sample_quality import feature_extractor

    network, info = get_feature_network(dataset, data_dir=data_dir, retrain=retrain, verbose=verbose)
    return feature_extractor(network), info
