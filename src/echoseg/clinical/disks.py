"""One apical view measured for the method of disks: long axis, LV area and disk diameters.

The long axis (base midpoint to apex, length L) is cut into ``n_disks`` slabs of height L / n;
each disk's diameter is measured at the middle of its slab, along the line perpendicular to the
axis, as the total length of that line inside the LV (lines are sampled every quarter of the
smaller pixel side; see ``echoseg.clinical.geometry`` for the physical coordinates). Lengths are
in mm when the pixel spacing is known, else in pixels; areas likewise in mm^2 or px^2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from echoseg.clinical.geometry import (
    Scale,
    find_apex,
    find_base,
    lookup,
    lv_piece,
    physical_scale,
)

N_DISKS = 20
PROFILE_DISKS = 100  # the dense diameter profile behind ViewGeometry.diameters_at


@dataclass
class ViewGeometry:
    """The method-of-disks geometry of one view and phase.

    Points are (row, col) in pixels of the label map (floats). ``length`` (the long axis L),
    ``diameters`` and ``profile`` are in ``unit`` ("mm" or "px"); ``area`` (the LV piece
    measured) in unit^2. ``disk_segments[i]`` holds the two ends of disk i, basal disk first.
    """

    shape: tuple[int, int]
    spacing: tuple[float, float] | None
    unit: str
    base: np.ndarray  # (2, 2): the two annulus points, left first
    apex: np.ndarray  # (2,)
    length: float
    area: float
    diameters: np.ndarray  # (n_disks,) at the middle of each slab, base to apex
    disk_segments: np.ndarray  # (n_disks, 2, 2)
    profile: np.ndarray = field(repr=False)  # (PROFILE_DISKS,) diameters, base to apex
    base_method: str = "LA"  # "LA" (LV-LA interface) or "chord" (fallback)
    problems: list[str] = field(default_factory=list)

    @property
    def base_mid(self) -> np.ndarray:
        """The base midpoint (row, col, pixels): where the long axis starts."""
        return self.base.mean(axis=0)

    @property
    def disk_height(self) -> float:
        """L / n_disks, in ``unit``: this view's own disk height."""
        return self.length / len(self.diameters)

    def diameters_at(self, fractions: np.ndarray | list[float]) -> np.ndarray:
        """Diameters (``unit``) at positions along the long axis given as fractions of L (0 at
        the base, 1 at the apex), interpolated in a profile of 100 disks; 0 beyond the axis."""
        fractions = np.asarray(fractions, dtype=float)
        grid = (np.arange(PROFILE_DISKS) + 0.5) / PROFILE_DISKS
        values = np.interp(fractions, grid, self.profile)
        return np.where((fractions < 0) | (fractions > 1), 0.0, values)


def measure_view(label_map: np.ndarray, spacing: tuple[float, float] | None,
                 n_disks: int = N_DISKS) -> ViewGeometry:
    """Measure the LV of one apical view (2CH or 4CH) at one phase.

    ``label_map``: (H, W) labels (0 background, 1 LV, 2 MYO, 3 LA; (1, H, W) is taken as
    (H, W)), apex at the top by
    convention (nothing here needs it except the fallback base, which looks for a
    near-horizontal chord). ``spacing``: pixel size in mm as (row_mm, col_mm), or None to
    measure in pixels. Returns a ViewGeometry (lengths in mm or px) whose ``problems`` list what
    was measured despite a problem (several LV pieces, fallback base). Raises DataError with one
    line when nothing can be measured (not 2D, no LV, LV too small, no base).
    """
    scale = physical_scale(spacing)
    label_map = np.asarray(label_map)
    if label_map.ndim == 3 and label_map.shape[0] == 1:  # a one-slice volume (CAMUS 2019 .mhd)
        label_map = label_map[0]
    lv, problems = lv_piece(label_map)
    base, method, base_problems = find_base(lv, label_map, scale)
    origin = base.mean(axis=0)
    apex = find_apex(lv, scale, origin)
    length = float(np.linalg.norm(apex - origin))
    diameters, segments = disk_chords(lv, scale, origin, apex, (np.arange(n_disks) + 0.5) / n_disks)
    profile, _ = disk_chords(lv, scale, origin, apex,
                             (np.arange(PROFILE_DISKS) + 0.5) / PROFILE_DISKS)
    to_pixels = 1 / np.asarray(scale)
    return ViewGeometry(
        shape=tuple(label_map.shape), spacing=None if spacing is None else scale,
        unit="px" if spacing is None else "mm", base=base * to_pixels, apex=apex * to_pixels,
        length=length, area=float(lv.sum()) * scale[0] * scale[1], diameters=diameters,
        disk_segments=segments * to_pixels, profile=profile, base_method=method,
        problems=problems + base_problems)


def disk_chords(lv: np.ndarray, scale: Scale, origin: np.ndarray, apex: np.ndarray,
                fractions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chords of ``lv`` perpendicular to the axis ``origin`` -> ``apex`` (physical units) at
    ``fractions`` of its length. Returns the chord lengths (total length inside the LV, physical
    units) and their ends ((N, 2, 2), physical units: first and last LV sample; the centre of
    the line twice when it misses the LV)."""
    axis = apex - origin
    length = float(np.linalg.norm(axis))
    along = axis / length
    across = np.array([-along[1], along[0]])
    step = min(scale) / 4
    pixels = np.argwhere(lv) * np.asarray(scale) - origin
    span = pixels @ across  # every LV pixel centre across the axis
    margin = float(np.hypot(*scale))
    offsets = np.arange(span.min() - margin, span.max() + margin + step, step)
    centres = origin + np.asarray(fractions)[:, None] * axis  # (N, 2)
    samples = centres[:, None, :] + offsets[None, :, None] * across  # (N, S, 2)
    inside = lookup(lv, scale, samples)
    chords = inside.sum(axis=1) * step
    ends = np.repeat(centres[:, None, :], 2, axis=1)
    hit = inside.any(axis=1)
    first = np.argmax(inside, axis=1)
    last = inside.shape[1] - 1 - np.argmax(inside[:, ::-1], axis=1)
    ends[hit, 0] = centres[hit] + (offsets[first[hit]] - step / 2)[:, None] * across
    ends[hit, 1] = centres[hit] + (offsets[last[hit]] + step / 2)[:, None] * across
    return chords, ends
