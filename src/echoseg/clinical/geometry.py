"""The LV long axis in one apical view: the LV piece measured, the mitral-annulus base, the apex.

Points are (row, col) pairs. Inside this module they are in physical units: mm when the pixel
spacing is known, else pixels (a spacing of 1 x 1). A pixel (r, c) is the square of side
(row_mm, col_mm) centred on (r * row_mm, c * col_mm), and the label map is looked up at the
nearest pixel of any physical point (:func:`lookup`). Measuring that way is the same as
resampling the mask to very fine isotropic pixels with nearest-neighbour interpolation:
anisotropic spacing is honoured without resampling the array, and lengths run to pixel edges.

The base is the segment between the two ends of the LV-LA interface (the mitral annulus, where
LV, MYO and LA meet). Without an LV-LA interface, or with one too narrow to be the valve (a
stray touch of a predicted LA on the LV wall), it falls back to the longest near-horizontal
straight stretch of the LV contour (the flat base that experts draw across the annulus, as the
CAMUS tooling finds it), flagged in the problems. The apex is the LV point farthest from the
base midpoint; the long axis runs from that midpoint to the apex, up to the LV's pixel edge.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy import ndimage

from echoseg.errors import DataError
from echoseg.labels import LA, LV

MIN_LV_PIXELS = 20  # fewer LV pixels than this cannot give a long axis and 20 disks
CHORD_POINTS = 256  # contour points searched for the fallback base (a subsample)
CHORD_TOLERANCE = 0.015  # the fallback base: contour within this fraction of the LV size
CHORD_MAX_SLOPE = 1.0  # the fallback base: |d row| <= |d col| (within 45 degrees of horizontal)
NO_LA = "no LA (label 3): base from the longest near-horizontal LV chord"
LV_APART = "LV does not touch the LA: base from the longest near-horizontal LV chord"
SHORT_CONTACT = "LV-LA contact too narrow: base from the longest near-horizontal LV chord"
MIN_CONTACT = 0.25  # an LV-LA contact narrower than this x sqrt(LV area) is not the base

Scale = tuple[float, float]


def physical_scale(spacing: tuple[float, float] | None) -> Scale:
    """The (row, col) pixel size to measure with: ``spacing`` in mm, or (1, 1) pixel when
    None. Raises DataError when a spacing value is not a positive finite number."""
    if spacing is None:
        return 1.0, 1.0
    try:
        row, col = (float(value) for value in spacing)
    except (TypeError, ValueError):
        raise DataError(f"invalid pixel spacing {spacing!r}: expected (row_mm, col_mm)") from None
    if not all(math.isfinite(v) and v > 0 for v in (row, col)):
        raise DataError(f"invalid pixel spacing {spacing!r}: expected positive numbers in mm")
    return row, col


def lv_piece(label_map: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The largest 8-connected LV piece (bool mask) and the problems found: several pieces are
    reported ("LV in N pieces: ...") and only the largest is measured. Raises DataError when the
    map is not 2D, has no LV, or too small an LV to measure."""
    label_map = np.asarray(label_map)
    if label_map.ndim != 2:
        raise DataError(f"expected a 2D label map, got shape {label_map.shape}")
    lv = label_map == LV
    total = int(lv.sum())
    if total == 0:
        raise DataError(f"no LV (label {LV}) in the label map")
    pieces, n = ndimage.label(lv, structure=np.ones((3, 3), bool))
    problems = []
    if n > 1:
        sizes = np.bincount(pieces.ravel())[1:]
        lv = pieces == int(np.argmax(sizes)) + 1
        problems.append(f"LV in {n} pieces: measured the largest "
                        f"({100 * sizes.max() / total:.0f}% of the LV pixels)")
    if int(lv.sum()) < MIN_LV_PIXELS:
        raise DataError(f"LV too small to measure ({int(lv.sum())} pixels)")
    return lv, problems


def lookup(mask: np.ndarray, scale: Scale, points: np.ndarray) -> np.ndarray:
    """``mask`` at the nearest pixel of each physical point ((..., 2) array of (row, col));
    False outside the image."""
    rows = np.floor(points[..., 0] / scale[0] + 0.5).astype(np.int64)
    cols = np.floor(points[..., 1] / scale[1] + 0.5).astype(np.int64)
    valid = (rows >= 0) & (rows < mask.shape[0]) & (cols >= 0) & (cols < mask.shape[1])
    out = np.zeros(rows.shape, bool)
    out[valid] = mask[rows[valid], cols[valid]]
    return out


def find_base(lv: np.ndarray, label_map: np.ndarray,
              scale: Scale) -> tuple[np.ndarray, str, list[str]]:
    """The two base points ((2, 2) array, physical units), how they were found ("LA" or
    "chord") and the problems (the fallback is always reported). An LV-LA contact narrower than
    a quarter of the square root of the LV area (a stray touch, not a mitral valve) counts as
    no contact. Raises DataError when no base can be found."""
    contact = _la_contact(lv, np.asarray(label_map) == LA)
    if len(contact):
        pair = _farthest_pair(contact * np.asarray(scale))
        width = float(np.linalg.norm(pair[1] - pair[0]))
        if width >= MIN_CONTACT * math.sqrt(lv.sum() * scale[0] * scale[1]):
            return pair, "LA", []
        problem = SHORT_CONTACT
    else:
        problem = NO_LA if not (np.asarray(label_map) == LA).any() else LV_APART
    return _chord_base(lv, scale), "chord", [problem]


