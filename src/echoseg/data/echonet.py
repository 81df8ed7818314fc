"""The EchoNet-Dynamic layout: apical 4-chamber videos with LV tracings at two frames each.

    FileList.csv        FileName, EF, ESV, EDV, FrameHeight, FrameWidth, FPS, NumberOfFrames,
                        Split (TRAIN/VAL/TEST); FileName with or without ".avi"
    VolumeTracings.csv  FileName (with ".avi"), X1, Y1, X2, Y2, Frame (0-based): per traced frame,
                        the long axis first, then the disk chords, (X1, Y1)-(X2, Y2) in pixels
    Videos/<FileName>.avi

Each traced frame is a sample (view "4CH", patient = the video's name without ".avi"): of a
video's traced frames, the one with the largest traced area is ED and the smallest ES. Its label
map has only the LV (1), filled inside the polygon of the chord ends (X1, Y1 in order, then
X2, Y2 reversed, the long axis left out); its ``info`` holds the FileList numbers, Split, Video
(the file below the root) and Frame (0-based). EchoNet records no pixel spacing. Videos with
fewer than two traced frames have no samples (as in EchoNet's own loader); every listed video
is a sequence. The traced frames and their label maps are extracted once into PNG files under
the array cache (``ECHOSEG_CACHE``, default ~/.cache/echoseg), never into the dataset folder;
later opens only check the videos' headers. The splits of FileList.csv are saved there as JSON.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from echoseg.atomic import atomic_write_bytes, failure_reason
from echoseg.data.names import split_extension
from echoseg.data.regular import read_text_file
from echoseg.data.sample import Sample, Scan, SequenceFile
from echoseg.data.threads import thread_map
from echoseg.errors import DataError, EchosegError
from echoseg.io import video
from echoseg.paths import default_cache_dir

FILE_LIST, TRACINGS, VIDEOS = "FileList.csv", "VolumeTracings.csv", "Videos"
STRUCTURES = ("LV",)  # what EchoNet labels
VIEW = "4CH"
SPLITS = {"TRAIN": "train", "VAL": "val", "TEST": "test"}
SPLIT_FILE = "FileList-splits.json"
CACHE_VERSION = 1  # bump when the extraction or rasterisation changes
_NUMBERS = ("EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames")
_COUNTS = frozenset({"FrameHeight", "FrameWidth", "NumberOfFrames"})  # kept as int when whole
_TRACING_COLUMNS = ("FileName", "X1", "Y1", "X2", "Y2", "Frame")


@dataclass(frozen=True)
class Entry:
    """One FileList.csv row: the video's name without extension, its file name in Videos/, the
    split (train/val/test) and the row's numbers (EF in %, EDV/ESV in mL, FPS; None if empty)."""

    name: str
    file_name: str
    split: str
    fields: dict


@dataclass(frozen=True)
class Tracing:
    """The rows of one traced frame: (K, 4) float X1, Y1, X2, Y2 in pixels, long axis first,
    and the CSV line of its first row."""

    chords: np.ndarray
    line: int


def is_echonet_layout(root: Path) -> bool:
    """True when ``root`` holds FileList.csv, VolumeTracings.csv and a Videos folder."""
    return ((root / FILE_LIST).is_file() and (root / TRACINGS).is_file()
            and (root / VIDEOS).is_dir())


def read_file_list(path: Path | str) -> dict[str, Entry]:
    """FileList.csv as name (without .avi) -> Entry, in file order.

    Raises DataError naming the file and line for a missing column, a row of the wrong length,
    a number that is not one, a Split other than TRAIN/VAL/TEST or a repeated FileName.
    """
    path = Path(path)
    entries: dict[str, Entry] = {}
    for line, row in _rows(path, ("FileName", "Split")):
        file_name = row["FileName"].strip()
        if not file_name:
            raise DataError(f"{path}: line {line}: empty FileName")
        if not video.is_video_file(file_name):
            file_name += ".avi"
        name = split_extension(file_name)[0]
        if name in entries:
            raise DataError(f"{path}: line {line}: FileName {name} is listed twice")
        split = SPLITS.get(row["Split"].strip().upper())
        if split is None:
            raise DataError(f"{path}: line {line}: Split must be TRAIN, VAL or TEST, "
                            f"got {row['Split']!r}")
        fields = {key: _number(path, line, key, row[key], empty=True)
                  for key in _NUMBERS if key in row}
        for key in _COUNTS & fields.keys():
            if fields[key] is not None and float(fields[key]).is_integer():
                fields[key] = int(fields[key])
        entries[name] = Entry(name, file_name, split, fields)
    return entries


