"""Temporal consistency of a segmented sequence: Dice of each structure between consecutive
frames, and flicker frames.

A frame t (not the first or last) flickers when, for some structure present in the sequence,
(1) its Dice with both neighbours, d(t-1, t) and d(t, t+1), is below ``ratio`` (default 0.9)
x the median of that structure's consecutive-frame Dice over the sequence, and (2) the two
neighbours agree with each other better than with it: d(t-1, t+1) > max of those two. (2) keeps
fast but smooth motion (e.g. a thin MYO in systole, where skipping a frame agrees even less)
from counting as flicker. The first and last frames have one neighbour and are never flagged.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from echoseg.errors import DataError
from echoseg.labels import STRUCTURES
from echoseg.metrics import dice

FLICKER_RATIO = 0.9


def _check(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 3 or 0 in labels.shape:
        raise DataError(f"expected a label sequence of shape (T, H, W), got {labels.shape}")
    return labels


def present_structures(labels: np.ndarray,
                       structures: Mapping[str, int] = STRUCTURES) -> dict[str, int]:
    """The structures (name -> label value) found in at least one frame."""
    labels = _check(labels)
    return {name: value for name, value in structures.items() if np.any(labels == value)}


def temporal_dice(labels: np.ndarray, structures: Mapping[str, int] = STRUCTURES,
                  step: int = 1) -> dict[str, np.ndarray]:
    """Dice of each structure between frames t and t + ``step`` of a (T, H, W) label sequence:
    name -> float array (T - step,) (1.0 where the structure is absent from both frames)."""
    labels = _check(labels)
    n = max(len(labels) - step, 0)
    return {name: np.array([dice(labels[t + step], labels[t], value) for t in range(n)])
            for name, value in structures.items()}


def flicker_frames(labels: np.ndarray, structures: Mapping[str, int] = STRUCTURES,
                   ratio: float = FLICKER_RATIO,
                   near: Mapping[str, np.ndarray] | None = None) -> list[int]:
    """0-based frames that flicker (see the module docstring), over the structures present;
    ``near``: their :func:`temporal_dice` when already measured."""
    if not 0 < ratio <= 1:
        raise ValueError(f"flicker ratio must be in (0, 1], got {ratio}")
    labels = _check(labels)
    if len(labels) < 3:
        return []
    present = present_structures(labels, structures)
    if near is None:
        near = temporal_dice(labels, present)
    skip = temporal_dice(labels, present, step=2)
    flagged: set[int] = set()
    for name in present:
        d, d2 = near[name], skip[name]
        low = d < ratio * float(np.median(d))
        before, after = d[:-1], d[1:]  # frame t = 1..T-2: d(t-1, t), d(t, t+1)
        off_track = d2 > np.maximum(before, after)
        flagged.update(int(t) + 1 for t in np.flatnonzero(low[:-1] & low[1:] & off_track))
    return sorted(flagged)


def temporal_summary(labels: np.ndarray, structures: Mapping[str, int] = STRUCTURES,
                     ratio: float = FLICKER_RATIO,
                     scores: Mapping[str, np.ndarray] | None = None) -> dict:
    """JSON-able ``{"temporal_dice": {name: {"mean", "min"} or None when the structure is in no
    frame (or there is one frame)}, "flicker_frames": [...]}``; ``scores``: the
    :func:`temporal_dice` of the structures present, when already measured."""
    labels = _check(labels)
    if scores is None:
        scores = temporal_dice(labels, present_structures(labels, structures))
    out = {name: None for name in structures}
    for name, d in scores.items():
        if len(d):
            out[name] = {"mean": float(d.mean()), "min": float(d.min())}
    return {"temporal_dice": out,
            "flicker_frames": flicker_frames(labels, structures, ratio, near=scores)}
