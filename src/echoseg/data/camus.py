"""The original CAMUS layout, as downloaded from the CAMUS site.

2023 release (``database_nifti``)::

    patient0001/patient0001_{2CH,4CH}_{ED,ES}.nii.gz          image
    patient0001/patient0001_{2CH,4CH}_{ED,ES}_gt.nii.gz       label map
    patient0001/patient0001_{2CH,4CH}_half_sequence[_gt].nii.gz   cine loop ED..ES
    patient0001/Info_{2CH,4CH}.cfg                            "Key: value" lines

2019 release: the same names as MetaImage ``.mhd``/``.raw`` files and ``_sequence.mhd`` cine
loops; its Info cfg holds ED, ES, NbFrame, LVedv, LVesv, LVef, ImageQuality (maybe more).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from echoseg.data.names import (
    CAMUS_INFO,
    LABEL_SUFFIX,
    SITK_EXTENSIONS,
    parse_camus_stem,
    pick_label,
    split_extension,
)
from echoseg.data.pairs import format_size, probe_pair
from echoseg.data.readers import read_header
from echoseg.data.regular import read_text_file
from echoseg.data.sample import Sample, Scan, SequenceFile
from echoseg.data.threads import thread_map
from echoseg.errors import DataError

INFO_NUMBERS = frozenset({"ED", "ES", "NbFrame", "Age", "EF", "FrameRate", "LVedv", "LVesv",
                          "LVef"})
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def is_camus_layout(files: list[Path]) -> bool:
    """True when any file is an Info cfg or a CAMUS-named NIfTI/MetaImage file."""
    for path in files:
        if CAMUS_INFO.fullmatch(path.name):
            return True
        stem, ext = split_extension(path)
        if ext in SITK_EXTENSIONS and parse_camus_stem(stem):
            return True
    return False


def parse_info_cfg(path: Path | str) -> dict[str, int | float | str]:
    """Read a CAMUS ``Info_{2CH,4CH}.cfg`` file of ``Key: value`` lines.

    Returns the fields in file order with numbers as int or float and other values as strings.
    Raises DataError naming the file and line when a line is not ``Key: value``, a key repeats,
    or a numeric field (ED, ES, NbFrame, EF, ...) is not a number or a frame out of range.
    """
    path = Path(path)
    text = read_text_file(path, "Info cfg")
    fields: dict[str, int | float | str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        key, sep, value = (part.strip() for part in line.partition(":"))
        if not sep or not key:
            raise DataError(f"{path}: line {number}: expected 'Key: value', got {line!r}")
        if key in fields:
            raise DataError(f"{path}: line {number}: duplicate key '{key}'")
        fields[key] = _parse_value(value)
        if key in INFO_NUMBERS and isinstance(fields[key], str):
            raise DataError(f"{path}: line {number}: {key} must be a number, got {value!r}")
    if not fields:
        raise DataError(f"{path}: empty Info cfg")
    _check_frames(path, fields)
    return fields


def scan_camus(files: list[Path], *, require_labels: bool = True,
               workers: int | None = None) -> Scan:
    """Find the ED/ES samples, cine sequences and Info cfg fields among ``files``.

    Reads file headers only (size and spacing). Returns a Scan whose problems hold one line per
    unreadable file, malformed Info cfg, missing or mismatched label map.
    """
    scan = Scan()
    infos: dict[tuple[Path, str], dict] = {}
    images: list[tuple[Path, str, str, str]] = []  # path, patient, view, kind
    labels: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    for path in files:
        if match := CAMUS_INFO.fullmatch(path.name):
            try:
                infos[(path.parent, match[1])] = parse_info_cfg(path)
            except DataError as exc:
                scan.problems.append(str(exc))
            continue
        stem, ext = split_extension(path)
        parsed = parse_camus_stem(stem) if ext in SITK_EXTENSIONS else None
        if parsed is None:
            continue
        patient, view, kind, is_label = parsed
        if is_label:
            labels[(path.parent, stem[: -len(LABEL_SUFFIX)])].append(path)
        else:
            images.append((path, patient, view, kind))

    pairs, used = [], set()
    for path, patient, view, kind in images:
        stem, ext = split_extension(path)
        candidates = labels.get((path.parent, stem), [])
        label = pick_label(candidates, ext)
        used.update(candidates)
        if label is None and kind in ("ED", "ES") and require_labels:
            scan.problems.append(f"{path}: missing label map ({stem}{LABEL_SUFFIX}{ext})")
            continue
        pairs.append((path, label, patient, view, kind, infos.get((path.parent, view), {})))
    scan.problems.extend(f"{p}: label map without an image"
                         for group in labels.values() for p in group if p not in used)

    for pair, result in zip(pairs, thread_map(_probe, pairs, workers), strict=True):
        path, label, patient, view, kind, info = pair
        if isinstance(result, str):
            scan.problems.append(result)
            continue
        n_frames, size, spacing = result
        stem = split_extension(path)[0]
        if kind in ("ED", "ES"):
            scan.samples.append(Sample(stem, patient, view, kind, path, label, spacing, size,
                                       dict(info)))
        else:
            scan.sequences.append(SequenceFile(stem, patient, view, kind, path, label, n_frames,
                                               spacing, size, dict(info)))
    return scan


def _probe(pair) -> tuple[int, tuple[int, int], tuple[float, float] | None] | str:
    """(n_frames, (H, W), spacing) from the headers of an image or sequence, or the problem."""
    path, label, _, _, kind, _ = pair
    try:
        if kind in ("ED", "ES"):
            size, spacing = probe_pair(path, label)
            return 1, size, spacing
        shape, spacing = read_header(path)
        label_shape = read_header(label)[0] if label is not None else shape
        if tuple(label_shape) != tuple(shape):
            return (f"{label}: label sequence size {format_size(label_shape)} does not match "
                    f"sequence size {format_size(shape)} (TxHxW, {path.name})")
        return (1 if len(shape) == 2 else shape[0]), tuple(shape[-2:]), spacing
    except DataError as exc:
        return str(exc)


def _parse_value(value: str) -> int | float | str:
    if _INT.fullmatch(value):
        return int(value)
    if _FLOAT.fullmatch(value):
        return float(value)
    return value


def _check_frames(path: Path, fields: dict[str, int | float | str]) -> None:
    """ED, ES and NbFrame are 1-based frame numbers; ED and ES lie within the loop."""
    for key in ("ED", "ES", "NbFrame"):
        value = fields.get(key)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise DataError(f"{path}: {key} must be a frame number >= 1, got {value}")
    n_frames = fields.get("NbFrame")
    for key in ("ED", "ES"):
        value = fields.get(key)
        if n_frames is not None and value is not None and value > n_frames:  # type: ignore[operator]
            raise DataError(f"{path}: {key} = {value} is beyond NbFrame = {n_frames}")
