"""CPU augmentation of one (image, label) pair with Albumentations, built from a preset row."""

from __future__ import annotations

import os

# Albumentations checks PyPI for a newer version on import; offline machines (clinical
# networks, GPU nodes) wait on the DNS failure and print a warning. Users can still set it to 0.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2
import numpy as np

from echoseg.errors import ConfigError
from echoseg.transforms.presets import PRESETS, AugmentParams


class Augmentation:
    """``aug(image, label) -> (image, label)`` for uint8 arrays (H, W).

    The label moves with the image (nearest-neighbour, never blended); pixels brought in from
    outside the image are 0 in both. ``seed`` makes the sequence of draws reproducible; call
    :meth:`reseed` in each DataLoader worker so workers do not repeat each other, or pass a
    numpy Generator to each call to make that call a function of the generator's state.
    """

    def __init__(self, params: AugmentParams, seed: int | None = None):
        self.params = params
        self.pipeline = A.Compose(_transforms(params), seed=seed)

    def reseed(self, seed: int) -> None:
        """Restart the random draws from ``seed``."""
        self.pipeline.set_random_seed(seed)

    def __call__(
        self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Augmented copies of ``image`` and ``label`` (uint8, (H, W)); inputs are not modified.

        With ``rng`` the draws are seeded from one ``rng.integers`` call, so the result depends
        only on the generator's state (reproducible batches, e.g. seeded by (seed, epoch)).
        """
        if image.shape != label.shape or image.ndim != 2:
            raise ValueError(
                f"image and label must both be (H, W); got {image.shape}, {label.shape}"
            )
        if rng is not None:
            self.pipeline.set_random_seed(int(rng.integers(2**32)))
        out = self.pipeline(image=image, mask=label)
        return out["image"], out["mask"]


def build_augmentation(preset: str | AugmentParams, seed: int | None = None) -> Augmentation:
    """The augmentation of a Table II preset name (none | I | II | III | IV | V | affine) or of
    an :class:`AugmentParams` row. Unknown names raise ConfigError listing the valid ones."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ConfigError(
                f"augment.preset: unknown preset {preset!r}; valid: {', '.join(PRESETS)}"
            )
        preset = PRESETS[preset]
    return Augmentation(preset, seed)


def _transforms(p: AugmentParams) -> list:
    out = []
    if p.has_affine:
        out.append(A.Affine(
            translate_percent=(-p.shift, p.shift), scale=p.scale, keep_ratio=True,
            rotate=(-p.rotate, p.rotate), interpolation=cv2.INTER_LINEAR,
            mask_interpolation=cv2.INTER_NEAREST, border_mode=cv2.BORDER_CONSTANT,
            fill=0, fill_mask=0, p=p.affine_p,
        ))
    if p.gamma != (1.0, 1.0):  # Albumentations takes gamma in percent
        out.append(A.RandomGamma(gamma_limit=(100 * p.gamma[0], 100 * p.gamma[1]),
                                 p=p.intensity_p))
    if p.noise_std > 0:
        out.append(A.GaussNoise(std_range=(0.0, p.noise_std), p=p.intensity_p))
    if p.brightness or p.contrast or p.saturation or p.hue:
        out.append(A.ColorJitter(
            brightness=(1 - p.brightness, 1 + p.brightness),
            contrast=(1 - p.contrast, 1 + p.contrast),
            saturation=(1 - p.saturation, 1 + p.saturation),
            hue=(-p.hue, p.hue), p=p.intensity_p,
        ))
    if p.blackout_p > 0:  # image only: fill_mask=None leaves the label as it is
        out.append(A.CoarseDropout(
            num_holes_range=(1, 1), hole_height_range=p.blackout_size,
            hole_width_range=p.blackout_size, fill=0, fill_mask=None, p=p.blackout_p,
        ))
    return out
