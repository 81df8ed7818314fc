"""Test-time augmentation: the network run on a few affine copies of each image, its class
probabilities mapped back and averaged."""

from __future__ import annotations

from collections.abc import Callable

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


def averaged_probabilities(logits_of: Callable[[np.ndarray], np.ndarray], grid: np.ndarray,
                           views: tuple[tuple[float, float, float, float], ...] = VIEWS
                           ) -> np.ndarray:
    """Class probabilities (N, C, S, S) float32 of grid images ``grid`` (N, S, S) float32,
    averaged over ``views``.

    ``logits_of`` maps images (N, 1, S, S) float32 to logits (N, C, S, S). Each view's
    softmax is warped back onto the original grid (bilinear); a pixel that a view moved
    outside the grid gets no vote from that view, and the identity view covers every pixel.
    """
    size = grid.shape[-1]
    total: np.ndarray | None = None
    weight = np.zeros((size, size), np.float32)
    for view in views:
        matrix = view_matrix(size, *view)
        warped = np.stack([cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR)
                           for image in grid])
        probs = _softmax(np.asarray(logits_of(np.ascontiguousarray(warped[:, None]))))
        coverage = cv2.warpAffine(np.ones((size, size), np.float32), matrix, (size, size),
                                  flags=_INVERSE)
        # pixels warped in from outside the view are 0 in ``back`` and partly so in
        # ``coverage`` alike: the ratio below stays a probability
        back = np.stack([_warp_channels(p, matrix) for p in probs])
        total = back if total is None else total + back
        weight += coverage
    return total / np.maximum(weight, 1e-6)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _warp_channels(probs: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(C, S, S) probabilities of a warped view back onto the original grid."""
    size = probs.shape[-1]
    return np.stack([cv2.warpAffine(np.ascontiguousarray(c), matrix, (size, size),
                                    flags=_INVERSE) for c in probs])
