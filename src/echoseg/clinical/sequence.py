"""Whole-sequence LV analysis: per-frame area or volume curves, ED/ES detection per cardiac cycle
robust to single-frame segmentation failures, EF (or FAC) from the detected frames, comparison
with reference ED/ES frames, and a JSON-able summary of a label sequence.

Frames are numbered from 0 everywhere here. CAMUS Info cfg files number them from 1 (patient0001
Info_2CH.cfg: ``ED: 1``, ``ES: 18``, ``NbFrame: 18``: the half sequence runs from ED, its first
frame, to ES, its last); :func:`reference_phases` converts.

Detection (:func:`detect_phases`): frames that are segmentation failures, not motion, are flagged
(:func:`flag_outliers`) and bridged by linear interpolation; the curve is smoothed lightly
(Gaussian, sigma 1 frame); maxima (ED) and minima (ES) must stand out by ``prominence`` x the
curve's range and, when the frame time is known, lie at least one shortest plausible cycle apart
(200 bpm: 300 ms). ED and ES alternate; each is then moved to the largest (smallest) unflagged
raw value between its neighbouring ES (ED). The first or last frame counts as an extremum when
the curve turns there by the prominence and, if interior extrema of that kind exist, it is within
``prominence`` x range of them (a recording cut mid-systole does not make its first frame an ED).
A cycle is an ED and the ES that follows it (systole).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, median_filter

from echoseg.clinical.temporal import present_structures, temporal_dice, temporal_summary
from echoseg.clinical.volumes import ejection_fraction
from echoseg.errors import DataError
from echoseg.labels import LV, STRUCTURES

MAX_HEART_RATE_BPM = 200.0  # shortest plausible cycle: 300 ms
MIN_HEART_RATE_BPM = 30.0  # longest plausible cycle: 2000 ms (heart rate from ED-ED intervals)
PROMINENCE = 0.25  # an ED/ES stands out by this fraction of the curve's range
MEDIAN_WINDOW = 5  # frames, for the outlier residual
OUTLIER_MADS = 5.0  # residual > this many robust standard deviations ...
OUTLIER_FLOOR = 0.3  # ... and > this fraction of the curve's range
SMOOTH_SIGMA = 1.0  # frames


@dataclass(frozen=True)
class Phases:
    """ED/ES frames (0-based) found on one curve.

    ``ed_frames``/``es_frames``: every ED (maximum) and ES (minimum), in frame order;
    ``cycles``: (ed, es) pairs, each ED with the ES that follows it; ``flagged``: frames taken
    as segmentation failures, never chosen; ``ed_frame``/``es_frame``: the unflagged frames of
    the largest and smallest value (the global ED/ES; for a half cycle ED->ES, the one cycle);
    ``heart_rate_bpm`` from the median ED-to-ED interval within 30-200 bpm, or None.
    """

    ed_frames: tuple[int, ...]
    es_frames: tuple[int, ...]
    cycles: tuple[tuple[int, int], ...]
    flagged: tuple[int, ...]
    ed_frame: int | None
    es_frame: int | None
    frame_time_ms: float | None = None
    heart_rate_bpm: float | None = None

    def to_dict(self) -> dict:
        """JSON-able fields (frames 0-based)."""
        return {"ed_frames": list(self.ed_frames), "es_frames": list(self.es_frames),
                "cycles": [{"ed": ed, "es": es} for ed, es in self.cycles],
                "flagged_frames": list(self.flagged), "ed_frame": self.ed_frame,
                "es_frame": self.es_frame, "heart_rate_bpm": self.heart_rate_bpm}


@dataclass(frozen=True)
class EjectionFraction:
    """(ED - ES) / ED in percent: EF on volumes, fractional area change (FAC) on areas.
    ``per_cycle`` follows ``Phases.cycles``; ``mean`` is their mean (None without a cycle);
    ``from_extremes`` uses the global ED/ES frames (None when they are missing)."""

    per_cycle: tuple[float, ...]
    mean: float | None
    from_extremes: float | None

    def to_dict(self) -> dict:
        return {"per_cycle": list(self.per_cycle), "mean": self.mean,
                "from_extremes": self.from_extremes}


def _check_sequence(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 3 or 0 in labels.shape:
        raise DataError(f"expected a label sequence of shape (T, H, W), got {labels.shape}")
    return labels


def _check_frame_time(frame_time_ms: float | None) -> float | None:
    if frame_time_ms is None:
        return None
    if not (math.isfinite(frame_time_ms) and frame_time_ms > 0):
        raise DataError(f"frame time must be a positive number of ms, got {frame_time_ms}")
    return float(frame_time_ms)


def curve_unit(spacing: tuple[float, float] | None) -> str:
    """Unit of :func:`area_curve`: "mm2" with a pixel spacing, else "px2"."""
    return "px2" if spacing is None else "mm2"


def area_curve(labels: np.ndarray, spacing: tuple[float, float] | None = None,
               label: int = LV) -> np.ndarray:
    """Area of ``label`` in each frame of a (T, H, W) label sequence: mm² when ``spacing``
    (row_mm, col_mm) is given, else px² (pixel counts). Returns float64 (T,)."""
    counts = (_check_sequence(labels) == label).sum(axis=(1, 2)).astype(np.float64)
    if spacing is None:
        return counts
    row, col = (float(s) for s in spacing)
    if not (row > 0 and col > 0 and math.isfinite(row * col)):
        raise DataError(f"pixel spacing must be two positive numbers of mm, got {spacing}")
    return counts * row * col


def volume_curve(labels_2ch: np.ndarray, labels_4ch: np.ndarray,
                 volume_of: Callable[[np.ndarray, np.ndarray], float]) -> np.ndarray:
    """Per-frame volumes ``volume_of(frame_2ch, frame_4ch)`` of two time-aligned (T, H, W)
    label sequences (the caller aligns two separate acquisitions first), e.g. with
    ``volume_of=lambda a, b: frame_volume(a, b, spacing_2ch, spacing_4ch)`` (mL) from
    :mod:`echoseg.clinical.volumes`. Returns float64 (T,)."""
    a, b = _check_sequence(labels_2ch), _check_sequence(labels_4ch)
    if len(a) != len(b):
        raise DataError(f"2CH and 4CH sequences must have as many frames to pair them, "
                        f"got {len(a)} and {len(b)}")
    return np.array([float(volume_of(x, y)) for x, y in zip(a, b, strict=True)])


def flag_outliers(curve: np.ndarray) -> np.ndarray:
    """Boolean mask (T,) of frames that look like segmentation failures, not cardiac motion:
    not finite, zero or negative, or a spike whose residual from a median filter (5 frames,
    mirrored ends, over the other frames; for the first and last frame, the smaller of that and
    the residual from the line through the next two frames) exceeds both 5 robust SDs
    (1.4826 x MAD) of the residuals and 0.3 x the range of those frames' values. Assumes about
    10 or more frames per cardiac cycle: coarser curves look like spikes at their extrema."""
    c = np.asarray(curve, dtype=np.float64)
    bad = ~np.isfinite(c) | (c <= 0)
    index = np.flatnonzero(~bad)
    if len(index) < 3:
        return bad
    values = c[index]
    size = min(MEDIAN_WINDOW, len(values) - (1 - len(values) % 2))
    smooth = median_filter(values, size=size, mode="mirror")
    residual = values - smooth
    mad = float(np.median(np.abs(residual - np.median(residual))))
    limit = max(OUTLIER_MADS * 1.4826 * mad, OUTLIER_FLOOR * float(np.ptp(values)))
    residual = np.abs(residual)
    for end, near, far in ((0, 1, 2), (-1, -2, -3)):  # an end may just continue a slope
        residual[end] = min(residual[end], abs(values[end] - 2 * values[near] + values[far]))
    bad[index[residual > limit]] = True
    return bad


def _peaks(values: np.ndarray, prominence: float, distance: int, edges: bool) -> list[int]:
    """Maxima of ``values``; with ``edges`` the ends are mirrored so they can be maxima too."""
    from scipy.signal import find_peaks  # here: scipy.signal takes a second to import

    n = len(values)
    pad = n - 1 if edges else 0
    padded = np.concatenate([values[:0:-1], values, values[-2::-1]]) if edges else values
    found, _ = find_peaks(padded, prominence=prominence, distance=distance)
    index = found - pad
    index = np.where(index < 0, -index, index)
    index = np.where(index >= n, 2 * (n - 1) - index, index)
    peaks = sorted({int(i) for i in index})
    inner = [values[i] for i in peaks if 0 < i < n - 1]
    if inner:  # an end counts only when it is about as extreme as the interior peaks
        peaks = [i for i in peaks if 0 < i < n - 1 or values[i] >= min(inner) - prominence]
    return peaks


def _alternate(maxima: list[int], minima: list[int], smooth: np.ndarray) -> list[tuple[int, int]]:
    """(frame, +1 for ED / -1 for ES) in frame order, two of a kind in a row reduced to the
    more extreme one."""
    merged = sorted([(i, 1) for i in maxima] + [(i, -1) for i in minima])
    out: list[tuple[int, int]] = []
    for frame, kind in merged:
        if out and out[-1][0] == frame:
            continue
        if out and out[-1][1] == kind:
            if kind * smooth[frame] > kind * smooth[out[-1][0]]:
                out[-1] = (frame, kind)
            continue
        out.append((frame, kind))
    return out


def _refine(order: list[tuple[int, int]], curve: np.ndarray, valid: np.ndarray,
            edges: bool) -> list[tuple[int, int]]:
    """Move each extremum to the most extreme unflagged raw value between its neighbours."""
    n, out = len(curve), []
    for k, (_, kind) in enumerate(order):
        lo = order[k - 1][0] + 1 if k > 0 else (0 if edges else 1)
        hi = order[k + 1][0] - 1 if k + 1 < len(order) else (n - 1 if edges else n - 2)
        frames = np.arange(lo, hi + 1)
        frames = frames[valid[frames]]
        if len(frames):
            out.append((int(frames[np.argmax(kind * curve[frames])]), kind))
    return out


def detect_phases(curve: np.ndarray, frame_time_ms: float | None = None, *,
                  prominence: float = PROMINENCE, edges: bool = True) -> Phases:
    """ED (maxima) and ES (minima) of a per-frame LV area or volume curve (T,), per cycle.

    ``frame_time_ms``: time between frames; when given, extrema of a kind lie at least 300 ms
    (200 bpm) apart and a heart rate is estimated. ``prominence``: fraction of the curve's range
    an extremum must stand out by. ``edges``: whether the first/last frame may be ED/ES (CAMUS
    half sequences start at ED and end at ES). See the module docstring for the method.
    """
    c = np.asarray(curve, dtype=np.float64)
    if c.ndim != 1 or len(c) == 0:
        raise ValueError(f"expected a 1D curve of per-frame values, got shape {c.shape}")
    if not 0 <= prominence < 1:
        raise ValueError(f"prominence must be a fraction of the curve's range in [0, 1), "
                         f"got {prominence}")
    frame_time_ms = _check_frame_time(frame_time_ms)
    bad = flag_outliers(c)
    flagged = tuple(int(i) for i in np.flatnonzero(bad))
    valid = ~bad
    frames = np.arange(len(c))
    span = float(np.ptp(c[valid])) if valid.any() else 0.0
    if valid.sum() < 2 or span == 0:
        return Phases((), (), (), flagged, None, None, frame_time_ms)
    clean = np.interp(frames, frames[valid], c[valid])
    smooth = gaussian_filter1d(clean, SMOOTH_SIGMA, mode="mirror") if len(c) > 2 else clean
    distance = 1
    if frame_time_ms is not None:
        distance = max(1, int(60_000.0 / MAX_HEART_RATE_BPM / frame_time_ms))
    height = prominence * float(np.ptp(smooth))
    maxima = _peaks(smooth, height, distance, edges)
    minima = _peaks(-smooth, height, distance, edges)
    order = _refine(_alternate(maxima, minima, smooth), c, valid, edges)
    ed = tuple(f for f, kind in order if kind > 0)
    es = tuple(f for f, kind in order if kind < 0)
    pairs = zip(order[:-1], order[1:], strict=True)
    cycles = tuple((a[0], b[0]) for a, b in pairs if a[1] > 0 > b[1])
    ed_frame = int(frames[valid][np.argmax(c[valid])])
    es_frame = int(frames[valid][np.argmin(c[valid])])
    return Phases(ed, es, cycles, flagged, ed_frame, es_frame, frame_time_ms,
                  _heart_rate(ed, frame_time_ms))


def _heart_rate(ed_frames: tuple[int, ...], frame_time_ms: float | None) -> float | None:
    if frame_time_ms is None or len(ed_frames) < 2:
        return None
    rates = 60_000.0 / (np.diff(ed_frames) * frame_time_ms)
    rates = rates[(rates >= MIN_HEART_RATE_BPM) & (rates <= MAX_HEART_RATE_BPM)]
    return float(np.median(rates)) if len(rates) else None


def _fraction(curve: np.ndarray, ed: int, es: int) -> float | None:
    if not (curve[ed] > 0 and math.isfinite(curve[ed]) and math.isfinite(curve[es])):
        return None
    return float(ejection_fraction(float(curve[ed]), float(curve[es])))


def cycle_ejection_fraction(curve: np.ndarray, phases: Phases) -> EjectionFraction:
    """EF (volumes) or FAC (areas), 100 x (ED - ES) / ED, for each detected cycle, their mean,
    and from the global ED/ES frames. ``curve`` is the one ``phases`` was detected on."""
    c = np.asarray(curve, dtype=np.float64)
    if c.ndim != 1:
        raise ValueError(f"expected a 1D curve of per-frame values, got shape {c.shape}")
    cycles = [_fraction(c, ed, es) for ed, es in phases.cycles]
    per_cycle = tuple(v for v in cycles if v is not None)
    mean = float(np.mean(per_cycle)) if per_cycle else None
    extremes = None
    if phases.ed_frame is not None and phases.es_frame is not None:
        extremes = _fraction(c, phases.ed_frame, phases.es_frame)
    return EjectionFraction(per_cycle, mean, extremes)


@dataclass(frozen=True)
class PhaseReference:
    """ED and ES frames (0-based) that a file or its companion gives, and where they come
    from (``source``, e.g. "Info_2CH.cfg" or "DICOM R Wave Pointer"). Either may be empty:
    a DICOM R-wave pointer marks end-diastole only."""

    ed: tuple[int, ...]
    es: tuple[int, ...] = ()
    source: str = "reference"

    def within(self, n_frames: int) -> PhaseReference:
        """The same reference without the frames outside a sequence of ``n_frames``."""
        return PhaseReference(tuple(f for f in self.ed if 0 <= f < n_frames),
                              tuple(f for f in self.es if 0 <= f < n_frames), self.source)


def reference_phases(info: Mapping[str, object], source: str = "Info cfg") -> PhaseReference:
    """The ED and ES of a CAMUS Info cfg's fields (``ED``/``ES`` are 1-based, as
    :func:`echoseg.data.camus.parse_info_cfg` returns them) as a 0-based PhaseReference."""
    out = []
    for key in ("ED", "ES"):
        value = info.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise DataError(f"Info cfg {key} must be a 1-based frame number, got {value!r}")
        out.append(value - 1)
    return PhaseReference((out[0],), (out[1],), source)


def compare_phases(phases: Phases, reference: PhaseReference) -> dict:
    """Detected minus reference frame for every reference ED and ES frame, using the detected
    ED (ES) nearest to it; in ms too when the frame time is known. JSON-able: ``source`` and
    ``ed``/``es``, lists of {reference, detected, difference_frames, difference_ms} (detected
    and differences None where nothing was detected)."""
    out: dict = {"source": reference.source}
    for name, refs, found in (("ed", reference.ed, phases.ed_frames),
                              ("es", reference.es, phases.es_frames)):
        rows = []
        for ref in refs:
            nearest = min(found, key=lambda f, r=ref: (abs(f - r), f)) if found else None
            diff = None if nearest is None else nearest - int(ref)
            rows.append({"reference": int(ref), "detected": nearest, "difference_frames": diff,
                         "difference_ms": (None if diff is None or phases.frame_time_ms is None
                                           else diff * phases.frame_time_ms)})
        out[name] = rows
    return out


@dataclass(frozen=True)
class SequenceAnalysis:
    """What :func:`analyse_sequence` found: the JSON-able ``summary``, the LV ``areas`` curve,
    its ``phases`` and the frame-to-frame ``dice`` of the structures present (name -> (T-1,)),
    so figures draw what the summary reports without measuring it again."""

    summary: dict
    areas: np.ndarray
    phases: Phases
    dice: dict[str, np.ndarray]


def analyse_sequence(labels: np.ndarray, spacing: tuple[float, float] | None = None,
                     frame_time_ms: float | None = None, *, volumes: np.ndarray | None = None,
                     reference: PhaseReference | None = None, lv_label: int = LV,
                     structures: Mapping[str, int] = STRUCTURES) -> SequenceAnalysis:
    """Measure a (T, H, W) label sequence once; see :func:`sequence_summary` for the summary."""
    labels = _check_sequence(labels)
    frame_time_ms = _check_frame_time(frame_time_ms)
    areas = area_curve(labels, spacing, lv_label)
    phases = detect_phases(areas, frame_time_ms)
    summary = {"n_frames": len(labels), "frame_index_base": 0, "frame_time_ms": frame_time_ms,
               "spacing_mm": None if spacing is None else [float(s) for s in spacing],
               "curve_unit": curve_unit(spacing), "lv_area": [float(a) for a in areas],
               **phases.to_dict(), "fac": cycle_ejection_fraction(areas, phases).to_dict(),
               "volumes": None, "ef": None}
    if volumes is not None:
        volumes = np.asarray(volumes, dtype=np.float64)
        if volumes.shape != (len(labels),):
            raise DataError(f"expected one volume per frame ({len(labels)}), "
                            f"got shape {volumes.shape}")
        vol_phases = detect_phases(volumes, frame_time_ms)
        summary["volumes"] = [float(v) if math.isfinite(v) else None for v in volumes]
        summary["ef"] = {**cycle_ejection_fraction(volumes, vol_phases).to_dict(),
                         **vol_phases.to_dict()}
    summary["reference"] = None if reference is None else compare_phases(phases, reference)
    dice = temporal_dice(labels, present_structures(labels, structures))
    summary.update(temporal_summary(labels, structures, scores=dice))
    return SequenceAnalysis(summary, areas, phases, dice)


def sequence_summary(labels: np.ndarray, spacing: tuple[float, float] | None = None,
                     frame_time_ms: float | None = None, *, volumes: np.ndarray | None = None,
                     reference: PhaseReference | None = None, lv_label: int = LV,
                     structures: Mapping[str, int] = STRUCTURES) -> dict:
    """JSON-able summary of a (T, H, W) label sequence: LV area curve (mm² with ``spacing``
    (row_mm, col_mm), else px²), ED/ES per cycle, flagged frames, FAC (%), EF (%) when per-frame
    ``volumes`` (T,) are given (phases detected on them), frame-to-frame Dice per structure and
    flicker frames, and the comparison with ``reference`` ED/ES frames if given
    (:func:`compare_phases`)."""
    return analyse_sequence(labels, spacing, frame_time_ms, volumes=volumes,
                            reference=reference, lv_label=lv_label,
                            structures=structures).summary
