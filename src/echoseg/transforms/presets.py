"""The augmentation presets of the paper's Table II as data: one row of parameters per preset.

| preset | shift | scale     | rot°| gamma   | noise σ | blackout | b/c/sat | hue  |
|--------|-------|-----------|-----|---------|---------|----------|---------|------|
| I      | ±0.05 | 0.95–1.05 | ±5  | 0.9–1.1 | ≤0.02   | 0.25     | ±0.1    | 0.02 |
| II     | ±0.10 | 0.90–1.10 | ±10 | 0.8–1.2 | ≤0.04   | 0.25     | ±0.2    | 0.04 |
| III    | ±0.15 | 0.85–1.15 | ±15 | 0.7–1.3 | ≤0.06   | 0.25     | ±0.3    | 0.06 |
| IV     | ±0.20 | 0.80–1.20 | ±20 | 0.6–1.4 | ≤0.08   | 0.25     | ±0.4    | 0.08 |
| V      | ±0.25 | 0.75–1.25 | ±25 | 0.5–1.5 | ≤0.10   | 0.25     | ±0.5    | 0.10 |
| affine | ±0.10 | 0.80–1.10 | ±10 | –       | –       | –        | –       | –    |

Columns: shift (fraction of the image side, x and y drawn independently), isotropic zoom
factor, rotation in degrees, gamma exponent, Gaussian noise σ as a fraction of 255 (σ drawn
from 0..max), blackout probability, brightness/contrast/saturation factor 1 ± value, hue ± value.

Readings and choices:
- Shift is a fraction of the image side, drawn independently for x and y. Table II writes the
  I–V shifts as "(-0.05, 5)" etc.; we read them as symmetric ±0.05 … ±0.25 of the image size.
  The other I–V columns are our choice: evenly increasing strength, with I–V's affine part
  bracketing the final "affine" preset (shift ±0.1, scale (-0.2, +0.1) i.e. ×0.8–1.1, ±10°).
- Scale is isotropic (one factor for both axes); rotation is about the image centre.
- Blackout: with probability 0.25 one rectangle with sides ~U(25, 65) px is set to 0 in the image
  only; the label keeps the anatomy under it (it simulates dropout/shadowing, the structures are
  still there).
- Brightness/contrast are torchvision-style factors 1 ± value. Saturation and hue are kept as
  Table II lists them but are exact no-ops on a grayscale image (a gray pixel has saturation 0,
  so scaling saturation or rotating hue leaves it unchanged); Albumentations' ColorJitter skips
  them on 1-channel images, which gives the same result without a 3-channel round trip.
- Probabilities: the affine part is applied with ``affine_p`` (1.0: every image is moved; the
  ranges contain the identity), gamma, noise and colour jitter each with ``intensity_p`` (0.5).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AugmentParams:
    """Parameters of one augmentation preset; 0 (or an identity range) switches a part off."""

    shift: float = 0.0  # ± fraction of the image side, per axis
    scale: tuple[float, float] = (1.0, 1.0)  # isotropic zoom factor range
    rotate: float = 0.0  # ± degrees
    affine_p: float = 1.0
    gamma: tuple[float, float] = (1.0, 1.0)  # gamma exponent range
    noise_std: float = 0.0  # max Gaussian noise σ as a fraction of 255
    blackout_p: float = 0.0
    blackout_size: tuple[int, int] = (25, 65)  # rectangle side range, pixels
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    intensity_p: float = 0.5  # probability of each of gamma, noise and colour jitter

    @property
    def has_affine(self) -> bool:
        return self.shift > 0 or self.scale != (1.0, 1.0) or self.rotate > 0


def _row(shift, scale, rotate, gamma, noise, jitter, hue) -> AugmentParams:
    return AugmentParams(
        shift=shift, scale=scale, rotate=rotate, gamma=gamma, noise_std=noise, blackout_p=0.25,
        brightness=jitter, contrast=jitter, saturation=jitter, hue=hue,
    )


PRESETS: dict[str, AugmentParams] = {
    "none": AugmentParams(),
    #         shift  scale         rot   gamma       noise jitter hue
    "I": _row(0.05, (0.95, 1.05), 5.0, (0.9, 1.1), 0.02, 0.1, 0.02),
    "II": _row(0.10, (0.90, 1.10), 10.0, (0.8, 1.2), 0.04, 0.2, 0.04),
    "III": _row(0.15, (0.85, 1.15), 15.0, (0.7, 1.3), 0.06, 0.3, 0.06),
    "IV": _row(0.20, (0.80, 1.20), 20.0, (0.6, 1.4), 0.08, 0.4, 0.08),
    "V": _row(0.25, (0.75, 1.25), 25.0, (0.5, 1.5), 0.10, 0.5, 0.10),
    "affine": AugmentParams(shift=0.1, scale=(0.8, 1.1), rotate=10.0),
}
