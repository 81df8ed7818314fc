"""A picture of the method of disks on one view: the image with the label overlay, the mitral
annulus (base), the long axis to the apex and the disks, at the physical aspect ratio."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from echoseg.clinical.disks import ViewGeometry
from echoseg.evaluation.figures import _save, overlay, plt


def plot_disks(image: np.ndarray | None, label_map: np.ndarray, geometry: ViewGeometry,
               path: Path | str, title: str | None = None) -> Path:
    """Write a PNG of ``geometry`` (from :func:`echoseg.clinical.measure_view` on
    ``label_map``) over ``image`` (grayscale, or None for black); pixels are drawn at their
    physical aspect when the geometry has a spacing. Returns the path (written atomically)."""
    label_map = np.asarray(label_map)
    height, width = label_map.shape
    row_mm, col_mm = geometry.spacing or (1.0, 1.0)
    fig, ax = plt.subplots(figsize=(5, 5 * height * row_mm / (width * col_mm) + 0.4))
    # extent in pixel units keeps (row, col) points as they are; aspect gives the mm shape
    ax.imshow(overlay(image, label_map), extent=(-0.5, width - 0.5, height - 0.5, -0.5),
              aspect=row_mm / col_mm, interpolation="nearest")
    for (r0, c0), (r1, c1) in geometry.disk_segments:
        ax.plot([c0, c1], [r0, r1], color="yellow", linewidth=0.8)
    (br0, bc0), (br1, bc1) = geometry.base
    ax.plot([bc0, bc1], [br0, br1], color="cyan", linewidth=2, label="base (mitral annulus)")
    mid, apex = geometry.base_mid, geometry.apex
    ax.plot([mid[1], apex[1]], [mid[0], apex[0]], color="white", linewidth=1.2,
            linestyle="--", label=f"long axis {geometry.length:.1f} {geometry.unit}")
    ax.plot([apex[1]], [apex[0]], "o", color="white", markersize=4)
    ax.legend(loc="lower right", fontsize=7, framealpha=0.6)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)
