"""Read scanner DICOM: ultrasound multi-frame and single-frame images, with their geometry.

Takes uncompressed and compressed pixel data wherever pydicom has a decoder for the transfer
syntax (JPEG Baseline through Pillow, RLE, ...), monochrome (MONOCHROME1 inverted to the
MONOCHROME2 convention: bright is high), RGB, YBR_FULL, YBR_FULL_422 and PALETTE COLOR
(converted to the ITU-R 601-2 luma PIL's ``convert("L")`` gives; 8-bit data stays uint8).

Geometry comes from the Sequence of Ultrasound Regions (0018,6011): the largest region whose
spatial format is 2D (RegionSpatialFormat 1) gives the *imaging region*, the part of the frame
holding the sector (the rest holds text, ECG traces and rulers), and, when its physical units
are cm (PhysicalUnitsX/YDirection 3), the pixel spacing in mm. Without such a region the
spacing comes from PixelSpacing (0028,0030), else it is unknown. Timing: the frame time from
FrameTime (0018,1063), CineRate or RecommendedDisplayFrameRate; end-diastole frames from the
R Wave Pointer (0028,6040), which marks the ECG's R waves by frame number (DICOM has no
standard element for end-systole). Sizes from the header are
checked against ``echoseg.data.limits`` before any pixel is decoded; every failure raises
DataError with one line naming the file (and the transfer syntax when decoding fails).
"""

from __future__ import annotations

import math
import os
import re
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from echoseg.data.limits import check_size
from echoseg.data.names import DICOM_EXTENSIONS, split_extension
from echoseg.errors import DataError, plain_reason, short_name, shorten

Spacing = tuple[float, float] | None
Region = tuple[int, int, int, int]  # row0, row1, col0, col1: rows row0..row1-1, half-open
PREAMBLE_END = 132  # 128-byte preamble, then b"DICM"
DICOMDIR = "DICOMDIR"  # a media directory: names files, holds no image
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_CM = 3  # PhysicalUnitsX/YDirection code for centimetres
_SPATIAL_2D = 1  # RegionSpatialFormat code for a 2D (tissue or flow) region
_OBJECT_REPR = re.compile(r" ?<[\w.]+ object at 0x[0-9a-f]+>")
_ALL_PLUGINS = "Unable to decode as exceptions were raised by all available plugins: "
# warnings.catch_warnings swaps a process-wide filter list: threads reading DICOM at once
# (folder scans) would restore each other's filters; one reader at a time keeps them intact.
_QUIET_LOCK = threading.RLock()
_DEFER_BYTES = 1 << 20  # header values larger than this (private blobs) are not loaded


@dataclass(frozen=True)
class DicomHeader:
    """What a DICOM header says, pixels not decoded: ``shape`` as :func:`read_dicom` returns
    it ((H, W) or (T, H, W)), ``spacing`` in mm (row, col) or None, the imaging ``region``
    (:data:`Region`, None when absent or the whole frame), ``frame_time_ms`` (ms between
    frames, or None), the ``transfer_syntax`` UID, the ``photometric`` interpretation and
    ``r_wave_frames``, the 0-based frames the R Wave Pointer marks (end-diastole; empty when
    absent)."""

    shape: tuple[int, ...]
    spacing: Spacing
    region: Region | None
    frame_time_ms: float | None
    transfer_syntax: str
    photometric: str
    r_wave_frames: tuple[int, ...] = ()


@dataclass(frozen=True)
class ScanImage:
    """An image read with its geometry: ``array`` (H, W) or (T, H, W), grayscale; ``spacing``
    in mm (row, col) or None; ``region`` (:data:`Region`), the part of each frame to segment,
    or None for the whole frame; ``frame_time_ms``, the time between frames in ms, or None;
    ``r_wave_frames``, the 0-based frames a DICOM R Wave Pointer marks (end-diastole), or ()."""

    array: np.ndarray
    spacing: Spacing
    region: Region | None = None
    frame_time_ms: float | None = None
    r_wave_frames: tuple[int, ...] = ()


def is_dicom_file(path: Path | str) -> bool:
    """True for a ``.dcm``/``.dicom`` name, or a file without extension that has the DICOM
    marker (:func:`has_dicom_preamble`; scanners and PACS exports often name files so)."""
    ext = split_extension(path)[1]
    return ext in DICOM_EXTENSIONS or (ext == "" and has_dicom_preamble(path))


