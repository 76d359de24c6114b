import keras
import pytest


@pytest.fixture
def small_images(binary_images):
    """64 binary 14x14 rectangles (the shared 28x28 ones, every other pixel): quick to fit."""
    return binary_images[:, ::2, ::2]


def _train_briefly(model, images, epochs=10, lr=3e-3):
    model.compile(optimizer=keras.optimizers.Adam(lr))
    before = model.evaluate(images, batch_size=len(images), verbose=0, return_dict=True)
    history = model.fit(images, batch_size=16, epochs=epochs, verbose=0)
    after = model.evaluate(images, batch_size=len(images), verbose=0, return_dict=True)
    return before, after, history.history


@pytest.fixture
def train_briefly():
    """``train_briefly(model, images, epochs, lr) -> (metrics before, metrics after, history)``."""
    return _train_briefly
