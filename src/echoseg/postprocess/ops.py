"""Per-class post-processing operations on 2D integer label maps (0 is background).

Every operation returns a new map and never moves a pixel from one structure to another:
pixels removed from a structure become background, and pixels added to a structure are taken
only from background.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from echoseg.labels import STRUCTURES

_SQUARE = np.ones((3, 3), dtype=bool)
_CROSS = ndimage.generate_binary_structure(2, 1)


def structuring_element(size: int, shape: str = "disk") -> np.ndarray:
    """A boolean ``size`` x ``size`` structuring element: "disk" (pixels within size/2 of the
    centre) or "square". ``size`` must be odd and >= 3."""
    if size < 3 or size % 2 == 0:
        raise ValueError(f"structuring element size must be odd and >= 3, got {size}")
    if shape == "square":
        return np.ones((size, size), dtype=bool)
    if shape != "disk":
        raise ValueError(f"structuring element shape must be 'disk' or 'square', got {shape!r}")
    r = size // 2
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    return y * y + x * x <= r * r


def largest_component(labels: np.ndarray) -> np.ndarray:
    """Keep, for each structure, only its largest 8-connected component; the rest becomes
    background (0). Ties keep the component found first in raster order."""
    out = labels.copy()
    for value in STRUCTURES.values():
        lab, n = ndimage.label(labels == value, structure=_SQUARE)
        if n > 1:
            sizes = np.bincount(lab.ravel())
            sizes[0] = 0
            out[(lab > 0) & (lab != int(sizes.argmax()))] = 0
    return out


def opening(labels: np.ndarray, element: np.ndarray) -> np.ndarray:
    """Binary opening of each structure with ``element``; removed pixels become background."""
    out = labels.copy()
    for value in STRUCTURES.values():
        mask = labels == value
        out[mask & ~ndimage.binary_opening(mask, structure=element)] = 0
    return out


def closing(labels: np.ndarray, element: np.ndarray) -> np.ndarray:
    """Binary closing of each structure (LV, MYO, LA in turn) with ``element``; a pixel the
    closing adds is given to the structure only if it is still background."""
    out = labels.copy()
    for value in STRUCTURES.values():
        mask = labels == value
        # Pad so that the erosion step does not eat structures touching the image edge.
        pad = element.shape[0]
        closed = ndimage.binary_closing(np.pad(mask, pad, mode="edge"), structure=element)
        added = closed[pad:-pad, pad:-pad] & (out == 0)
        out[added] = value
    return out


def fill_holes(labels: np.ndarray) -> np.ndarray:
    """Fill each structure's holes: background regions (4-connected) enclosed by that structure
    alone. A hole that holds any other structure is left untouched."""
    out = labels.copy()
    for value in STRUCTURES.values():
        mask = out == value
        lab, n = ndimage.label(~mask, structure=_CROSS)
        if n < 2:
            continue
        outside = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
        not_bg = np.bincount(lab.ravel(), weights=(out != 0).ravel(), minlength=n + 1)
        fill = not_bg == 0
        fill[outside] = False
        fill[0] = False
        out[fill[lab]] = value
    return out
