"""Where predictions come from: files in a folder, or a predictor called on the images."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from echoseg.data.names import IMAGE_EXTENSIONS, split_extension
from echoseg.data.readers import read_image, read_label_map
from echoseg.errors import DataError
from echoseg.evaluation.scoring import EvalItem

PredictBatch = Callable[[list[np.ndarray]], list[np.ndarray]]
PRED_SUFFIXES = ("_pred", "_seg")  # _seg: what `echoseg predict` writes


def _names(ids: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f", ... ({len(ids) - limit} more)" if len(ids) > limit else "")


def find_predictions(pred_dir: Path | str, ids: Sequence[str]) -> dict[str, Path]:
    """Map each sample id to its prediction file under ``pred_dir`` (searched recursively).

    A file matches id X when it is named ``X.<ext>``, ``X_pred.<ext>`` or ``X_seg.<ext>`` (the
    names ``echoseg predict`` writes, so its output folder can be scored as it is) with an
    image extension (.png, .nii.gz, .nii, .mha, ...). Raises DataError when the folder is missing,
    when an id matches two files, or when ids have no file (naming how many and the first ones).
    """
    root = Path(pred_dir)
    if not root.is_dir():
        raise DataError(f"{root}: prediction folder not found")
    wanted = set(ids)
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        stem, ext = split_extension(path)
        if ext not in IMAGE_EXTENSIONS or not path.is_file():
            continue
        key = _strip_suffix(stem)
        if key not in wanted:
            continue
        if key in found:
            raise DataError(f"{key}: two prediction files match ({found[key]} and {path})")
        found[key] = path
    missing = [i for i in ids if i not in found]
    if missing:
        raise DataError(f"{root}: no prediction for {len(missing)} of {len(ids)} images "
                        f"({_names(missing)})")
    return found


def _strip_suffix(stem: str) -> str:
    for suffix in PRED_SUFFIXES:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _read_2d(path: Path, what: str) -> np.ndarray:
    # label maps keep palette indices; images give the gray a palette displays
    array, _ = (read_image if what == "image" else read_label_map)(path)
    if array.ndim != 2:
        raise DataError(f"{path}: {what} must be a 2D image, got shape {array.shape}")
    return array


def _ground_truth(sample) -> np.ndarray:
    if sample.label_path is None:
        raise DataError(f"{sample.id}: no ground-truth label map to score against")
    return _read_2d(Path(sample.label_path), "ground truth")


def items_from_files(
    samples: Sequence, pred_paths: dict[str, Path], with_images: bool = False
) -> Iterator[EvalItem]:
    """Items pairing each sample's ground truth with its prediction file (see
    ``find_predictions``); reads each image too when ``with_images`` (for figures)."""
    for s in samples:
        image = _read_2d(Path(s.image_path), "image") if with_images else None
        yield EvalItem(s.id, s.patient, s.view, s.phase, _read_2d(pred_paths[s.id], "prediction"),
                       _ground_truth(s), s.spacing, image, pred_paths[s.id], s.label_path)


def items_from_predictor(
    predict_batch: PredictBatch, samples: Sequence, batch_size: int = 8
) -> Iterator[EvalItem]:
    """Items whose predictions come from ``predict_batch``: it takes a list of native-size 2D
    images and returns a list of label maps of the same sizes; called ``batch_size`` at a time."""
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        images = [_read_2d(Path(s.image_path), "image") for s in chunk]
        preds = predict_batch(images)
        if len(preds) != len(images):
            raise DataError(f"predictor returned {len(preds)} label maps for {len(images)} images")
        for s, image, pred in zip(chunk, images, preds, strict=True):
            yield EvalItem(s.id, s.patient, s.view, s.phase, np.asarray(pred), _ground_truth(s),
                           s.spacing, image, gt_path=s.label_path)
