"""Evaluate a predictor on samples, and the end-to-end runs behind ``echoseg evaluate``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from echoseg.evaluation.scoring import Evaluation, evaluate_predictions
from echoseg.evaluation.sources import (
    PredictBatch,
    find_predictions,
    items_from_files,
    items_from_predictor,
)
from echoseg.labels import STRUCTURES

STRUCTURE_NAMES = tuple(STRUCTURES)


def evaluate_model(
    predict_batch: PredictBatch,
    samples: Sequence,
    *,
    batch_size: int = 8,
    postprocess: str = "none",
    prior_postprocess: str = "none",
    grid: str | int = "native",
    model: str = "",
    worst: int = 0,
    structures: Sequence[str] = STRUCTURE_NAMES,
) -> Evaluation:
    """Run ``predict_batch`` (list of native-size 2D images -> list of native-size label maps)
    over ``samples`` (objects with id, patient, view, phase, image_path, label_path, spacing)
    and score the results on ``structures`` (the ones the data labels); other options as in
    ``evaluate_predictions``."""
    items = items_from_predictor(predict_batch, list(samples), batch_size)
    return evaluate_predictions(items, postprocess=postprocess, prior_postprocess=prior_postprocess,
                                grid=grid, model=model, worst=worst, structures=structures)


def evaluate_folder(
    pred_dir: Path | str,
    samples: Sequence,
    *,
    postprocess: str = "none",
    grid: str | int = "native",
    model: str = "",
    worst: int = 0,
    structures: Sequence[str] = STRUCTURE_NAMES,
    track: Callable[[Iterable], Iterable] = iter,
) -> Evaluation:
    """Score the prediction files in ``pred_dir`` (matched by sample id, see
    ``find_predictions``) against the samples' ground truths; ``track`` wraps the iteration
    over the scored items (a progress bar's, for instance)."""
    samples = list(samples)
    paths = find_predictions(pred_dir, [s.id for s in samples])
    items = track(items_from_files(samples, paths, with_images=worst > 0))
    return evaluate_predictions(items, postprocess=postprocess, grid=grid,
                                model=model or str(pred_dir), worst=worst, structures=structures)