def read_tracings(path: Path | str) -> dict[str, dict[int, Tracing]]:
    """VolumeTracings.csv as video name (without .avi) -> frame -> Tracing, in file order.

    Raises DataError naming the file and line for a missing column, a row of the wrong length,
    a coordinate that is not a finite number or a Frame that is not a whole number >= 0.
    """
    path = Path(path)
    rows: dict[str, dict[int, list]] = {}
    lines: dict[tuple[str, int], int] = {}
    for line, row in _rows(path, _TRACING_COLUMNS):
        name = split_extension(row["FileName"].strip())[0]
        coords = [_number(path, line, key, row[key]) for key in ("X1", "Y1", "X2", "Y2")]
        frame = _number(path, line, "Frame", row["Frame"])
        if not float(frame).is_integer() or frame < 0:
            raise DataError(f"{path}: line {line}: Frame must be a whole number >= 0, "
                            f"got {row['Frame']!r}")
        rows.setdefault(name, {}).setdefault(int(frame), []).append(coords)
        lines.setdefault((name, int(frame)), line)
    return {name: {frame: Tracing(np.asarray(chords, dtype=np.float64), lines[(name, frame)])
                   for frame, chords in frames.items()} for name, frames in rows.items()}


def tracing_polygon(chords: np.ndarray) -> np.ndarray:
    """(M, 2) x, y vertices in pixels of the LV outline of one traced frame: the chords' first
    ends in order, then their second ends reversed; the first row (the long axis) left out."""
    chords = np.asarray(chords, dtype=np.float64)[1:]
    return np.concatenate([chords[:, 0:2], chords[::-1, 2:4]])


