"""Which files to segment and where their outputs go (``echoseg predict``), bundled samples.

Inputs are files or folders (searched recursively, hidden entries skipped). Image files are
known by extension; DICOM files also without one (as scanners and PACS exports name them), by
the ``DICM`` marker of their first 132 bytes (only files without extension are opened; a
``DICOMDIR`` index is skipped). Label maps by name
(``*_gt.*``, and echoseg's own ``*_seg.*`` outputs) are skipped, and so are echoseg's other
outputs, so that an output folder inside the inputs is never segmented again: overlays
(``*_overlay.png`` and the ``*_overlay/`` folder beside one), any sub-folder holding a
``predictions.csv`` written by echoseg, and anything under the output folder. Every input gets
a unique output *key*: a path relative to the output folder,
without extension, from which ``<key>_seg.<ext>`` and ``<key>_overlay.png`` are named. A file
given directly is keyed by its stem; a file found in a folder by its path relative to that
folder, so sub-folders are mirrored. When two inputs would share a key (``a.png`` and
``a.jpg``, or the same name in two folders), the later one gets ``_2``, ``_3``, ... appended.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from echoseg.data.names import (
    LABEL_SUFFIX,
    PIL_EXTENSIONS,
    SITK_EXTENSIONS,
    is_image_file,
    split_extension,
)
from echoseg.io.dicom import DICOMDIR, has_dicom_preamble, is_dicom_file

SEG_SUFFIX = "_seg"
OVERLAY_SUFFIX = "_overlay"
OUTPUT_FIGURE_SUFFIXES = (OVERLAY_SUFFIX, "_curve", "_temporal")  # see sequence_outputs
PREDICTIONS_CSV = "predictions.csv"
_PREDICTIONS_HEADER = "input,frame,output,"  # how echoseg's predictions.csv begins
SAMPLES_DIR = Path(__file__).resolve().parents[1] / "samples" / "camus224"


def bundled_samples() -> Path:
    """The folder of bundled CAMUS samples: 4 validation patients as 224x224 PNG image/label
    pairs with a ``splits.json`` ({"val": [...]}) and a README carrying the CAMUS license."""
    return SAMPLES_DIR


@dataclass(frozen=True)
class InputFile:
    """One file to segment: its path and its output key (relative to the output folder)."""

    path: Path
    key: str


@dataclass
class FoundInputs:
    """What :func:`find_inputs` found: files to segment (in order), label maps skipped by name,
    echoseg's own outputs skipped (overlay files, overlay and output folders), and one line per
    input that cannot be used (missing, or not an image file)."""

    files: list[InputFile] = field(default_factory=list)
    skipped_labels: list[Path] = field(default_factory=list)
    skipped_outputs: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def is_label_name(path: Path | str) -> bool:
    """True for ``*_gt.*`` (ground truth) and ``*_seg.*`` (echoseg output) image files."""
    stem = split_extension(path)[0]
    return stem.endswith(LABEL_SUFFIX) or stem.endswith(SEG_SUFFIX)


def is_output_name(path: Path | str) -> bool:
    """True for the pictures echoseg predict writes beside each label map: ``*_overlay.png``
    (``*_overlay.avi`` for a video) and, for a sequence, ``*_curve.png`` and ``*_temporal.png``."""
    stem, ext = split_extension(path)
    if ext == ".avi":
        return stem.endswith(OVERLAY_SUFFIX)
    return ext == ".png" and stem.endswith(OUTPUT_FIGURE_SUFFIXES)


def is_output_folder(folder: Path) -> bool:
    """True for a folder echoseg predict wrote: it holds a ``predictions.csv`` that begins with
    echoseg's header, or it is an ``X_overlay/`` folder beside an ``X_overlay.png``."""
    if folder.name.endswith(OVERLAY_SUFFIX) and folder.with_name(f"{folder.name}.png").is_file():
        return True
    try:
        with open(folder / PREDICTIONS_CSV, "rb") as f:
            return f.read(len(_PREDICTIONS_HEADER)) == _PREDICTIONS_HEADER.encode()
    except OSError:
        return False


