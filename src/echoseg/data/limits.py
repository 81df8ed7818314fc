"""Size limits checked from file headers before any pixel is decoded.

A file of a few bytes can declare an image of billions of pixels; decoding it would exhaust
memory. Every reader (PNG/JPEG/TIFF/BMP, NIfTI, MetaImage, and DICOM and video) calls
:func:`check_size` with the sizes its header declares. The limits, overridable by environment
variables:

- ``ECHOSEG_MAX_SIDE`` (default 16384): pixels per side of a frame;
- ``ECHOSEG_MAX_FRAMES`` (default 2048): frames in a sequence;
- ``ECHOSEG_MAX_PIXELS`` (default 2**30): pixels in all frames together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from echoseg.errors import ConfigError, DataError

MAX_SIDE = 16384
MAX_FRAMES = 2048
MAX_PIXELS = 1 << 30


@dataclass(frozen=True)
class Limits:
    """The limits in force: pixels per side, frames per sequence, pixels in all frames."""

    side: int
    frames: int
    pixels: int


def current_limits() -> Limits:
    """The limits from the environment (read at each call), else the defaults.

    Raises ConfigError when a variable is set to anything but a whole number >= 1.
    """
    return Limits(_env("ECHOSEG_MAX_SIDE", MAX_SIDE), _env("ECHOSEG_MAX_FRAMES", MAX_FRAMES),
                  _env("ECHOSEG_MAX_PIXELS", MAX_PIXELS))


def check_size(path: Path | str, height: int, width: int, frames: int = 1) -> None:
    """Refuse an image whose header declares an empty or too large size.

    Takes the height and width of a frame in pixels and the number of frames (1 for a 2D
    image). Raises DataError naming ``path``: ``cannot read image (empty: shape ...)`` when a
    size is zero or negative, ``image too large (...)`` or ``too many frames (...)`` when a
    limit of :func:`current_limits` is exceeded.
    """
    shape = (height, width) if frames == 1 else (frames, height, width)
    if min(shape) < 1:
        raise DataError(f"{path}: cannot read image (empty: shape {shape})")
    limits = current_limits()
    if max(height, width) > limits.side:
        raise DataError(f"{path}: image too large ({height} x {width} pixels; at most "
                        f"{limits.side} a side, set ECHOSEG_MAX_SIDE to change)")
    if frames > limits.frames:
        raise DataError(f"{path}: too many frames ({frames}; at most {limits.frames}, "
                        "set ECHOSEG_MAX_FRAMES to change)")
    if frames * height * width > limits.pixels:
        raise DataError(f"{path}: image too large ({frames} frames of {height} x {width} "
                        f"pixels; at most {limits.pixels} pixels in all, set ECHOSEG_MAX_PIXELS "
                        "to change)")


def check_side(value: int, what: str) -> int:
    """Return ``value`` (pixels) when it is within the side limit; else raise ConfigError
    naming ``what`` (e.g. "--grid")."""
    side = current_limits().side
    if value > side:
        raise ConfigError(f"{what} must be at most {side} pixels, got {value} "
                          "(set ECHOSEG_MAX_SIDE to change)")
    return value


def _env(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{name} must be a whole number >= 1, got {text!r}")
    return value
