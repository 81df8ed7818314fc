"""Image/label folders: pairs matched by name, anywhere below the dataset root.

Two conventions, which may be mixed::

    any/sub/folder/X.png   with  any/sub/folder/X_gt.png
    images/sub/X.png       with  labels/sub/X.png

Images may be PNG/JPEG/TIFF/BMP, NIfTI or MetaImage. Names like ``patient0001_2CH_ED`` give the
patient, view and phase; any other file stem is both the sample id and its patient.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from echoseg.data.names import (
    IMAGE_EXTENSIONS,
    LABEL_SUFFIX,
    parse_camus_stem,
    pick_label,
    split_extension,
)
from echoseg.data.pairs import probe_pair
from echoseg.data.sample import Sample, Scan
from echoseg.data.threads import thread_map
from echoseg.errors import DataError

IMAGES_DIR, LABELS_DIR = "images", "labels"


def scan_folder(files: list[Path], root: Path, *, require_labels: bool = True,
                workers: int | None = None) -> Scan:
    """Pair the images and label maps among ``files`` (all below ``root``).

    Reads file headers only. Returns a Scan whose problems hold one line per image without a
    label map (when ``require_labels``), label map without an image, unreadable file or size
    mismatch; those files are left out of the samples.
    """
    scan = Scan()
    images: list[Path] = []
    labels: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    for path in files:
        stem, ext = split_extension(path)
        if ext not in IMAGE_EXTENSIONS:
            continue
        key = _label_key(path, root)
        if key is None:
            images.append(path)
        else:
            labels[key].append(path)

    pairs: list[tuple[Path, Path | None]] = []
    used: set[Path] = set()
    for path in images:
        stem, ext = split_extension(path)
        candidates = labels.get((path.parent, stem), [])
        label = pick_label(candidates, ext)
        used.update(candidates)
        if label is None and require_labels:
            scan.problems.append(f"{path}: missing label map (expected {_expected(path, root)})")
            continue
        pairs.append((path, label))
    scan.problems.extend(f"{p}: label map without an image"
                         for group in labels.values() for p in group if p not in used)

    for (path, label), result in zip(pairs, thread_map(_probe, pairs, workers), strict=True):
        if isinstance(result, str):
            scan.problems.append(result)
            continue
        size, spacing = result
        stem = split_extension(path)[0]
        parsed = parse_camus_stem(stem)
        if parsed and parsed[2] in ("ED", "ES"):
            patient, view, phase = parsed[:3]
        else:
            patient, view, phase = stem, None, None
        scan.samples.append(Sample(stem, patient, view, phase, path, label, spacing, size))
    return scan


def _label_key(path: Path, root: Path) -> tuple[Path, str] | None:
    """(image folder, image stem) a label map belongs to, or None when ``path`` is an image."""
    stem = split_extension(path)[0]
    parts = path.parent.relative_to(root).parts
    if stem.endswith(LABEL_SUFFIX) and len(stem) > len(LABEL_SUFFIX):
        stem = stem[: -len(LABEL_SUFFIX)]
    elif LABELS_DIR not in parts:
        return None
    if LABELS_DIR in parts:
        at = len(parts) - 1 - parts[::-1].index(LABELS_DIR)  # the innermost labels/ folder
        parts = parts[:at] + (IMAGES_DIR,) + parts[at + 1:]
    return root.joinpath(*parts), stem


def _expected(image: Path, root: Path) -> str:
    """Where the label map of ``image`` should be, for the error message."""
    stem, ext = split_extension(image)
    parts = image.parent.relative_to(root).parts
    if IMAGES_DIR in parts:
        at = len(parts) - 1 - parts[::-1].index(IMAGES_DIR)
        mirror = parts[:at] + (LABELS_DIR,) + parts[at + 1:]
        return f"{Path(*mirror, image.name)} or {stem}{LABEL_SUFFIX}{ext}"
    return f"{stem}{LABEL_SUFFIX}{ext}"


def _probe(pair: tuple[Path, Path | None]):
    try:
        return probe_pair(*pair)
    except DataError as exc:
        return str(exc)