def polygon_area(points: np.ndarray) -> float:
    """Area in square pixels of the polygon with (M, 2) x, y vertices (shoelace formula)."""
    x, y = np.asarray(points, dtype=np.float64).T
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def polygon_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) mask of the pixels whose centre lies inside the polygon of (M, 2) x, y
    vertices (pixel centres at whole coordinates; even-odd rule, so the filled area matches the
    polygon's area however the outline falls on the grid)."""
    mask = np.zeros(shape, dtype=bool)
    x, y = np.asarray(points, dtype=np.float64).T
    if len(x) < 3:
        return mask
    r0, r1 = max(math.ceil(y.min()), 0), min(math.floor(y.max()), shape[0] - 1)
    c0, c1 = max(math.ceil(x.min()), 0), min(math.floor(x.max()), shape[1] - 1)
    if r0 > r1 or c0 > c1:
        return mask
    rows = np.arange(r0, r1 + 1, dtype=np.float64)[:, None]
    cols = np.arange(c0, c1 + 1, dtype=np.float64)[None, :]
    inside = np.zeros((len(rows), cols.shape[1]), dtype=bool)
    for xa, ya, xb, yb in zip(x, y, np.roll(x, 1), np.roll(y, 1), strict=True):
        if ya == yb:
            continue  # a horizontal edge crosses no row
        crosses = (ya > rows) != (yb > rows)
        at = xa + (rows - ya) * (xb - xa) / (yb - ya)  # where the edge crosses each row
        inside ^= crosses & (cols < at)
    mask[r0:r1 + 1, c0:c1 + 1] = inside
    return mask


def tracing_label(chords: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W) label map of one traced frame: 1 (LV) inside its outline, 0 elsewhere."""
    return polygon_mask(tracing_polygon(chords), shape).astype(np.uint8)


def echonet_reference(root: Path | str) -> dict[str, dict[str, float | None]]:
    """FileList.csv's reference values per video (name without .avi): "ef" in %, "edv" and
    "esv" in mL (None where the row leaves them empty). Raises DataError as read_file_list."""
    entries = read_file_list(Path(root).expanduser() / FILE_LIST)
    return {name: {key.lower(): e.fields.get(key) for key in ("EF", "EDV", "ESV")}
            for name, e in entries.items()}


def scan_echonet(root: Path, *, cache_dir: Path | str | None = None,
                 workers: int | None = None) -> tuple[Scan, Path | None]:
    """The samples and sequences of the EchoNet folder ``root``, and the split file saved from
    FileList.csv (None when nothing could be read).

    Reads the video headers; decodes only traced frames whose PNGs are not yet in the cache
    (``cache_dir``, default the array cache). Problems (one line each, naming the file and
    line): a malformed CSV, a tracing of a video FileList.csv lacks, a missing or unreadable
    video, a traced frame beyond the video's end or with fewer than two chords.
    """
    scan = Scan()
    try:
        entries = read_file_list(root / FILE_LIST)
        tracings = read_tracings(root / TRACINGS)
        folder = _cache_folder(root, cache_dir)
    except DataError as exc:
        scan.problems.append(str(exc))
        return scan, None
    for name, frames in tracings.items():
        if name not in entries:
            line = min(t.line for t in frames.values())
            scan.problems.append(f"{root / TRACINGS}: line {line}: {name}.avi is not in "
                                 f"{FILE_LIST}")
    cached: dict[str, set[str]] = {}  # "<name>_<phase>" -> its PNG file names in the cache
    for entry in os.scandir(folder):
        cached.setdefault(entry.name.rsplit("-", 1)[0], set()).add(entry.name)
    jobs = [(root, e, tracings.get(e.name, {}), folder, cached) for e in entries.values()]
    for sequence, samples, problems in thread_map(_video, jobs, workers):
        scan.problems.extend(problems)
        scan.samples.extend(samples)
        if sequence is not None:
            scan.sequences.append(sequence)
    labelled = {s.patient for s in scan.samples}
    if not labelled and not scan.problems:
        scan.problems.append(f"{root / TRACINGS}: no video of {FILE_LIST} has two traced frames")
    splits = {split: sorted(n for n, e in entries.items() if e.split == split and n in labelled)
              for split in SPLITS.values()}
    try:
        return scan, _save_splits(folder / SPLIT_FILE, splits)
    except EchosegError as exc:
        scan.problems.append(f"{exc}; set ECHOSEG_CACHE to a writable folder")
        return scan, None


def _video(job) -> tuple[SequenceFile | None, list[Sample], list[str]]:
    """(sequence, samples, problems) of one FileList video."""
    root, entry, traced, folder, cached = job
    path = root / VIDEOS / entry.file_name
    try:
        (n_frames, height, width), _ = video.read_video_header(path)
    except DataError as exc:
        return None, [], [str(exc)]
    info = {**entry.fields, "Split": entry.split.upper(), "Video": f"{VIDEOS}/{entry.file_name}"}
    sequence = SequenceFile(entry.name, entry.name, VIEW, "video", path, None, n_frames, None,
                            (height, width), dict(info))
    if len(traced) < 2:
        return sequence, [], []
    where = root / TRACINGS
    for frame, tracing in traced.items():
        if frame >= n_frames:
            return sequence, [], [f"{where}: line {tracing.line}: frame {frame} of "
                                  f"{entry.file_name} is beyond its {n_frames} frames "
                                  "(frames count from 0)"]
        if len(tracing.chords) < 3:
            return sequence, [], [f"{where}: line {tracing.line}: frame {frame} of "
                                  f"{entry.file_name} has {len(tracing.chords)} rows; a tracing "
                                  "is the long axis and at least 2 chords"]
    ranked = sorted(traced, key=lambda f: (polygon_area(tracing_polygon(traced[f].chords)), f))
    phases = {"ED": ranked[-1], "ES": ranked[0]}
    try:
        files = _extract(path, entry.name, phases, traced, (height, width), folder, cached)
    except EchosegError as exc:
        return sequence, [], [str(exc)]
    except OSError as exc:  # the video went away since its header was read
        return sequence, [], [f"{path}: cannot read video ({failure_reason(exc)})"]
    samples = [Sample(f"{entry.name}_{phase}", entry.name, VIEW, phase, image, label, None,
                      (height, width), {**info, "Frame": phases[phase]})
               for phase, (image, label) in files.items()]
    return sequence, samples, []


def _extract(path: Path, name: str, phases: dict[str, int], traced: dict[int, Tracing],
             shape: tuple[int, int], folder: Path,
             cached: dict[str, set[str]]) -> dict[str, tuple[Path, Path]]:
    """phase -> (image PNG, label PNG) in ``folder``, written unless ``cached`` (the folder's
    file names by sample id) has them. File names carry a digest of the video (path, bytes,
    mtime), the frame and its tracing, so a change makes new files; superseded ones go."""
    stat = path.stat()
    files, missing = {}, {}
    for phase, frame in phases.items():
        stamp = [CACHE_VERSION, os.path.abspath(path), stat.st_size, stat.st_mtime_ns, frame,
                 traced[frame].chords.tolist()]
        key = hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:12]
        image, label = folder / f"{name}_{phase}-{key}.png", folder / f"{name}_{phase}-{key}_gt.png"
        files[phase] = (image, label)
        if not {image.name, label.name} <= cached.get(f"{name}_{phase}", set()):
            missing[phase] = frame
    if missing:
        decoded = video.read_video_frames(path, missing.values())
        for phase, frame in missing.items():
            image, label = files[phase]
            atomic_write_bytes(label, _png(tracing_label(traced[frame].chords, shape)))
            atomic_write_bytes(image, _png(decoded[frame]))
            for old in cached.get(f"{name}_{phase}", set()) - {image.name, label.name}:
                (folder / old).unlink(missing_ok=True)
    return files


def _cache_folder(root: Path, cache_dir: Path | str | None) -> Path:
    """The extraction folder of ``root`` (one per dataset path), created; DataError naming it
    when it cannot be."""
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    digest = hashlib.sha256(os.path.abspath(root).encode()).hexdigest()[:16]
    folder = base / "echonet" / digest
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{folder}: cannot create the EchoNet frame cache ({failure_reason(exc)}"
                        "); set ECHOSEG_CACHE to a writable folder") from None
    return folder


def _save_splits(path: Path, splits: dict[str, list[str]]) -> Path:
    """Write ``splits`` as a split JSON at ``path`` unless it already holds them."""
    text = json.dumps(splits, indent=1) + "\n"
    try:
        if path.read_text(encoding="utf-8") == text:
            return path
    except (OSError, UnicodeDecodeError):
        pass
    return atomic_write_bytes(path, text.encode("utf-8"))


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _rows(path: Path, required: tuple[str, ...]):
    """(line number, row dict) of a CSV file with a header; DataError naming the file and line
    when it cannot be read, lacks a ``required`` column or a row has the wrong length."""
    text = read_text_file(path, "CSV", encoding="utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader, [])]
        absent = [name for name in required if name not in header]
        if absent:
            raise DataError(f"{path}: line 1: missing column{'s' * (len(absent) > 1)} "
                            f"{', '.join(absent)} (header: {','.join(header) or 'empty'})")
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise DataError(f"{path}: line {reader.line_num}: expected {len(header)} "
                                f"fields ({','.join(header)}), got {len(values)}")
            yield reader.line_num, dict(zip(header, values, strict=True))
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: malformed CSV ({exc})") from None


def _number(path: Path, line: int, key: str, text: str, empty: bool = False) -> float | None:
    """``text`` as a finite float (None for an empty field when ``empty``); DataError naming the
    file, line and column otherwise."""
    text = text.strip()
    if not text and empty:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DataError(f"{path}: line {line}: {key} must be a number, got {text!r}")
    return value
