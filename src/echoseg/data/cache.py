"""Decoded, resampled arrays of a list of samples, cached on disk as .npy files.

The cache key covers every source file (path, size in bytes, modification time) and the grid
size, so editing, replacing or touching a file makes the next load decode again.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from echoseg.atomic import atomic_write, failure_reason
from echoseg.data.pairs import read_pair
from echoseg.data.preprocess import image_to_grid, label_to_grid
from echoseg.data.sample import Sample
from echoseg.data.threads import thread_map
from echoseg.errors import DataError
from echoseg.paths import default_cache_dir

CACHE_VERSION = 1  # bump when the preprocessing changes what is stored


def load_arrays(samples: Sequence[Sample], size: int, cache_dir: Path | str | None = None,
                workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images and label maps of ``samples`` on the (size, size) model grid, in sample order.

    Returns uint8 images (N, size, size) (``image_to_grid`` * 255, rounded) and uint8 labels
    (N, size, size) with values 0..3. Served from ``cache_dir`` (default
    :func:`default_cache_dir`) when the source files are unchanged; otherwise decoded on
    ``workers`` threads and cached. Raises DataError naming the file for a missing label map,
    unreadable file, image/label size mismatch or label values outside 0..3.
    """
    samples = list(samples)
    if not samples:
        return np.empty((0, size, size), np.uint8), np.empty((0, size, size), np.uint8)
    key = cache_key(samples, size)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    image_file, label_file = folder / f"{key}-images.npy", folder / f"{key}-labels.npy"
    cached = _read_cached(image_file, label_file, (len(samples), size, size))
    if cached is not None:
        return cached

    images = np.empty((len(samples), size, size), dtype=np.uint8)
    labels = np.empty((len(samples), size, size), dtype=np.uint8)

    def decode(index: int) -> None:
        image, label = read_pair(samples[index])
        images[index] = np.rint(image_to_grid(image, size) * 255)
        labels[index] = label_to_grid(label, size)

    thread_map(decode, range(len(samples)), workers)
    try:
        atomic_write(label_file, lambda f: np.save(f, labels))
        atomic_write(image_file, lambda f: np.save(f, images))
    except OSError as exc:  # worth one line: every later run decodes the images again
        warnings.warn(f"{folder}: cannot write the array cache ({failure_reason(exc)}); "
                      "set ECHOSEG_CACHE or data.cache_dir to a writable folder", stacklevel=2)
    return images, labels


def cache_key(samples: Sequence[Sample], size: int) -> str:
    """Hex digest identifying the samples' source files (path, bytes, mtime) and the grid size."""
    entries: list[object] = [CACHE_VERSION, int(size)]
    for sample in samples:
        for path in (sample.image_path, sample.label_path):
            entries.append(_stamp(path) if path is not None else None)
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:32]


def _stamp(path: Path) -> tuple[str, int, int]:
    try:
        stat = path.stat()
    except OSError:
        raise DataError(f"{path}: cannot read image (file not found)") from None
    return os.path.abspath(path), stat.st_size, stat.st_mtime_ns


def _read_cached(image_file: Path, label_file: Path,
                 shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached arrays when both files exist and are intact, else None (decode again)."""
    if not (image_file.is_file() and label_file.is_file()):
        return None
    try:
        images, labels = np.load(image_file), np.load(label_file)
    except (OSError, ValueError, EOFError):
        return None
    for array in (images, labels):
        if array.shape != shape or array.dtype != np.uint8:
            return None
    return images, labels
