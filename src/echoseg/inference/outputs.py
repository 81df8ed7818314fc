"""Files ``echoseg predict`` writes for one input, each atomically, and its CSV rows.

For an input with key K (see ``echoseg.inference.files``):

- ``K_seg.<ext>``: the label map (uint8, 0 bg, 1 LV, 2 MYO, 3 LA) at the input's native size,
  (H, W) for an image or (T, H, W) for a sequence, in the input's format family (PNG for
  PNG/JPEG/TIFF/BMP; NIfTI and MetaImage keep the spacing; DICOM gives NIfTI ``.nii.gz``, with
  the spacing). For an input with an imaging region (DICOM ultrasound regions), the label map
  covers the full frame, label 0 outside the region.
- ``K_overlay.png``: the image with LV red, MYO green, LA blue; for a sequence, its first frame
  (end-diastole in CAMUS half sequences), and every frame in ``K_overlay/frame_NNN.png``.
  Overlays are stretched to square pixels when the spacing is known and anisotropic.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from echoseg.atomic import atomic_write_bytes, atomic_write_named
from echoseg.data.integrity import gzip_problem
from echoseg.data.names import PIL_EXTENSIONS, split_extension
from echoseg.data.preprocess import label_to_grid
from echoseg.data.readers import Spacing, read_header, write_label_map
from echoseg.evaluation.figures import overlay
from echoseg.inference.files import OVERLAY_SUFFIX, SEG_SUFFIX
from echoseg.io.dicom import Region, crop_region
from echoseg.labels import STRUCTURES
from echoseg.metrics import anatomical_errors
from echoseg.metrics.quality import QualityThresholds, flags_from_errors

CSV_COLUMNS = ("input", "frame", "output",
               *(f"area_{s}_px" for s in STRUCTURES), *(f"area_{s}_mm2" for s in STRUCTURES),
               "anatomically_plausible", "quality_ok", "quality_failed", "seconds", "note",
               "runtime")


def write_label_map_atomic(path: Path, labels: np.ndarray, spacing: Spacing) -> Path:
    """Write a label map so that readers never see a partial file and a good file is never
    replaced by a bad one; returns ``path``.

    The file (and, for ``.mhd``, its ``.raw`` data file) is written under its final name in a
    temporary folder beside ``path``, checked (:func:`check_label_map`), then moved into place,
    data files before the named file. Raises WriteError ``<path>: cannot write (<reason>)``,
    the old files unchanged, when writing or the check fails.
    """
    labels = np.asarray(labels)
    return atomic_write_named(path, lambda staged: write_label_map(staged, labels, spacing),
                              verify=lambda staged: check_label_map(staged, labels.shape))


def check_label_map(path: Path, shape: tuple[int, ...]) -> None:
    """Raise (DataError or ValueError) unless the label map at ``path`` reads back as an array
    of ``shape``: its header and the data length it declares (the ``.raw`` file of a ``.mhd``),
    the whole gzip stream of a ``.nii.gz``, every chunk of a PNG. Returns None."""
    found, _ = read_header(path)
    expected = tuple(shape[1:]) if len(shape) == 3 and shape[0] == 1 else tuple(shape)
    if tuple(found) != expected:
        raise ValueError(f"reads back with shape {tuple(found)}, expected {expected}")
    ext = split_extension(path)[1]
    if ext == ".nii.gz" and (problem := gzip_problem(path)):
        raise ValueError(problem)
    if ext in PIL_EXTENSIONS:
        with Image.open(path) as image:
            image.verify()  # chunk checksums up to the end marker


def overlay_png(image: np.ndarray, labels: np.ndarray, spacing: Spacing) -> bytes:
    """PNG bytes of the colour overlay of one 2D image and its label map, with square pixels
    (the finer axis kept, the coarser one stretched) when ``spacing`` (mm, row/col) is known."""
    rgb = (overlay(image, labels) * 255 + 0.5).astype(np.uint8)
    if spacing is not None and spacing[0] > 0 and spacing[1] > 0 and spacing[0] != spacing[1]:
        fine = min(spacing)
        height = round(rgb.shape[0] * spacing[0] / fine)
        width = round(rgb.shape[1] * spacing[1] / fine)
        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
    buffer = io.BytesIO()
    # zlib level 1: a few % larger files, encoded several times faster (sequences: every frame)
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def write_outputs(out_dir: Path, key: str, ext: str, frames: list[np.ndarray],
                  labels: list[np.ndarray], spacing: Spacing, sequence: bool) -> Path:
    """Write the label map and overlays of one input (see the module docstring); returns the
    label map's path. ``frames`` and ``labels`` are lists of 2D arrays, one per frame."""
    seg_path = out_dir / f"{key}{SEG_SUFFIX}{ext}"
    volume = np.stack(labels) if sequence else labels[0]
    write_label_map_atomic(seg_path, volume, spacing)
    overlay_path = out_dir / f"{key}{OVERLAY_SUFFIX}.png"
    png = overlay_png(frames[0], labels[0], spacing)
    atomic_write_bytes(overlay_path, png)
    if sequence:
        folder = out_dir / f"{key}{OVERLAY_SUFFIX}"
        digits = max(3, len(str(len(frames) - 1)))
        for t, (image, lbl) in enumerate(zip(frames, labels, strict=True)):
            data = overlay_png(image, lbl, spacing)
            atomic_write_bytes(folder / f"frame_{t:0{digits}d}.png", data)
    return seg_path


