"""Real images for calibrating and checking exported models, on the model's grid."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class GridImages:
    """Images resampled to the model grid: ``images`` float32 (N, S, S) in [0, 1], ``labels``
    uint8 (N, S, S) ground truth (nearest), ``ids`` the sample ids, ``source`` the folder and
    the split they came from (e.g. ``data/camus224 (train)``)."""

    images: np.ndarray
    labels: np.ndarray
    ids: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.ids)


def load_grid_images(data: str | Path, size: int, limit: int,
                     split: str | None = None) -> GridImages:
    """Up to ``limit`` image/label pairs of the echoseg dataset folder ``data``, resampled to
    ``size`` x ``size`` as the model sees them (echoseg.data.preprocess.image_to_grid).

    Takes the patients of ``split`` when the dataset has that split, else every patient; when
    there are more than ``limit`` images, ``limit`` of them evenly spread over the sorted ids
    (deterministic). Raises DataError naming the folder or file on bad data.
    """
    from echoseg.data.dataset import open_dataset
    from echoseg.data.pairs import read_pair
    from echoseg.data.preprocess import image_to_grid, label_to_grid
    from echoseg.data.splits import resolve_splits
    from echoseg.errors import DataError

    dataset = open_dataset(data)
    samples, source = dataset.samples, f"{data}"
    if split is not None and dataset.split_file is not None:
        splits = resolve_splits(dataset)
        if splits.get(split):
            samples, source = dataset.select(splits[split]), f"{data} ({split})"
    if not samples:
        raise DataError(f"{data}: no images")
    if len(samples) > limit:
        picks = np.linspace(0, len(samples) - 1, limit).round().astype(int)
        samples = [samples[i] for i in picks]
    images, labels = [], []
    for sample in samples:
        image, label = read_pair(sample)
        try:
            images.append(image_to_grid(image, size))
        except ValueError as exc:  # no finite pixel
            raise DataError(f"{sample.image_path}: {exc}") from None
        labels.append(label_to_grid(label, size))
    return GridImages(np.stack(images), np.stack(labels).astype(np.uint8),
                      [s.id for s in samples], source)
