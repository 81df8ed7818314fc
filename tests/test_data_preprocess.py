"""Resampling to the model grid and back: dtypes, ranges, interpolation, label sets."""

from __future__ import annotations

import numpy as np
import pytest

from echoseg.data.preprocess import image_to_grid, label_to_grid, label_to_native
from echoseg.data.readers import read_image


def test_uint8_same_size_is_only_rescaled():
    image = np.arange(256, dtype=np.uint8).reshape(16, 16)
    grid = image_to_grid(image, 16)
    assert grid.dtype == np.float32 and grid.shape == (16, 16)
    np.testing.assert_array_equal(np.rint(grid * 255).astype(np.uint8), image)
    assert grid[0, 0] == 0.0 and grid[-1, -1] == 1.0


def test_other_dtypes_are_min_max_scaled():
    image = np.array([[100, 300], [500, 500]], np.uint16)
    np.testing.assert_allclose(image_to_grid(image, 2), [[0.0, 0.5], [1.0, 1.0]])
    assert np.all(image_to_grid(np.full((3, 3), 7.5), 4) == 0)  # constant image
    assert image_to_grid(np.array([[-2.0, 2.0]]), 8).min() >= 0.0


def test_shrinking_averages_areas_and_enlarging_interpolates():
    checker = np.indices((4, 4)).sum(axis=0) % 2 * 255
    np.testing.assert_allclose(image_to_grid(checker.astype(np.uint8), 2), 0.5)
    ramp = image_to_grid(np.array([[0, 255]], np.uint8).repeat(2, axis=0), 4)
    assert ramp.shape == (4, 4)
    row = ramp[0]
    assert row[0] == 0.0 and row[-1] == 1.0 and 0.0 < row[1] < row[2] < 1.0  # bilinear ramp


def test_non_square_native_image_to_default_grid():
    image = np.zeros((778, 549), np.uint8)
    assert image_to_grid(image).shape == (256, 256)
    with pytest.raises(ValueError, match="2D"):
        image_to_grid(np.zeros((2, 3, 4)))


def test_label_round_trip_keeps_labels(samples_root):
    label, _ = read_image(samples_root / "patient0001" / "patient0001_4CH_ES_gt.png")
    grid = label_to_grid(label, 256)
    assert grid.dtype == np.uint8 and grid.shape == (256, 256)
    assert set(np.unique(grid)) == {0, 1, 2, 3}  # nearest neighbour never invents values
    back = label_to_native(grid, label.shape)
    assert back.dtype == np.uint8 and back.shape == (224, 224)
    assert set(np.unique(back)) == {0, 1, 2, 3}
    assert np.mean(back == label) > 0.995
    small = label_to_native(grid, (50, 40))
    assert small.shape == (50, 40) and set(np.unique(small)) <= {0, 1, 2, 3}


def test_nearest_is_centred():
    label = np.zeros((4, 4), np.uint8)
    label[1:3, 1:3] = 1
    np.testing.assert_array_equal(label_to_grid(label, 8)[2:6, 2:6], 1)
    assert label_to_grid(label, 8).sum() == 16  # exactly the centre block, no half-pixel shift