def has_dicom_preamble(path: Path | str) -> bool:
    """True when ``path`` is a regular file with the DICOM File Format marker (b"DICM" after a
    128-byte preamble); reads 132 bytes, never opens anything but a regular file."""
    try:
        if not os.path.isfile(path):
            return False
        with open(path, "rb") as f:
            head = f.read(PREAMBLE_END)
    except OSError:
        return False
    return len(head) == PREAMBLE_END and head[128:] == b"DICM"


def read_dicom_header(path: Path | str) -> DicomHeader:
    """Read the header of a DICOM image (no pixel decoded) and check its size.

    Raises DataError naming the file when it is not a DICOM image, its header is damaged, it
    declares an empty or too large size (``echoseg.data.limits``), or its transfer syntax has
    no decoder here.
    """
    return _header(Path(path))[0]


def read_dicom(path: Path | str) -> ScanImage:
    """Decode a DICOM image: every frame as grayscale (see the module docstring), with its
    spacing, imaging region and frame time (:class:`ScanImage`). The array is (H, W) for one
    frame, (T, H, W) for several. Raises DataError with one line naming the file on any
    failure: not DICOM, truncated or damaged, too large, no decoder for its transfer syntax,
    pixel data that cannot be decoded."""
    path = Path(path)
    header, ds = _header(path)
    frames = header.shape[0] if len(header.shape) == 3 else 1
    array, count = None, 0
    try:
        from pydicom.pixels import iter_pixels

        with _quiet(), open(path, "rb") as f:
            for frame in iter_pixels(f):
                gray = _gray(frame, ds, header.photometric)
                if array is None:
                    array = np.empty((frames, *gray.shape), dtype=gray.dtype)
                if count >= frames or gray.shape != array.shape[1:]:
                    raise ValueError(f"frame {count} does not match the declared size")
                array[count] = gray
                count += 1
    except DataError:
        raise
    except Exception as exc:  # any decoder failure on hostile data: one line
        raise DataError(f"{path}: cannot decode DICOM pixel data "
                        f"({_syntax_name(header.transfer_syntax)}: {_reason(exc)})") from None
    if array is None or count < frames or array.shape[1:] != header.shape[-2:]:
        raise DataError(f"{path}: cannot decode DICOM pixel data "
                        f"({_syntax_name(header.transfer_syntax)}: fewer frames than declared)")
    return ScanImage(array[0] if frames == 1 else array, header.spacing, header.region,
                     header.frame_time_ms, header.r_wave_frames)


def crop_region(frame: np.ndarray, region: Region | None) -> np.ndarray:
    """The part of a 2D ``frame`` inside ``region`` (the whole frame for None), contiguous."""
    if region is None:
        return frame
    row0, row1, col0, col1 = region
    return np.ascontiguousarray(frame[row0:row1, col0:col1])


def paste_region(labels: np.ndarray, region: Region | None, shape: tuple[int, int]) -> np.ndarray:
    """A label map of the full frame ``shape`` (H, W): ``labels`` (the region's size) placed at
    ``region``, label 0 (background) everywhere else; ``labels`` itself for None."""
    if region is None:
        return labels
    row0, row1, col0, col1 = region
    full = np.zeros(shape, dtype=labels.dtype)
    full[row0:row1, col0:col1] = labels
    return full


def _header(path: Path):
    """The DicomHeader and pydicom's header Dataset (stopped before the pixel data)."""
    from echoseg.data.readers import check_file

    check_file(path)
    with _quiet():
        header, ds, pixels_at = _parse(path)
        _check_decodable(path, header, ds, pixels_at)
    return header, ds


def _parse(path: Path):
    """(DicomHeader, header Dataset, offset of the pixel data element) of ``path``."""
    try:
        import pydicom

        with open(path, "rb") as f:
            ds = pydicom.dcmread(f, stop_before_pixels=True, defer_size=_DEFER_BYTES)
            pixels_at = f.tell()
        return _describe(path, ds), ds, pixels_at
    except DataError:
        raise
    except Exception as exc:  # pydicom on hostile headers: one line
        from pydicom.errors import InvalidDicomError

        reason = ("no 'DICM' marker after the 128-byte preamble"
                  if isinstance(exc, InvalidDicomError) else _reason(exc))
        if os.path.getsize(path) == 0:
            reason = "empty file"
        raise DataError(f"{path}: cannot read image (not a readable DICOM file: {reason})"
                        ) from None


