"""Resampling between an image's native pixel grid and the model's square grid (256x256).

Non-finite pixels (NaN, +inf, -inf) of a float image are set to the minimum finite value of that
image before scaling, by :func:`fill_non_finite`, the one rule every path (training, evaluation,
prediction) applies; an image with no finite pixel is refused.
"""

from __future__ import annotations

import cv2
import numpy as np

DEFAULT_SIZE = 256


def image_to_grid(image: np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """Resample a 2D image (H, W) to a float32 (size, size) array with values in [0, 1].

    uint8 intensities are divided by 255; any other dtype is min-max scaled (a constant image
    gives zeros), after :func:`fill_non_finite`. Shrinking uses area averaging, enlarging
    bilinear interpolation; an image already of that size is only rescaled. Raises ValueError
    when no pixel is finite.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2D image (H, W), got shape {image.shape}")
    if image.dtype == np.uint8:
        x = image.astype(np.float32) * np.float32(1 / 255)
    else:
        x = minmax_scale(fill_non_finite(image)[0]).astype(np.float32)
    if x.shape != (size, size):
        shrink = size <= x.shape[0] and size <= x.shape[1]
        method = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        x = cv2.resize(x, (size, size), interpolation=method)
    return np.clip(x, 0.0, 1.0, out=x)


def minmax_scale(image: np.ndarray) -> np.ndarray:
    """Finite values scaled to [0, 1] by their minimum and maximum, as float64 (zeros for a
    constant image). Works in halves, so that even values spanning the whole float64 range do
    not overflow (halving is exact: ordinary images give the same numbers)."""
    x = np.asarray(image, dtype=np.float64) / 2
    low, high = float(x.min()), float(x.max())
    return (x - low) / (high - low) if high > low else np.zeros_like(x)


def fill_non_finite(image: np.ndarray) -> tuple[np.ndarray, int]:
    """Set the NaN and infinite pixels of an image to its minimum finite value.

    Takes an array of any shape and dtype (pass one 2D frame at a time for a sequence).
    Returns (image, count): the same array when there is nothing to replace (integer dtypes,
    all finite), else a copy with ``count`` pixels replaced. Raises ValueError when no pixel is
    finite.
    """
    if not np.issubdtype(image.dtype, np.floating) or image.size == 0:
        return image, 0
    finite = np.isfinite(image)
    count = image.size - int(np.count_nonzero(finite))
    if count == 0:
        return image, 0
    if count == image.size:
        raise ValueError("no finite pixel values")
    filled = np.where(finite, image, image[finite].min())
    return filled, count


def label_to_grid(label: np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """Resample a label map (H, W) to uint8 (size, size) by nearest neighbour."""
    return _nearest(label, (size, size))


def label_to_native(pred: np.ndarray, native_size: tuple[int, int]) -> np.ndarray:
    """Map a label map on the model grid back to the image's native (H, W) by nearest neighbour;
    returns uint8 (H, W)."""
    return _nearest(pred, tuple(native_size))


def _nearest(label: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"expected a 2D label map (H, W), got shape {label.shape}")
    label = label.astype(np.uint8, copy=False)
    if label.shape == shape:
        return label.copy()
    # NEAREST_EXACT samples pixel centres; plain NEAREST shifts the map by up to half a pixel
    return cv2.resize(label, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST_EXACT)