def output_extension(path: Path | str) -> str:
    """Extension of the label map written for an input: ``.png`` for PNG/JPEG/TIFF/BMP, the
    input's own for NIfTI and MetaImage (``.nii.gz``, ``.nii``, ``.mhd``, ``.mha``), and
    ``.nii.gz`` for DICOM (with or without extension); the last two keep the spacing."""
    ext = split_extension(path)[1]
    if ext in PIL_EXTENSIONS:
        return ".png"
    return ext if ext in SITK_EXTENSIONS else ".nii.gz"


def find_inputs(inputs: list[str | Path], exclude: Path | str | None = None) -> FoundInputs:
    """Expand files and folders into the files to segment, each with a unique output key.

    ``exclude`` is a folder (the output folder) whose contents are never taken as inputs.
    Files in folders without an image extension (``.raw``, ``.cfg``, ...) are ignored silently;
    a file given directly with another extension, a missing path and a folder without image
    files are problems. A file reached twice is taken once.
    """
    found = FoundInputs()
    taken: set[str] = set()
    seen: set[Path] = set()
    skip_dir = Path(exclude).resolve() if exclude is not None else None
    for given in inputs:
        path = Path(given).expanduser()
        if path.is_dir():
            files, outputs = _walk(path, skip_dir)
            found.skipped_outputs.extend(outputs)
            candidates = [(f, f.relative_to(path)) for f in files]
            if not candidates and not outputs:
                found.problems.append(f"{path}: no image files in this folder")
        elif path.is_file():
            if not (is_image_file(path) or is_dicom_file(path)):
                ext = split_extension(path)[1] or "none"
                found.problems.append(f"{path}: not an image file (extension '{ext}')")
                continue
            candidates = [(path, Path(path.name))]
        elif path.exists():  # a FIFO, device or socket: never opened (a FIFO blocks)
            found.problems.append(f"{path}: not a regular file")
            continue
        else:
            found.problems.append(f"{path}: no such file or folder")
            continue
        for file, relative in candidates:
            if file.resolve() in seen:  # given twice (e.g. a folder and a file in it)
                continue
            seen.add(file.resolve())
            if is_label_name(file):
                found.skipped_labels.append(file)
                continue
            if is_output_name(file):
                found.skipped_outputs.append(file)
                continue
            key = _unique_key(_key(relative), taken)
            taken.add(key.lower())  # case-insensitive, for macOS/Windows file systems
            found.files.append(InputFile(file, key))
    return found


def _key(relative: Path) -> str:
    stem = split_extension(relative)[0]
    return (relative.parent / stem).as_posix() if relative.parent != Path(".") else stem


def _unique_key(key: str, taken: set[str]) -> str:
    candidate, n = key, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{key}_{n}"
    return candidate


def _walk(root: Path, skip_dir: Path | None) -> tuple[list[Path], list[Path]]:
    """Image files below ``root``, sorted, without hidden entries or anything in ``skip_dir``;
    and the sub-folders left out as echoseg's outputs (:func:`is_output_folder`)."""
    found: list[Path] = []
    outputs: list[Path] = []
    for folder, dirs, names in os.walk(root, followlinks=False):
        here = Path(folder)
        kept = []
        for d in sorted(d for d in dirs if not d.startswith(".")):
            if skip_dir is not None and (here / d).resolve() == skip_dir:
                continue
            if is_output_folder(here / d):
                outputs.append(here / d)
            else:
                kept.append(d)
        dirs[:] = kept
        found.extend(here / n for n in sorted(names)
                     if not n.startswith(".") and _is_input_name(here / n))
    return sorted(found), outputs


def _is_input_name(path: Path) -> bool:
    """A regular file with an image extension, or without extension and with the DICOM marker
    (not a ``DICOMDIR``); only files without extension are opened."""
    if split_extension(path)[1] == "":
        return path.name != DICOMDIR and has_dicom_preamble(path)
    return is_image_file(path) and path.is_file()