def _describe(path: Path, ds) -> DicomHeader:
    """Check the image pixel module of ``ds`` and the size limits; the DicomHeader."""
    syntax = str(getattr(ds.file_meta, "TransferSyntaxUID", "") or "")
    if not syntax:
        raise DataError(f"{path}: cannot read image (DICOM file without a transfer syntax)")
    if "Rows" not in ds or "Columns" not in ds:
        raise DataError(f"{path}: cannot read image (DICOM header without Rows/Columns: "
                        f"not an image, or truncated; SOP class {_sop_name(ds)})")
    rows, cols = int(ds.Rows), int(ds.Columns)
    frames = int(ds.get("NumberOfFrames") or 1)
    check_size(path, rows, cols, frames)
    samples = int(ds.get("SamplesPerPixel") or 1)
    if samples not in (1, 3):
        raise DataError(f"{path}: cannot read image ({samples} samples per pixel, expected "
                        "1 or 3)")
    region, spacing = _geometry(ds, rows, cols)
    shape = (frames, rows, cols) if frames > 1 else (rows, cols)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    return DicomHeader(shape, spacing, region, _frame_time(ds), syntax, photometric,
                       _r_wave_frames(ds, frames))


def _check_decodable(path: Path, header: DicomHeader, ds, pixels_at: int) -> None:
    """Refuse, before decoding, a transfer syntax without a decoder here and (for uncompressed
    data) pixel data shorter than the header declares."""
    from pydicom.pixels import get_decoder
    from pydicom.pixels.utils import get_expected_length
    from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

    syntax = UID(header.transfer_syntax)
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise DataError(f"{path}: cannot read image (DICOM transfer syntax "
                        f"{_syntax_name(syntax)} is not supported)") from None
    if not decoder.is_available:
        needs = sorted({d.split(" ")[0] for d in decoder.missing_dependencies})
        raise DataError(f"{path}: cannot read image (no decoder installed for DICOM transfer "
                        f"syntax {_syntax_name(syntax)}; it needs one of: {', '.join(needs)})")
    if not syntax.is_compressed and syntax != DeflatedExplicitVRLittleEndian:
        try:
            expected = get_expected_length(ds)
        except Exception:  # odd pixel module: left to the decoder
            return
        element = 8 if syntax.is_implicit_VR else 12  # tag, (VR and reserved,) length
        available = os.path.getsize(path) - pixels_at - element
        if available < 0:
            raise DataError(f"{path}: cannot read image (DICOM file without pixel data: "
                            "truncated, or not an image)")
        if available < expected:
            raise DataError(f"{path}: cannot read image (DICOM pixel data truncated: "
                            f"{max(available, 0)} bytes, expected {expected})")


def _regions_2d(ds, rows: int, cols: int) -> list[tuple[Region, Spacing]]:
    """The 2D regions of the Sequence of Ultrasound Regions, largest first: each box clipped to
    the frame (regions under 2 pixels a side dropped) and its spacing in mm when its physical
    units are cm (else None)."""
    found = []
    try:
        items = list(ds.get("SequenceOfUltrasoundRegions") or [])
    except (TypeError, ValueError):
        return []
    for item in items:
        try:
            if int(item.get("RegionSpatialFormat", -1)) != _SPATIAL_2D:
                continue
            box = (max(int(item.RegionLocationMinY0), 0),
                   min(int(item.RegionLocationMaxY1) + 1, rows),
                   max(int(item.RegionLocationMinX0), 0),
                   min(int(item.RegionLocationMaxX1) + 1, cols))
            cm = [int(item.get(f"PhysicalUnits{a}Direction", -1)) == _CM for a in "XY"]
            spacing = _positive(abs(float(item.PhysicalDeltaY)) * 10,
                                abs(float(item.PhysicalDeltaX)) * 10) if all(cm) else None
        except (AttributeError, TypeError, ValueError):
            continue
        if box[1] - box[0] > 1 and box[3] - box[2] > 1:
            found.append((box, spacing))
    return sorted(found, key=lambda r: -(r[0][1] - r[0][0]) * (r[0][3] - r[0][2]))


