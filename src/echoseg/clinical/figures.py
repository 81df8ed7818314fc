"""Sequence figures: the LV area (or volume) curve with ED/ES and flagged frames marked, and the
frame-to-frame Dice of each structure with flicker frames marked. PNG, matplotlib Agg, written
atomically through :mod:`echoseg.evaluation.figures`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from echoseg.clinical.sequence import PhaseReference, Phases
from echoseg.evaluation.figures import COLORS, _save, plt
from echoseg.labels import STRUCTURES

UNIT_NAMES = {"mm2": "LV area (mm²)", "px2": "LV area (px²)", "ml": "LV volume (ml)"}


def _frame_axis(ax, frame_time_ms: float | None) -> None:
    ax.set_xlabel("frame (0-based)" if frame_time_ms is None
                  else f"frame (0-based, {frame_time_ms:g} ms per frame)", fontsize=9)


def curve_figure(curve: np.ndarray, phases: Phases, path: Path | str, *, unit: str = "px2",
                 reference: PhaseReference | None = None, title: str | None = None) -> Path:
    """Write a PNG of ``curve`` (T,) against the frame with every ED (red triangle up), ES
    (blue triangle down), flagged frame (grey cross) and, if given, the ``reference`` ED and
    ES frames (dashed lines, named after its source) marked. ``unit``: "mm2", "px2", "ml" or
    any axis label."""
    c = np.asarray(curve, dtype=np.float64)
    frames = np.arange(len(c))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ok = np.ones(len(c), bool)
    ok[list(phases.flagged)] = False
    ax.plot(frames[ok], c[ok], "-", color="0.3", lw=1.2, label="curve")
    for frames_, marker, color, name in ((phases.ed_frames, "^", "red", "ED"),
                                         (phases.es_frames, "v", "blue", "ES")):
        if frames_:
            ax.plot(frames_, c[list(frames_)], marker, color=color, ms=8, ls="", label=name)
    if phases.flagged:
        ax.plot(phases.flagged, c[list(phases.flagged)], "x", color="0.5", ms=8, ls="",
                label="flagged")
    if reference is not None:
        for frames_, color, name in ((reference.ed, "red", "ED"), (reference.es, "blue", "ES")):
            for i, frame in enumerate(frames_):
                ax.axvline(frame, color=color, ls="--", lw=0.8,
                           label=f"{name} ({reference.source})" if i == 0 else None)
    ax.set_ylabel(UNIT_NAMES.get(unit, unit), fontsize=9)
    _frame_axis(ax, phases.frame_time_ms)
    ax.legend(fontsize=8, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def temporal_figure(dice: Mapping[str, np.ndarray], path: Path | str, *,
                    flicker: Iterable[int] = (), frame_time_ms: float | None = None,
                    title: str | None = None) -> Path:
    """Write a PNG of the Dice between frames t and t+1 (plotted at t + 0.5) of each structure
    in ``dice`` (name -> (T-1,), as :func:`echoseg.clinical.temporal.temporal_dice` returns),
    with ``flicker`` frames shaded."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, values in dice.items():
        values = np.asarray(values, dtype=np.float64)
        color = COLORS.get(STRUCTURES.get(name, -1))
        ax.plot(np.arange(len(values)) + 0.5, values, "-o", ms=3, lw=1.2, color=color,
                label=name)
    for i, frame in enumerate(flicker):
        ax.axvspan(frame - 0.5, frame + 0.5, color="orange", alpha=0.3,
                   label="flicker" if i == 0 else None)
    ax.set_ylabel("Dice with next frame", fontsize=9)
    ax.set_ylim(top=1.02)
    _frame_axis(ax, frame_time_ms)
    ax.legend(fontsize=8, loc="lower left")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
