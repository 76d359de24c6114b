"""Fixtures of the model library's tests: small images, brief training, and posterior draws at fixed noise."""

import keras
import pytest


@pytest.fixture
def small_images(binary_images):
    """64 binary 14x14 rectangles (the shared 28x28 ones, every other pixel): quick to fit."""
    return binary_images[:, ::2, ::2]


def _train_briefly(model, images, epochs=10, lr=3e-3, labels=None):
    model.compile(optimizer=keras.optimizers.Adam(lr))
    before = model.evaluate(images, labels, batch_size=len(images), verbose=0, return_dict=True)
    history = model.fit(images, labels, batch_size=16, epochs=epochs, verbose=0)
    after = model.evaluate(images, labels, batch_size=len(images), verbose=0, return_dict=True)
    return before, after, history.history


@pytest.fixture
def train_briefly():
    """``train_briefly(model, images, epochs, lr, labels=None) -> (metrics before, metrics after, history)``."""
    return _train_briefly


def fix_noise(model, offset):
    """Makes ``model`` draw its top codes at ``z = loc + offset * scale`` (no noise), so terms can be computed
    by hand. The KL stays the model's own: analytic where it was analytic, else log q(z) - log p(z) at that z."""
    top_layer = type(model).top_layer

    def fixed(loc, scale, seed):
        layer = top_layer(model, loc, scale, seed)
        z = loc + offset * scale
        log_q, log_p = layer.q.log_prob(z), model.prior.log_prob(z)
        kl = layer.kl if layer.kl_per_dim is not None else log_q - log_p
        return layer._replace(z=z, log_q=log_q, log_p=log_p, kl=kl)

    model.top_layer = fixed
    return model


@pytest.fixture
def fixed_noise():
    """``fixed_noise(model, offset) -> model`` drawing ``z = loc + offset * scale`` (see `fix_noise`)."""
    return fix_noise
