"""Boundary distances: symmetric Hausdorff distance and its percentile variant (HD95).

Conventions, chosen to agree with ``monai.metrics.compute_hausdorff_distance``:
- a structure's boundary is its pixels that have at least one 4-neighbour outside it (the mask
  minus its binary erosion by a 3x3 cross); pixels beyond the image border count as outside;
- distances are Euclidean between boundary pixel centres, scaled per axis by ``spacing``;
- with ``percentile`` p, each directed distance set (prediction->ground truth and ground
  truth->prediction) is reduced to its p-th percentile with linear interpolation
  (``numpy.percentile``'s default, as ``torch.quantile``), and the larger of the two is returned;
  without it, the maximum over both sets.
MONAI computes in float32; this module in float64, so the two agree to ~1e-7 relative.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

_CROSS = ndimage.generate_binary_structure(2, 1)


def _check_spacing(spacing: Sequence[float] | None) -> tuple[float, float]:
    if spacing is None:
        return (1.0, 1.0)
    sp = tuple(float(s) for s in spacing)
    if len(sp) != 2 or not all(math.isfinite(s) and s > 0 for s in sp):
        raise ValueError(f"spacing must be two positive numbers (row, col) in mm, got {spacing!r}")
    return sp  # type: ignore[return-value]


def _boundary(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=_CROSS, border_value=0)


def surface_distances(
    pred_mask: np.ndarray, gt_mask: np.ndarray, spacing: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Directed boundary distances between two binary masks of the same shape.

    Takes boolean 2D masks and an optional (row, col) pixel spacing in mm. Returns
    (distances from each prediction boundary pixel to the nearest ground-truth boundary pixel,
    distances from each ground-truth boundary pixel to the nearest prediction boundary pixel),
    in mm when spacing is given else in pixels; None when either mask is empty.
    """
    sp = _check_spacing(spacing)
    if pred_mask.shape != gt_mask.shape:
        raise ValueError(
            f"shape mismatch: prediction {pred_mask.shape} vs ground truth {gt_mask.shape}"
        )
    if not pred_mask.any() or not gt_mask.any():
        return None
    # Crop to the union's bounding box plus a 1-pixel margin: same boundaries, smaller transforms.
    rows, cols = np.nonzero(pred_mask | gt_mask)
    r0, r1 = max(rows.min() - 1, 0), rows.max() + 2
    c0, c1 = max(cols.min() - 1, 0), cols.max() + 2
    p = _boundary(pred_mask[r0:r1, c0:c1])
    g = _boundary(gt_mask[r0:r1, c0:c1])
    to_gt = ndimage.distance_transform_edt(~g, sampling=sp)
    to_pred = ndimage.distance_transform_edt(~p, sampling=sp)
    return to_gt[p], to_pred[g]


def hausdorff_from_distances(
    distances: tuple[np.ndarray, np.ndarray] | None, percentile: float | None = None
) -> float:
    """Reduce ``surface_distances`` output to a symmetric Hausdorff distance (NaN if None)."""
    if distances is None:
        return math.nan
    if percentile is None:
        return float(max(d.max() for d in distances))
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    return float(max(np.percentile(d, percentile) for d in distances))


def hausdorff(
    pred: np.ndarray,
    gt: np.ndarray,
    label: int,
    spacing: Sequence[float] | None = None,
    percentile: float | None = None,
) -> float:
    """Symmetric Hausdorff distance between the boundaries of ``label`` in two label maps.

    Takes 2D integer label maps of the same shape, the label, an optional (row, col) spacing in
    mm and an optional percentile (95 for HD95). Returns the distance in mm when spacing is given,
    else in pixels of the grid; NaN when the label is absent from either map (callers count NaNs).
    See the module docstring for the boundary and percentile conventions.
    """
    distances = surface_distances(pred == label, gt == label, spacing)
    return hausdorff_from_distances(distances, percentile)
