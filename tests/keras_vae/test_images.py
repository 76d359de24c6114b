import numpy as np
import pytest

from keras_vae import image_grid


def test_grid_places_each_image_in_its_tile():
    images = np.stack([np.full((2, 3, 1), v) for v in (0.0, 0.5, 1.0)]).astype(np.float32)
    grid = image_grid(images, columns=2, padding=1)
    assert grid.shape == (2 * 2 + 1, 2 * 3 + 1, 1) and grid.dtype == np.uint8
    assert np.all(grid[0:2, 0:3] == 0) and np.all(grid[0:2, 4:7] == 128) and np.all(grid[3:5, 0:3] == 255)


def test_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        image_grid(np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        image_grid(np.full((1, 2, 2, 1), np.nan))


@pytest.mark.parametrize("columns", [0, -2, 2.5, True])
def test_grid_refuses_a_column_count_that_is_not_a_positive_integer(columns):
    with pytest.raises(ValueError, match=f"columns must be an integer >= 1, got {columns!r}"):
        image_grid(np.zeros((4, 2, 2, 1)), columns=columns)
    with pytest.raises(ValueError, match="padding must be an integer >= 0"):
        image_grid(np.zeros((4, 2, 2, 1)), padding=-1)
