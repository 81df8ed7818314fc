"""Cheap checks, from headers and file sizes, for what SimpleITK does not report cleanly.

SimpleITK returns zero-filled pixels for a truncated ``.nii``, a ``.nii.gz`` whose payload is
short and a compressed MetaImage whose data is short, without any error; it reads a NIfTI with a
zero dimension as one blank frame; for a missing or short MetaImage data file it prints to
stderr and raises a misleading error. These checks run first so the user gets one clear line
instead. Sizes are in ITK order (x = columns, y = rows, then frames).
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

_CHUNK = 1 << 20
_MET_BYTES = {
    "MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
    "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}
# sizeof_hdr -> (dim format, dim offset, bitpix offset, vox_offset format, vox_offset offset)
_NIFTI = {348: ("h", 40, 72, "f", 108), 540: ("q", 16, 14, "q", 168)}
_NIFTI_HEAD = 540
# zlib's automatic header detection: MetaImage data may be a zlib or a gzip stream
_ZLIB_OR_GZIP = 32 + zlib.MAX_WBITS


class Layout(NamedTuple):
    """What a header declares: the size in ITK order and the bytes up to the end of the pixel
    data (None when it cannot be told)."""

    size: tuple[int, ...]
    end: int | None


def nifti_layout(head: bytes) -> Layout | str | None:
    """Parse the first bytes (540 are enough) of a NIfTI-1 or NIfTI-2 file.

    Returns its Layout, a problem ("truncated header"), or None when the bytes are not a NIfTI
    header (then SimpleITK judges the file).
    """
    if len(head) < 4:
        return "truncated header"
    for endian in "<>":
        sizeof_hdr = struct.unpack(endian + "i", head[:4])[0]
        if sizeof_hdr not in _NIFTI:
            continue
        if len(head) < sizeof_hdr:
            return "truncated header"
        dim_format, dim_at, bitpix_at, offset_format, offset_at = _NIFTI[sizeof_hdr]
        dims = struct.unpack_from(f"{endian}8{dim_format}", head, dim_at)
        bitpix = struct.unpack_from(endian + "h", head, bitpix_at)[0]
        offset = struct.unpack_from(endian + offset_format, head, offset_at)[0]
        if not 1 <= dims[0] <= 7:
            return None
        size = tuple(int(d) for d in dims[1:dims[0] + 1])
        if bitpix <= 0 or min(size) < 0 or not math.isfinite(offset) or offset < 0:
            return Layout(size, None)
        return Layout(size, int(offset) + (math.prod(size) * bitpix + 7) // 8)
    return None


def nifti_head(path: Path, compressed: bool) -> bytes:
    """The first bytes of a NIfTI file's (decompressed) stream, enough for its header; raises
    OSError, EOFError or zlib.error for an unreadable stream."""
    opener = gzip.open if compressed else open
    with opener(path, "rb") as f:
        return f.read(_NIFTI_HEAD)


def nifti_problem(path: Path) -> str | None:
    """Return why an uncompressed ``.nii`` file is shorter than its header declares, or None."""
    layout = nifti_layout(nifti_head(path, compressed=False))
    if isinstance(layout, str) or layout is None or layout.end is None:
        return layout if isinstance(layout, str) else None
    actual = path.stat().st_size
    return f"truncated data ({actual} of {layout.end} bytes)" if actual < layout.end else None


def gzip_problem(path: Path, expected: int | None = None) -> str | None:
    """Return why the gzip stream in ``path`` is damaged, or None when it is whole.

    Problems: truncated or corrupt gzip data, or a valid stream whose content is shorter than
    ``expected`` bytes (what the header declares). Stops reading once ``expected`` bytes came
    out, so a stream far longer than its header declares costs no more than a valid one.
    """
    return _inflate_problem(path, 0, 16 + zlib.MAX_WBITS, expected, "gzip data")


def metaimage_header(path: Path) -> tuple[dict[str, str], int]:
    """Parse the ``Key = Value`` header of a MetaImage ``.mhd``/``.mha`` file.

    Returns the fields (values as strings) and the header length in bytes; the header ends with
    the ElementDataFile line, after which a ``.mha`` file holds its pixel data.
    """
    fields: dict[str, str] = {}
    with open(path, "rb") as f:
        for line in f:
            key, sep, value = line.decode("latin-1").partition("=")
            if sep:
                fields[key.strip()] = value.strip()
            if key.strip() == "ElementDataFile" or len(fields) > 100:
                return fields, f.tell()
    return fields, 0


def metaimage_size(fields: dict[str, str]) -> tuple[int, ...] | None:
    """DimSize of a MetaImage header (ITK order), or None when absent or not integers."""
    try:
        size = tuple(int(v) for v in fields.get("DimSize", "").split())
    except ValueError:
        return None
    return size or None


def metaimage_problem(path: Path, decompress: bool = True) -> str | None:
    """Return why the pixel data of a MetaImage file cannot be read, or None.

    Detects a missing data file (or one that is not a regular file) and data shorter than the
    header declares: for uncompressed data from the file size; for compressed data from
    CompressedDataSize and, when ``decompress``, from the length of the decompressed stream.
    """
    fields, header_end = metaimage_header(path)
    data_name = fields.get("ElementDataFile")
    if not data_name:
        return "no ElementDataFile in header"
    if data_name.upper().startswith("LIST") or "%" in data_name:
        return None  # one file per slice: left to SimpleITK
    local = data_name.upper() == "LOCAL"
    data = path if local else path.parent / data_name
    if not data.exists():
        return f"data file {data_name} not found"
    if not data.is_file():
        return f"data file {data_name} is not a regular file"
    size = metaimage_size(fields)
    try:
        channels = int(fields.get("ElementNumberOfChannels", "1"))
        item = _MET_BYTES[fields.get("ElementType", "")]
        header = header_end if local else max(int(fields.get("HeaderSize", "0")), 0)
    except (ValueError, KeyError):
        return None  # unusual header: let SimpleITK judge it
    if size is None or min(size) < 0:
        return None
    payload = item * channels * math.prod(size)
    what = "pixel data" if local else f"data file {data_name}"
    actual = data.stat().st_size
    if fields.get("CompressedData", "False").lower() != "true":
        if actual < header + payload:
            return f"{what} is truncated ({actual} of {header + payload} bytes)"
        return None
    offset = header_end if local else 0
    declared = fields.get("CompressedDataSize", "")
    if declared.isdigit() and actual - offset < int(declared):
        return f"compressed {what} is truncated ({actual - offset} of {declared} bytes)"
    if not decompress:
        return None
    return _inflate_problem(data, offset, _ZLIB_OR_GZIP, payload, "compressed data")


def _inflate_problem(path: Path, offset: int, wbits: int, expected: int | None,
                     what: str) -> str | None:
    """Decompress the stream starting at ``offset`` in ``path`` in bounded memory and return
    why it is damaged or shorter than ``expected`` bytes, or None."""
    decomp = zlib.decompressobj(wbits=wbits)
    produced = 0
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            while chunk := f.read(_CHUNK):
                # max_length bounds memory: only the length matters, the data is discarded
                produced += len(decomp.decompress(chunk, _CHUNK))
                while decomp.unconsumed_tail:
                    produced += len(decomp.decompress(decomp.unconsumed_tail, _CHUNK))
                if decomp.eof or (expected is not None and produced >= expected):
                    break
    except zlib.error as exc:
        return f"corrupt {what}: {exc}"
    if expected is not None and produced >= expected:
        return None
    if not decomp.eof:
        return f"truncated {what}"
    if expected is not None:
        return f"truncated data ({produced} of {expected} bytes)"
    return None
