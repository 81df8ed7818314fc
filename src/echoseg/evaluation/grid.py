"""Where metrics are computed: the ground truth's native grid, or a fixed square grid."""

from __future__ import annotations

import numpy as np

from echoseg.data.limits import check_side
from echoseg.data.preprocess import label_to_native
from echoseg.errors import ConfigError

MODEL_GRID = 256  # the paper's (and the default models') input grid


def parse_grid(value: str | int) -> str | int:
    """Parse a ``--grid`` value: "native", "model" (kept as is: the caller knows the model's
    grid) or a size in pixels (int >= 8, at most the side limit of ``echoseg.data.limits``).
    Raises ConfigError otherwise."""
    text = str(value).strip().lower()
    if text in ("native", "model"):
        return text
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size < 8:
        raise ConfigError(f"--grid must be 'native', 'model' or a size in pixels >= 8, "
                          f"got {value!r}")
    return check_side(size, "--grid")


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a 2D label map to ``size`` (H, W), the same mapping the
    models use to bring predictions back to native size; returns uint8."""
    return label_to_native(labels, tuple(size))


def to_scoring_grid(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: tuple[float, float] | None,
    grid: str | int = "native",
) -> tuple[np.ndarray, np.ndarray, tuple[float, float] | None]:
    """Put a prediction and its ground truth on the grid where they are scored.

    ``grid="native"``: the prediction is mapped to the ground truth's size (nearest neighbour),
    spacing unchanged. ``grid=S`` (int): both are resampled to S x S and the spacing (mm,
    row/col, or None) scaled to match. Returns (pred, gt, spacing) on that grid.
    """
    if grid == "native":
        return resize_labels(pred, gt.shape), gt, spacing
    if not isinstance(grid, int):
        raise ConfigError(f"grid must be 'native' or a size in pixels, got {grid!r}")
    h, w = gt.shape
    if spacing is not None:
        spacing = (spacing[0] * h / grid, spacing[1] * w / grid)
    return resize_labels(pred, (grid, grid)), resize_labels(gt, (grid, grid)), spacing
