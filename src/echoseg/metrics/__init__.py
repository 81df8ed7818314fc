"""Segmentation metrics as plain functions on 2D integer label maps (0 bg, 1 LV, 2 MYO, 3 LA)."""

from echoseg.metrics.aggregate import Accumulator, Stats, nan_stats
from echoseg.metrics.anatomical import CRITERIA, anatomical_errors, is_anatomical_outlier
from echoseg.metrics.distance import hausdorff, hausdorff_from_distances, surface_distances
from echoseg.metrics.overlap import dice
from echoseg.metrics.thresholds import ANATOMICAL_THRESHOLDS

__all__ = [
    "ANATOMICAL_THRESHOLDS",
    "CRITERIA",
    "Accumulator",
    "Stats",
    "anatomical_errors",
    "dice",
    "hausdorff",
    "hausdorff_from_distances",
    "is_anatomical_outlier",
    "nan_stats",
    "surface_distances",
]
