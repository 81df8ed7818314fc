"""Augmentation: the paper's Table II presets on Albumentations (CPU, one pair at a time) and
the "affine" preset for whole batches on any device (:func:`batch_affine`)."""

from echoseg.transforms.albu import Augmentation, build_augmentation
from echoseg.transforms.gpu import batch_affine
from echoseg.transforms.presets import PRESETS, AugmentParams

__all__ = ["PRESETS", "AugmentParams", "Augmentation", "batch_affine", "build_augmentation"]
