"""File-name conventions: supported extensions and CAMUS names (patientXXXX_4CH_ED[_gt])."""

from __future__ import annotations

import re
from pathlib import Path

PIL_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
SITK_EXTENSIONS = (".nii.gz", ".nii", ".mhd", ".mha")
DICOM_EXTENSIONS = (".dcm", ".dicom")  # read only (echoseg.io.dicom); files without one too
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mov")  # read only (echoseg.io.video), as 2D+t sequences
WRITABLE_EXTENSIONS = PIL_EXTENSIONS + SITK_EXTENSIONS
IMAGE_EXTENSIONS = WRITABLE_EXTENSIONS + DICOM_EXTENSIONS + VIDEO_EXTENSIONS
LABEL_SUFFIX = "_gt"

# patient0001_2CH_ED, patient0001_4CH_half_sequence (2023), patient0001_4CH_sequence (2019)
CAMUS_NAME = re.compile(r"(patient\d+)_(2CH|4CH)_(ED|ES|half_sequence|sequence)")
CAMUS_INFO = re.compile(r"Info_(2CH|4CH)\.cfg")


def split_extension(path: Path | str) -> tuple[str, str]:
    """Split a file name into (stem, extension), the extension lower-case with its dot.

    ``.nii.gz`` counts as one extension; returns ``(name, "")`` when the file has none.
    """
    name = Path(path).name
    lower = name.lower()
    if lower.endswith(".nii.gz"):
        return name[: -len(".nii.gz")], ".nii.gz"
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    return name[:dot], lower[dot:]


def is_image_file(path: Path | str) -> bool:
    """True when the file has an extension echoseg can read as an image or label map."""
    return split_extension(path)[1] in IMAGE_EXTENSIONS


def parse_camus_stem(stem: str) -> tuple[str, str, str, bool] | None:
    """Parse a CAMUS file stem such as ``patient0001_2CH_ED_gt``.

    Returns ``(patient, view, kind, is_label)`` where kind is "ED", "ES", "half_sequence" or
    "sequence", or None when the stem does not follow the CAMUS convention.
    """
    is_label = stem.endswith(LABEL_SUFFIX)
    core = stem[: -len(LABEL_SUFFIX)] if is_label else stem
    match = CAMUS_NAME.fullmatch(core)
    if match is None:
        return None
    patient, view, kind = match.groups()
    return patient, view, kind, is_label


def pick_label(candidates: list[Path], ext: str) -> Path | None:
    """The label map among ``candidates`` for an image with extension ``ext``: the first with
    the same extension, else the first one, else None."""
    same = [p for p in candidates if split_extension(p)[1] == ext]
    return (same or candidates or [None])[0]
