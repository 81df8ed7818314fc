"""Test-time augmentation: the network run on a few affine copies of each image, its class
probabilities mapped back and averaged."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import cv2
import numpy as np

# (rotation in degrees, zoom factor, shift x and y as fractions of the side): the identity and
# six views inside the range of the training's affine augmentation (rotation ±10°, zoom
# 0.8-1.1, shift ±10%), so that every view looks like an image the network was trained on.
# Echo views have a fixed orientation, so nnU-Net's mirroring is not used.
VIEWS: tuple[tuple[float, float, float, float], ...] = (
    (0.0, 1.0, 0.0, 0.0),
    (-8.0, 1.0, 0.0, 0.0),
    (8.0, 1.0, 0.0, 0.0),
    (0.0, 0.9, 0.0, 0.0),
    (0.0, 1.05, 0.0, 0.0),
    (0.0, 1.0, 0.05, 0.05),
    (0.0, 1.0, -0.05, -0.05),
)
_INVERSE = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP


def view_matrix(size: int, rotate: float, zoom: float, shift_x: float,
                shift_y: float) -> np.ndarray:
    """The 2x3 affine matrix (pixels of a ``size`` x ``size`` grid) rotating by ``rotate``
    degrees and zooming by ``zoom`` about the grid centre, then shifting by ``shift_x``,
    ``shift_y`` times the side."""
    centre = (size - 1) / 2
    matrix = cv2.getRotationMatrix2D((centre, centre), rotate, zoom)
    matrix[:, 2] += (shift_x * size, shift_y * size)
    return matrix


def view_probabilities(logits_of: Callable[[np.ndarray], np.ndarray], grid: np.ndarray,
                       views: tuple[tuple[float, float, float, float], ...] = VIEWS
                       ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per view of ``views``, in order: (probabilities (N, C, S, S), coverage (S, S)) of grid
    images ``grid`` (N, S, S) float32 mapped back onto the original grid.

    ``logits_of`` maps images (N, 1, S, S) float32 to logits (N, C, S, S), called once per
    view. Each view's softmax is warped back (bilinear); pixels that the view moved outside
    the grid are 0 in both arrays (partly so at the edge), so probabilities / coverage is a
    probability wherever coverage > 0. The identity view covers every pixel.
    """
    size = grid.shape[-1]
    for view in views:
        matrix = view_matrix(size, *view)
        warped = np.stack([cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR)
                           for image in grid])
        probs = _softmax(np.asarray(logits_of(np.ascontiguousarray(warped[:, None]))))
        coverage = cv2.warpAffine(np.ones((size, size), np.float32), matrix, (size, size),
                                  flags=_INVERSE)
        yield np.stack([_warp_channels(p, matrix) for p in probs]), coverage


def averaged_probabilities(logits_of: Callable[[np.ndarray], np.ndarray], grid: np.ndarray,
                           views: tuple[tuple[float, float, float, float], ...] = VIEWS
                           ) -> np.ndarray:
    """Class probabilities (N, C, S, S) float32 of grid images ``grid`` (N, S, S) float32,
    averaged over ``views`` (:func:`view_probabilities`), each pixel over the views that
    cover it."""
    return average(view_probabilities(logits_of, grid, views))


def average(per_view: Iterable[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The coverage-weighted mean of :func:`view_probabilities`' (probabilities, coverage)
    pairs, consumed one at a time."""
    total, weight = None, None
    for probs, coverage in per_view:
        total = probs.copy() if total is None else total + probs
        weight = coverage.copy() if weight is None else weight + coverage
    return (total / np.maximum(weight, 1e-6)).astype(np.float32)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _warp_channels(probs: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(C, S, S) probabilities of a warped view back onto the original grid."""
    size = probs.shape[-1]
    return np.stack([cv2.warpAffine(np.ascontiguousarray(c), matrix, (size, size),
                                    flags=_INVERSE) for c in probs])