def find_apex(lv: np.ndarray, scale: Scale, origin: np.ndarray) -> np.ndarray:
    """The apex (physical units): the direction of the LV pixel farthest from ``origin`` (the
    base midpoint), at the LV's edge along that direction."""
    points = np.argwhere(lv) * np.asarray(scale)
    far = points[np.argmax(((points - origin) ** 2).sum(axis=1))]
    reach = float(np.linalg.norm(far - origin))
    if reach == 0:
        raise DataError("LV too small to measure (no long axis)")
    step = min(scale) / 4
    direction = (far - origin) / reach
    t = np.arange(0.0, reach + 2 * max(scale), step)
    inside = lookup(lv, scale, origin + t[:, None] * direction)
    return origin + (t[inside].max() + step / 2) * direction


def _la_contact(lv: np.ndarray, la: np.ndarray) -> np.ndarray:
    """Pixel-edge midpoints (row, col, pixels) between the LV and the LA piece it touches most."""
    la_pieces, n = ndimage.label(la)
    if n == 0:
        return np.zeros((0, 2))
    points, owners = [], []
    for axis in (0, 1):
        head = [slice(None), slice(None)]
        tail = [slice(None), slice(None)]
        head[axis], tail[axis] = slice(None, -1), slice(1, None)
        for near, far in ((lv[tuple(head)], la_pieces[tuple(tail)]),
                          (lv[tuple(tail)], la_pieces[tuple(head)])):
            hit = np.argwhere(near & (far > 0)).astype(float)
            owners.append(far[near & (far > 0)])
            hit[:, axis] += 0.5  # the edge between the two pixels
            points.append(hit)
    points_all, owners_all = np.concatenate(points), np.concatenate(owners)
    if not len(points_all):
        return points_all
    main = np.bincount(owners_all).argmax()
    return points_all[owners_all == main]


def _farthest_pair(points: np.ndarray) -> np.ndarray:
    """The two points of ``points`` ((N, 2)) farthest apart, as a (2, 2) array."""
    if len(points) == 1:
        return np.stack([points[0], points[0]])
    hull = cv2.convexHull(points.astype(np.float32)).reshape(-1, 2).astype(float)
    if len(hull) < 2:
        hull = points
    gaps = ((hull[:, None, :] - hull[None, :, :]) ** 2).sum(axis=-1)
    i, j = np.unravel_index(np.argmax(gaps), gaps.shape)
    pair = np.stack([hull[i], hull[j]])
    return pair[np.argsort(pair[:, 1])]  # left point first


def _chord_base(lv: np.ndarray, scale: Scale) -> np.ndarray:
    """The longest chord between two LV contour points, within 45 degrees of horizontal, with
    the contour between them (in one direction) within a tolerance of the chord."""
    found, _ = cv2.findContours(lv.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(found, key=len).reshape(-1, 2)[:, ::-1].astype(float) * np.asarray(scale)
    contour = contour[:: max(1, len(contour) // CHORD_POINTS)]
    n = len(contour)
    extent = float(np.linalg.norm(np.ptp(contour, axis=0)))
    tolerance = max(CHORD_TOLERANCE * extent, 2 * math.hypot(*scale))
    best, pair = 0.0, None
    offsets = np.arange(2, n - 1)
    for i in range(n):
        ring = contour[(i + np.arange(n)) % n]  # ring[0] is point i, ring[k] is k steps on
        chord = ring[offsets] - ring[0]  # (J, 2): every candidate end
        length = np.linalg.norm(chord, axis=1)
        flat = np.abs(chord[:, 0]) <= CHORD_MAX_SLOPE * np.abs(chord[:, 1])
        if not flat.any() or length[flat].max() <= best:
            continue
        # distance of ring[k] (0 < k < j) to the chord line through ring[0] and ring[j]
        rel = ring[None, 1:n - 2, :] - ring[0]
        cross = np.abs(chord[:, None, 0] * rel[..., 1] - chord[:, None, 1] * rel[..., 0])
        far = cross / np.maximum(length[:, None], 1e-12)
        between = np.arange(1, n - 2)[None, :] < offsets[:, None]
        straight = np.where(between, far, 0.0).max(axis=1) <= tolerance
        good = flat & straight & (length > best)
        if good.any():
            j = int(np.argmax(np.where(good, length, 0.0)))
            best, pair = float(length[j]), np.stack([ring[0], ring[offsets[j]]])
    if pair is None:
        raise DataError("cannot locate the mitral annulus (no LA and no flat LV base)")
    return _onto_edge(lv, scale, pair[np.argsort(pair[:, 1])], 3 * tolerance)


def _onto_edge(lv: np.ndarray, scale: Scale, pair: np.ndarray, limit: float) -> np.ndarray:
    """``pair`` moved across itself, away from the LV's centre, until its midpoint reaches
    the LV's edge (the chord of a staircase contour cuts a little inside the LV)."""
    middle = pair.mean(axis=0)
    chord = pair[1] - pair[0]
    normal = np.array([-chord[1], chord[0]]) / max(float(np.linalg.norm(chord)), 1e-12)
    if (np.argwhere(lv) * np.asarray(scale) - middle).mean(axis=0) @ normal > 0:
        normal = -normal
    step = min(scale) / 4
    t = np.arange(0.0, limit, step)
    inside = lookup(lv, scale, middle + t[:, None] * normal)
    outside = np.flatnonzero(~inside)
    reach = (t[outside[0]] - step / 2) if len(outside) else 0.0
    return pair + max(reach, 0.0) * normal
