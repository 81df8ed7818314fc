"""CAMUS anatomical plausibility criteria on one 2D label map (0 bg, 1 LV, 2 MYO, 3 LA).

An image is an anatomical outlier when any criterion fails; a structure that a criterion needs
but that is missing gives a NaN value, which fails. Thresholds live in ``thresholds.py``.
All measures are in pixels (no spacing), as in the CAMUS tooling.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from echoseg.labels import LA, LV, MYO
from echoseg.metrics.thresholds import ANATOMICAL_THRESHOLDS

_SQUARE = np.ones((3, 3), dtype=bool)  # 8-connectivity
_CROSS = ndimage.generate_binary_structure(2, 1)  # 4-connectivity


def _enclosed(mask: np.ndarray, structure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label the complement of ``mask`` (``structure`` connectivity); returns (labels, flags)
    where ``flags[k]`` is True for components that do not touch the image border (holes).
    One labelling pass: much faster than ``binary_fill_holes``'s iterated dilation."""
    lab, n = ndimage.label(~mask, structure=structure)
    flags = np.ones(n + 1, dtype=bool)
    flags[0] = False
    flags[lab[0]] = flags[lab[-1]] = flags[lab[:, 0]] = flags[lab[:, -1]] = False
    return lab, flags


def _holes(mask: np.ndarray) -> float:
    """Background pixels enclosed by ``mask`` (background 8-connected to the border is outside)."""
    lab, flags = _enclosed(mask, _SQUARE)
    return float(flags[lab].sum())


def _components(mask: np.ndarray) -> float:
    return float(ndimage.label(mask, structure=_SQUARE)[1])


def _own_holes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Holes of ``a`` (4-connected background) that contain no pixel of ``b``."""
    lab, flags = _enclosed(a, _CROSS)
    flags[lab[b]] = False
    return flags[lab]


def _gap_pixels(a: np.ndarray, b: np.ndarray) -> float:
    """Background pixels enclosed by a ∪ b that are not in a hole of a or b alone."""
    union = a | b | _own_holes(a, b) | _own_holes(b, a)
    lab, flags = _enclosed(union, _CROSS)
    return float(flags[lab].sum())


def _frontier_ratio(a: np.ndarray, b: np.ndarray) -> float:
    """Pixels of ``a`` with a ``b`` pixel among their 8 neighbours / bounding-box width of ``a``."""
    touching = (a & ndimage.binary_dilation(b, structure=_SQUARE)).sum()
    cols = np.flatnonzero(a.any(axis=0))
    return float(touching / (cols[-1] - cols[0] + 1))


def _width_ratio(lv: np.ndarray, myo: np.ndarray) -> float:
    row = int(ndimage.center_of_mass(lv | myo)[0])
    lv_w, myo_w = int(lv[row].sum()), int(myo[row].sum())
    return lv_w / myo_w if lv_w and myo_w else math.nan


def _erosion_ratio(myo: np.ndarray, min_object: float) -> float:
    """3x3 erosions until MYO is no longer one piece / max distance of a MYO pixel to non-MYO.

    After each erosion, fragments smaller than ``min_object`` pixels are dropped, as in the CAMUS
    tooling, so that one-pixel crumbs do not count as a split.
    """
    mask, erosions = myo, 0
    n = ndimage.label(mask, structure=_SQUARE)[1]
    if n != 1:
        return 0.0  # already split
    while n == 1 and erosions <= max(myo.shape):
        mask = ndimage.binary_erosion(mask, structure=_SQUARE, border_value=1)
        lab, n = ndimage.label(mask, structure=_SQUARE)
        if n:
            keep = np.bincount(lab.ravel()) >= min_object
            keep[0] = False
            mask, n = keep[lab], int(keep.sum())
        erosions += 1
    return float(erosions / ndimage.distance_transform_edt(myo).max())


def _criteria(
    lv: np.ndarray, myo: np.ndarray, la: np.ndarray, bg: np.ndarray, small: float
) -> dict[str, tuple[tuple[np.ndarray, ...], Callable[[], float]]]:
    """Criterion name -> (structures it needs, measurement)."""
    return {
        "holes_in_lv": ((lv,), lambda: _holes(lv)),
        "holes_in_la": ((la,), lambda: _holes(la)),
        "holes_in_lv_myo": ((lv, myo), lambda: _holes(lv | myo)),
        "components_in_lv": ((), lambda: _components(lv)),
        "components_in_myo": ((), lambda: _components(myo)),
        "components_in_la": ((), lambda: _components(la)),
        "holes_between_lv_and_myo": ((lv, myo), lambda: _gap_pixels(lv, myo)),
        "holes_between_lv_and_la": ((lv, la), lambda: _gap_pixels(lv, la)),
        "frontier_ratio_lv_bg": ((lv,), lambda: _frontier_ratio(lv, bg)),
        "frontier_ratio_myo_la": ((myo, la), lambda: _frontier_ratio(myo, la)),
        "width_ratio_lv_myo": ((lv, myo), lambda: _width_ratio(lv, myo)),
        "erosion_ratio_myo": ((myo,), lambda: _erosion_ratio(myo, small)),
    }


def passes(name: str, value: float, image_area: int) -> bool:
    """Whether a criterion's measured value is within its thresholds (NaN fails)."""
    if math.isnan(value):
        return False
    bounds = ANATOMICAL_THRESHOLDS[name]
    high = bounds.get("max", math.inf)
    if "max_image_fraction" in bounds:
        high = bounds["max_image_fraction"] * image_area
    return bounds.get("min", -math.inf) <= value <= high


def anatomical_errors(label_map: np.ndarray) -> dict[str, bool | float]:
    """Measure every anatomical criterion on a 2D integer label map.

    Returns ``{criterion: measured value (float, NaN if a needed structure is missing),
    criterion + "_ok": pass flag, ..., "outlier": True if any criterion fails}``; criteria and
    thresholds are listed in ``echoseg.metrics.thresholds.ANATOMICAL_THRESHOLDS``.
    """
    if label_map.ndim != 2:
        raise ValueError(f"expected a 2D label map, got shape {label_map.shape}")
    area = label_map.size
    fg = np.flatnonzero(label_map.any(axis=1)), np.flatnonzero(label_map.any(axis=0))
    if fg[0].size:  # crop to the foreground + 1 pixel: same measures, faster
        r0, r1 = max(fg[0][0] - 1, 0), fg[0][-1] + 2
        c0, c1 = max(fg[1][0] - 1, 0), fg[1][-1] + 2
        label_map = label_map[r0:r1, c0:c1]
    lv, myo, la = label_map == LV, label_map == MYO, label_map == LA
    out: dict[str, bool | float] = {}
    outlier = False
    for name, (needs, measure) in _criteria(lv, myo, la, label_map == 0, area / 2**14).items():
        value = measure() if all(m.any() for m in needs) else math.nan
        ok = passes(name, value, area)
        out[name], out[f"{name}_ok"] = value, ok
        outlier |= not ok
    out["outlier"] = outlier
    return out


def is_anatomical_outlier(label_map: np.ndarray) -> bool:
    """True when the 2D label map fails any anatomical criterion (see ``anatomical_errors``)."""
    return bool(anatomical_errors(label_map)["outlier"])


CRITERIA: tuple[str, ...] = tuple(ANATOMICAL_THRESHOLDS)