def _geometry(ds, rows: int, cols: int) -> tuple[Region | None, Spacing]:
    """The imaging region (the largest 2D one; None when there is none or it is the whole
    frame) and the (row, col) spacing in mm: from the largest 2D region in cm, else
    PixelSpacing, else None."""
    regions = _regions_2d(ds, rows, cols)
    region = regions[0][0] if regions else None
    region = None if region == (0, rows, 0, cols) else region
    spacing = next((s for _, s in regions if s is not None), None)
    if spacing is None:
        try:
            spacing = _positive(*(float(v) for v in ds.get("PixelSpacing") or ()))
        except (TypeError, ValueError):
            spacing = None
    return region, spacing


def _frame_time(ds) -> float | None:
    """Milliseconds between frames: FrameTime, else 1000 / CineRate, else 1000 /
    RecommendedDisplayFrameRate; None when none is given (or not positive)."""
    for keyword, per_second in (("FrameTime", False), ("CineRate", True),
                                ("RecommendedDisplayFrameRate", True)):
        try:
            value = float(ds.get(keyword) or 0)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value) and value > 0:
            return round(1000 / value if per_second else value, 6)
    return None


def _r_wave_frames(ds, frames: int) -> tuple[int, ...]:
    """The R Wave Pointer's frames (1-based frame numbers in DICOM) as sorted, distinct 0-based
    frames of a multi-frame image; values outside 1..frames or not integers are ignored."""
    if frames < 2:
        return ()
    try:
        values = ds.get("RWavePointer")
    except (TypeError, ValueError):
        return ()
    if values is None:
        return ()
    if isinstance(values, (int, float, str)):
        values = [values]
    found = set()
    for value in values:
        try:
            number = int(value)
        except (TypeError, ValueError):
            continue
        if number == value and 1 <= number <= frames:
            found.add(number - 1)
    return tuple(sorted(found))


def _positive(row: float, col: float) -> Spacing:
    ok = all(math.isfinite(v) and v > 0 for v in (row, col))
    return (round(row, 6), round(col, 6)) if ok else None


def _gray(frame: np.ndarray, ds, photometric: str) -> np.ndarray:
    """One decoded frame as a 2D grayscale array (see the module docstring)."""
    if photometric == "PALETTE COLOR" and frame.ndim == 2:
        from pydicom.pixels import apply_color_lut

        frame = apply_color_lut(frame, ds)
    if frame.ndim == 3:  # RGB (pydicom has converted YBR_FULL and YBR_FULL_422 to RGB)
        luma = frame[..., :3].astype(np.float32) @ _LUMA
        if frame.dtype == np.uint8:
            return np.clip(np.rint(luma), 0, 255).astype(np.uint8)
        return luma
    if photometric == "MONOCHROME1":
        if np.issubdtype(frame.dtype, np.signedinteger):
            return np.invert(frame)  # -1 - x: the signed range onto itself
        if np.issubdtype(frame.dtype, np.unsignedinteger):
            top = (1 << int(ds.get("BitsStored") or frame.dtype.itemsize * 8)) - 1
            top = min(top, np.iinfo(frame.dtype).max)
            return (top - np.minimum(frame, top)).astype(frame.dtype)
        return frame.max() + frame.min() - frame
    return frame


@contextmanager
def _quiet():
    """pydicom warns about every oddity of real files; users get one line, or nothing."""
    with _QUIET_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _syntax_name(uid) -> str:
    from pydicom.uid import UID

    text = short_name(str(uid))
    name = short_name(UID(str(uid)).name)
    return f"'{name}' ({text})" if name != text else f"'{text}'"


def _sop_name(ds) -> str:
    from pydicom.uid import UID

    uid = str(ds.get("SOPClassUID", "") or getattr(ds.file_meta, "MediaStorageSOPClassUID", ""))
    return f"'{short_name(UID(uid).name)}'" if uid else "unknown"


def _reason(exc: BaseException) -> str:
    """One short line; pydicom's "all plugins failed" preamble and object reprs left out."""
    if isinstance(exc, MemoryError):
        return "not enough memory"
    text = _OBJECT_REPR.sub("", plain_reason(exc, limit=1000).replace(_ALL_PLUGINS, ""))
    return shorten(text)
