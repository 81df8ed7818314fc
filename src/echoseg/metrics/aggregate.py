"""Aggregation of per-image metric values: mean and std that skip NaNs but count them."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Stats:
    """Summary of one metric over images: mean and population std (ddof=0) of the finite
    values, how many values were finite (``n``) and how many were NaN (``nan``)."""

    mean: float
    std: float
    n: int
    nan: int


def nan_stats(values: Iterable[float]) -> Stats:
    """Mean/std over the non-NaN values of ``values``; NaN mean/std when none is finite."""
    arr = np.asarray([float(v) for v in values], dtype=float)
    finite = arr[~np.isnan(arr)]
    if finite.size == 0:
        return Stats(math.nan, math.nan, 0, int(arr.size))
    n_nan = int(arr.size - finite.size)
    return Stats(float(finite.mean()), float(finite.std()), int(finite.size), n_nan)


@dataclass
class Accumulator:
    """Collects named per-image values (``add(name=value, ...)``) and summarizes them."""

    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, **named: float) -> None:
        """Append one value per name (NaN allowed)."""
        for name, value in named.items():
            self.values.setdefault(name, []).append(float(value))

    def stats(self, name: str) -> Stats:
        """Stats of every value added under ``name`` (an unknown name gives an empty summary)."""
        return nan_stats(self.values.get(name, []))
