"""Score predictions against ground truths: one row per image, a summary over all of them."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from echoseg.errors import DataError
from echoseg.evaluation.grid import to_scoring_grid
from echoseg.evaluation.summary import (
    ALL_STRUCTURES,
    anatomy_applies,
    build_summary,
    check_structures,
)
from echoseg.labels import NUM_CLASSES, STRUCTURES
from echoseg.metrics import CRITERIA, anatomical_errors, dice, surface_distances
from echoseg.metrics.distance import hausdorff_from_distances
from echoseg.postprocess import parse_postprocess

ID_COLUMNS = ("id", "patient", "view", "phase")


@dataclass
class EvalItem:
    """One image to score: ids, predicted and ground-truth label maps (2D ints 0..3), the ground
    truth's pixel spacing in mm (row, col) or None, optionally the image (for figures), and the
    files the label maps came from (None for a model's prediction), named in errors."""

    id: str
    patient: str
    view: str | None
    phase: str | None
    pred: np.ndarray
    gt: np.ndarray
    spacing: tuple[float, float] | None = None
    image: np.ndarray | None = None
    pred_path: Path | str | None = None
    gt_path: Path | str | None = None


@dataclass
class Case:
    """A scored image kept for figures: its row and the arrays on the scoring grid."""

    row: dict
    pred: np.ndarray
    gt: np.ndarray
    image: np.ndarray | None


@dataclass
class Evaluation:
    """Per-image rows (CSV order), the summary dict and the worst cases (lowest mean Dice over
    the scored structures first)."""

    rows: list[dict]
    summary: dict
    worst: list[Case] = field(default_factory=list)


def score_image(
    pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, float] | None = None,
    structures: Iterable[str] = ALL_STRUCTURES,
) -> dict:
    """Score one prediction against its ground truth (same-shape 2D label maps).

    Returns a dict: dice_<S> (both-empty -> 1.0), hd_<S> (max Hausdorff) for S in LV, MYO, LA,
    in mm when ``spacing`` (row, col mm) is given else in pixels, NaN when the structure is
    missing from either map; anatomical_outlier and <criterion>_ok (pass flags, measured on the
    prediction); then hd95_<S> (95th-percentile Hausdorff). Every key is always there (the
    CSV's columns do not change); a structure not in ``structures`` (not labelled in the data)
    gets None, and so do the anatomical flags unless LV, MYO and LA are all scored.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"shape mismatch: prediction {pred.shape} vs ground truth {gt.shape}")
    scored = check_structures(structures)
    row: dict = {}
    hd95 = {}
    for name, label in STRUCTURES.items():
        row[f"dice_{name}"] = dice(pred, gt, label) if name in scored else None
    for name, label in STRUCTURES.items():
        if name not in scored:
            row[f"hd_{name}"] = hd95[f"hd95_{name}"] = None
            continue
        distances = surface_distances(pred == label, gt == label, spacing)
        row[f"hd_{name}"] = hausdorff_from_distances(distances)
        hd95[f"hd95_{name}"] = hausdorff_from_distances(distances, 95)
    if anatomy_applies(scored):
        anatomy = anatomical_errors(pred)
        row["anatomical_outlier"] = bool(anatomy["outlier"])
        for criterion in CRITERIA:
            row[f"{criterion}_ok"] = bool(anatomy[f"{criterion}_ok"])
    else:
        row["anatomical_outlier"] = None
        row.update({f"{criterion}_ok": None for criterion in CRITERIA})
    row.update(hd95)
    return row


def _check_labels(array: np.ndarray, what: str, item_id: str,
                  path: Path | str | None = None) -> np.ndarray:
    """``array`` as a 2D integer label map; DataError naming the file (when known) and the
    image id otherwise."""
    where = f"{path}: image {item_id}" if path is not None else item_id
    array = np.asarray(array)
    if array.ndim != 2:
        raise DataError(f"{where}: {what} must be a 2D label map, got shape {array.shape}")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"{where}: {what} must hold integer labels, got {array.dtype}")
    bad = np.unique(array[(array < 0) | (array >= NUM_CLASSES)])
    if bad.size:
        raise DataError(f"{where}: {what} has label values outside 0..{NUM_CLASSES - 1}: "
                        f"{', '.join(str(v) for v in bad[:5])}")
    return array


def evaluate_predictions(
    items: Iterable[EvalItem],
    *,
    postprocess: str = "none",
    grid: str | int = "native",
    model: str = "",
    worst: int = 0,
    prior_postprocess: str = "none",
    structures: Iterable[str] = ALL_STRUCTURES,
) -> Evaluation:
    """Score every item and summarize.

    ``postprocess`` (a spec such as "cca+close:5") is applied to each prediction on the scoring
    grid; ``prior_postprocess`` records post-processing the predictor already applied (it is
    not re-applied). ``grid`` is "native" (the ground truth's grid: Hausdorff in mm when the
    spacing is known, else pixels) or a size S (S x S, as the paper's 256). Keeps the ``worst``
    images with the lowest mean Dice for figures. Only ``structures`` (those the dataset
    labels, e.g. ``dataset.structures``) are scored, ranked and summarized: see
    ``score_image`` and ``build_summary``. Raises DataError on an invalid item (bad labels,
    duplicate id, no items) before anything is returned.
    """
    scored = check_structures(structures)
    apply = parse_postprocess(postprocess)
    rows: list[dict] = []
    heap: list[tuple[float, int, Case]] = []
    seen: set[str] = set()
    units: set[str] = set()
    counter = itertools.count()
    for item in items:
        if item.id in seen:
            raise DataError(f"{item.id}: the same image id appears twice")
        seen.add(item.id)
        pred = _check_labels(item.pred, "prediction", item.id, item.pred_path)
        gt = _check_labels(item.gt, "ground truth", item.id, item.gt_path)
        pred, gt, spacing = to_scoring_grid(pred, gt, item.spacing, grid)
        pred = apply(pred)
        row = {"id": item.id, "patient": item.patient, "view": item.view, "phase": item.phase}
        row.update(score_image(pred, gt, spacing, scored))
        units.add("mm" if spacing is not None else "px")
        rows.append(row)
        if worst > 0:
            mean_dice = float(np.mean([row[f"dice_{s}"] for s in scored]))
            # max-heap on mean Dice (negated), so the best of the kept cases is dropped first
            heapq.heappush(heap, (-mean_dice, -next(counter), Case(row, pred, gt, item.image)))
            if len(heap) > worst:
                heapq.heappop(heap)
    if not rows:
        raise DataError("no images to evaluate")
    steps = [s for s in (prior_postprocess, postprocess) if s and s.strip().lower() != "none"]
    summary = build_summary(
        rows,
        postprocess="+".join(steps) or "none",
        model=model,
        grid=grid,
        hausdorff_unit=units.pop() if len(units) == 1 else "mixed",
        structures=scored,
    )
    cases = [case for _, _, case in sorted(heap, key=lambda t: (-t[0], -t[1]))]
    return Evaluation(rows, summary, cases)
