"""Image/label pairs: header checks while scanning, decoding with validation while loading."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from echoseg.data.readers import Spacing, read_header, read_image, read_label_map
from echoseg.data.sample import Sample
from echoseg.errors import DataError
from echoseg.labels import VALID_LABELS


def probe_pair(image_path: Path, label_path: Path | None) -> tuple[tuple[int, int], Spacing]:
    """Check from the file headers that an image is 2D and its label map has the same size.

    Returns the image size (H, W) in pixels and spacing (row, column) in mm or None. Raises
    DataError naming the file at fault; no pixel data is decoded.
    """
    shape, spacing = read_header(image_path)
    _require_2d(image_path, shape, "image")
    if label_path is not None:
        label_shape, label_spacing = read_header(label_path)
        _require_2d(label_path, label_shape, "label map")
        _require_match(image_path, shape, spacing, label_path, label_shape, label_spacing)
    return shape, spacing  # type: ignore[return-value]


def decode_pair(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """Decode a sample's image and label map, both (H, W) in their file dtypes.

    Raises DataError naming the file when either is unreadable, not 2D, or their sizes differ;
    a palette label map gives its indices. Label values are not checked here (see
    :func:`check_label_values`).
    """
    image, _ = read_image(sample.image_path)
    _require_2d(sample.image_path, image.shape, "image")
    if sample.label_path is None:
        raise DataError(f"{sample.image_path}: missing label map")
    label, _ = read_label_map(sample.label_path)
    _require_2d(sample.label_path, label.shape, "label map")
    _require_match(sample.image_path, image.shape, None, sample.label_path, label.shape, None)
    return image, label


def label_values(label: np.ndarray) -> list[int | float]:
    """Sorted distinct values of a label map: ints where integral, floats otherwise."""
    if label.dtype == np.uint8:
        return np.flatnonzero(np.bincount(label.ravel(), minlength=256)).tolist()
    return [int(v) if float(v).is_integer() else float(v) for v in np.unique(label)]


def check_label_values(values: list[int | float], path: Path) -> None:
    """Raise DataError naming ``path`` when a value is not one of the labels 0..3."""
    bad = [v for v in values if not (isinstance(v, int) and v in VALID_LABELS)]
    if bad:
        shown = ", ".join(str(v) for v in bad[:8]) + (", ..." if len(bad) > 8 else "")
        raise DataError(f"{path}: label values outside 0..{max(VALID_LABELS)}: {shown}")


def read_pair(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """Decode and validate a sample: returns the image (H, W, file dtype) and uint8 labels 0..3.

    Raises DataError naming the file on any problem (unreadable, size mismatch, bad values).
    """
    image, label = decode_pair(sample)
    check_label_values(label_values(label), sample.label_path)  # type: ignore[arg-type]
    return image, label.astype(np.uint8, copy=False)


def format_size(shape: tuple[int, ...]) -> str:
    """'HxW' for a (H, W) shape, e.g. '50x40'."""
    return "x".join(str(n) for n in shape)


def _require_2d(path: Path, shape: tuple[int, ...], what: str) -> None:
    if len(shape) != 2:
        raise DataError(f"{path}: expected a 2D {what}, got a sequence of {shape[0]} frames "
                        f"of {format_size(shape[1:])}")


def _require_match(image_path: Path, shape: tuple[int, ...], spacing: Spacing,
                   label_path: Path, label_shape: tuple[int, ...], label_spacing: Spacing) -> None:
    if tuple(label_shape) != tuple(shape):
        raise DataError(f"{label_path}: label map size {format_size(label_shape)} does not match "
                        f"image size {format_size(shape)} (HxW, {image_path.name})")
    if spacing and label_spacing and not all(
        math.isclose(a, b, rel_tol=1e-3) for a, b in zip(spacing, label_spacing, strict=True)
    ):
        raise DataError(f"{label_path}: label map spacing {_mm(label_spacing)} does not match "
                        f"image spacing {_mm(spacing)} ({image_path.name})")


def _mm(spacing: tuple[float, float]) -> str:
    return f"{spacing[0]:.4g}x{spacing[1]:.4g} mm"
