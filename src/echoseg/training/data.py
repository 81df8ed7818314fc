"""The arrays a training run needs: its dataset split, preprocessed to the model grid."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from echoseg.config import Config
from echoseg.data.cache import load_arrays
from echoseg.data.dataset import open_dataset
from echoseg.data.splits import resolve_splits, save_splits
from echoseg.errors import ConfigError, DataError


@dataclass
class TrainingArrays:
    """uint8 arrays (N, S, S) of the training and validation images and label maps."""

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray


def load_training_arrays(config: Config, run_dir: Path | None = None) -> TrainingArrays:
    """Open ``config.data.root``, resolve its splits (saved to RUN/splits.json) and load arrays."""
    if not config.data.root:
        raise ConfigError("data.root is not set: pass --data DATA or set data.root in the config")
    dataset = open_dataset(config.data.root)
    splits = resolve_splits(dataset, split_file=config.data.split_file,
                            seed=config.data.split_seed)
    source = _split_source(config, dataset)
    where = f" in {source}" if source else ""
    for key in ("train_split", "val_split"):
        name = getattr(config.data, key)
        if name not in splits:
            raise DataError(f"{dataset.root}: no split named '{name}' (data.{key}){where}; "
                            f"available: {', '.join(sorted(splits))}")
        if not splits[name]:
            raise DataError(f"{dataset.root}: the split '{name}' (data.{key}) has no "
                            f"patients{where}; training needs patients in both "
                            f"'{config.data.train_split}' and '{config.data.val_split}'")
    if run_dir is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        save_splits(splits, Path(run_dir) / "splits.json")
    cache = config.data.cache_dir
    train_patients = subset_patients(splits[config.data.train_split],
                                     config.data.train_fraction, config.data.split_seed)
    train_samples = of_views(dataset.select(train_patients), config.data.views, dataset.root)
    val_samples = of_views(dataset.select(splits[config.data.val_split]), config.data.views,
                           dataset.root)
    train = load_arrays(train_samples, config.data.size, cache)
    val = load_arrays(val_samples, config.data.size, cache)
    return TrainingArrays(train[0], train[1], val[0], val[1])


def subset_patients(patients: list[str], fraction: float, seed: int) -> list[str]:
    """``fraction`` (0, 1] of ``patients`` (at least one), drawn with ``seed``; sorted.

    Nested for one seed: the patients of a smaller fraction are among those of a larger one."""
    if fraction >= 1.0:
        return sorted(patients)
    order = sorted(patients)
    random.Random(seed).shuffle(order)
    return sorted(order[:max(1, round(len(order) * fraction))])


def of_views(samples: list, views: list[str], root: Path | str) -> list:
    """The samples whose view is one of ``views`` (all of them when ``views`` is empty).

    Raises DataError naming ``root`` and the views it has when none is left."""
    if not views:
        return samples
    kept = [s for s in samples if s.view in views]
    if samples and not kept:
        have = sorted({str(s.view) for s in samples})
        raise DataError(f"{root}: no images of view {', '.join(views)} (data.views); "
                        f"views here: {', '.join(have)}")
    return kept


def _split_source(config: Config, dataset) -> Path | None:
    """The split file the splits come from, or None for a seeded split."""
    return Path(config.data.split_file) if config.data.split_file else dataset.split_file