def frame_row(input_path: Path | str, frame: int, output: str, labels: np.ndarray,
              spacing: Spacing, seconds: float, note: str = "", runtime: str = "",
              checked: np.ndarray | None = None,
              quality: QualityThresholds | None = None) -> dict:
    """One CSV row: areas per structure in pixels and in mm² (None when the spacing is
    unknown), anatomical plausibility (no CAMUS criterion fails on ``checked``, by default
    ``labels``; see :func:`plausibility_map`), the calibrated quality flag on the same map
    (``quality_ok``, and the criteria that failed joined by ';' in ``quality_failed``; both
    None, i.e. empty cells, without ``quality`` thresholds; see ``echoseg.metrics.quality``),
    the seconds spent, a note on what was done to the input ("" when nothing, e.g. "3
    non-finite pixels set to the image minimum") and the runtime that ran the network (torch,
    onnxruntime, openvino). The criteria are measured once for both flags."""
    counts = np.bincount(labels.ravel(), minlength=len(STRUCTURES) + 1)
    row: dict = {"input": str(input_path), "frame": frame, "output": output}
    pixel_mm2 = spacing[0] * spacing[1] if spacing is not None else None
    for name, label in STRUCTURES.items():
        row[f"area_{name}_px"] = int(counts[label])
    for name, label in STRUCTURES.items():
        mm2 = None if pixel_mm2 is None else round(float(counts[label]) * pixel_mm2, 6)
        row[f"area_{name}_mm2"] = mm2
    errors = anatomical_errors(labels if checked is None else checked)
    row["anatomically_plausible"] = not errors["outlier"]
    row["quality_ok"] = row["quality_failed"] = None
    if quality is not None:
        ok, failed = flags_from_errors(errors, quality)
        row["quality_ok"], row["quality_failed"] = ok, ";".join(failed)
    row["seconds"] = round(seconds, 6)
    row["note"] = note
    row["runtime"] = runtime
    return row


def plausibility_map(labels: np.ndarray, region: Region | None, grid: int) -> np.ndarray:
    """The label map the anatomical criteria are measured on: the imaging ``region`` (the whole
    frame when None) resampled to the ``grid`` x ``grid`` model grid, as the network saw it.
    The criteria count pixels with thresholds made on that grid (the paper's convention), and
    measuring there costs the same whatever the input's size."""
    return label_to_grid(crop_region(labels, region), grid)


def relative_output(path: Path, out_dir: Path) -> str:
    """``path`` relative to ``out_dir`` in POSIX form (how the CSV names outputs)."""
    return path.relative_to(out_dir).as_posix()

