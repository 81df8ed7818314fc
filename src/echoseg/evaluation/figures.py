"""Figures: image | ground truth | prediction overlays (the paper's Fig. 1), worst cases,
upscaled intermediate decoder outputs of a deep-supervision model (Fig. 2), boxplots (Fig. 3).

Takes numpy arrays only (no torch); draws with matplotlib's Agg backend; files written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from echoseg.atomic import atomic_write_bytes  # noqa: E402
from echoseg.data.preprocess import fill_non_finite, minmax_scale  # noqa: E402
from echoseg.evaluation.grid import resize_labels  # noqa: E402
from echoseg.labels import LA, LV, MYO, STRUCTURES  # noqa: E402

COLORS: dict[int, tuple[float, float, float]] = {LV: (1.0, 0.0, 0.0), MYO: (0.0, 0.8, 0.0),
                                                 LA: (0.0, 0.3, 1.0)}


def _gray(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Image scaled to [0, 1] and brought to ``shape`` (nearest neighbour)."""
    image = minmax_scale(fill_non_finite(np.asarray(image))[0])
    if image.shape != shape:  # display only: sample the nearest pixel centre
        rows = (np.arange(shape[0]) + 0.5) * image.shape[0] / shape[0]
        cols = (np.arange(shape[1]) + 0.5) * image.shape[1] / shape[1]
        image = image[rows.astype(int)[:, None], cols.astype(int)[None, :]]
    return image


def overlay(image: np.ndarray | None, labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGB float image (H, W, 3) in [0, 1]: the grayscale image (black if None) with LV red,
    MYO green and LA blue blended in at opacity ``alpha``; the image is resized to the labels."""
    gray = np.zeros(labels.shape) if image is None else _gray(image, labels.shape)
    # per label value: the gray's weight and the colour added (one lookup, not a mask each)
    weight = np.ones(256)
    tint = np.zeros((256, 3))
    for label, color in COLORS.items():
        weight[label], tint[label] = 1 - alpha, alpha * np.asarray(color)
    index = np.asarray(labels, dtype=np.uint8)
    return gray[..., None] * np.take(weight, index)[..., None] + np.take(tint, index, axis=0)


def _save(fig, path: Path | str) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def case_figure(image: np.ndarray | None, gt: np.ndarray, pred: np.ndarray, path: Path | str,
                title: str | None = None) -> Path:
    """Write a 3-panel PNG: image | ground-truth overlay | prediction overlay; returns the path."""
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
    gray = np.zeros(gt.shape) if image is None else _gray(image, gt.shape)
    panels = [(gray, "image"), (overlay(image, gt), "ground truth"),
              (overlay(image, pred), "prediction")]
    for ax, (data, name) in zip(axes, panels, strict=True):
        ax.imshow(data, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def write_worst_cases(cases: Sequence, out_dir: Path | str) -> list[Path]:
    """One ``case_figure`` per case (objects with row, image, gt, pred), named
    ``NN_<id>.png`` in rank order (worst first), titled with the Dice of each scored structure
    (a structure the data does not label has None in the row and is left out)."""
    paths = []
    for rank, case in enumerate(cases, start=1):
        scores = ", ".join(f"{s} {case.row[f'dice_{s}']:.3f}" for s in STRUCTURES
                           if case.row.get(f"dice_{s}") is not None)
        title = f"{case.row['id']} - Dice {scores}"
        path = Path(out_dir) / f"{rank:02d}_{case.row['id']}.png"
        paths.append(case_figure(case.image, case.gt, case.pred, path, title))
    return paths


def deep_supervision_figure(logits: Sequence[np.ndarray], path: Path | str,
                            image: np.ndarray | None = None,
                            titles: Sequence[str] | None = None) -> Path:
    """Write a row of panels, one per decoder output, each upscaled (nearest) to the largest.

    ``logits`` holds arrays (C, h, w) or (1, C, h, w) of class scores, lowest resolution first
    or in any order; each is reduced by argmax over C and overlaid on ``image`` when given.
    """
    maps = []
    for array in logits:
        array = np.asarray(array)
        if array.ndim == 4 and array.shape[0] == 1:
            array = array[0]
        if array.ndim != 3:
            raise ValueError(f"expected logits of shape (C, h, w), got {array.shape}")
        maps.append(array.argmax(axis=0))
    size = max(m.shape for m in maps) if image is None else np.asarray(image).shape[:2]
    fig, axes = plt.subplots(1, len(maps), figsize=(3 * len(maps), 3.3), squeeze=False)
    for i, (ax, m) in enumerate(zip(axes[0], maps, strict=True)):
        ax.imshow(overlay(image, resize_labels(m, tuple(size))), interpolation="nearest")
        ax.set_title(titles[i] if titles else f"{m.shape[0]}x{m.shape[1]}", fontsize=9)
        ax.axis("off")
    return _save(fig, path)


def boxplots(values: Mapping[str, Mapping[str, Sequence[float]]], path: Path | str,
             hausdorff_unit: str = "mm") -> Path:
    """Write boxplots of Dice (top row) and Hausdorff (bottom row) per structure, one box per
    model. ``values[model][column]`` lists per-image values for columns dice_<S> and hd_<S>;
    NaNs are left out of the boxes."""
    models = list(values)
    fig, axes = plt.subplots(2, len(STRUCTURES), figsize=(4 * len(STRUCTURES), 7), squeeze=False)
    rows = (("dice", "Dice"), ("hd", f"Hausdorff ({hausdorff_unit})"))
    for r, (prefix, label) in enumerate(rows):
        for c, s in enumerate(STRUCTURES):
            data = [np.asarray(values[m][f"{prefix}_{s}"], dtype=float) for m in models]
            data = [d[~np.isnan(d)] for d in data]
            ax = axes[r][c]
            ax.boxplot(data, showfliers=True)
            ax.set_xticks(range(1, len(models) + 1), models, rotation=20, fontsize=8)
            ax.set_title(f"{s}", fontsize=10)
            ax.set_ylabel(label, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
