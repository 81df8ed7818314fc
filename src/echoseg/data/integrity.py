"""Cheap checks for damage SimpleITK does not report cleanly.

SimpleITK returns zero-filled pixels for a truncated ``.nii.gz`` or ``.nii`` without any error,
and for a missing or short MetaImage data file it prints to stderr and raises a misleading
error. These checks run first so the user gets one clear line instead.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

_CHUNK = 1 << 20
_MET_BYTES = {
    "MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
    "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}
# sizeof_hdr -> (dim format, dim offset, bitpix offset, vox_offset format, vox_offset offset)
_NIFTI = {348: ("h", 40, 72, "f", 108), 540: ("q", 16, 14, "q", 168)}


def gzip_problem(path: Path) -> str | None:
    """Return why the gzip stream in ``path`` is damaged (truncated or corrupt), None when whole."""
    decomp = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                # max_length bounds memory: only integrity matters, the data is discarded
                decomp.decompress(chunk, _CHUNK)
                while decomp.unconsumed_tail:
                    decomp.decompress(decomp.unconsumed_tail, _CHUNK)
                if decomp.eof:
                    return None
    except zlib.error as exc:
        return f"corrupt gzip data: {exc}"
    return None if decomp.eof else "truncated gzip data"


def nifti_problem(path: Path) -> str | None:
    """Return why an uncompressed ``.nii`` file is shorter than its header declares, or None.

    Reads the NIfTI-1 or NIfTI-2 header only; an unrecognised header is left to SimpleITK.
    """
    with open(path, "rb") as f:
        head = f.read(540)
    for endian in "<>":
        if len(head) < 4:
            return "truncated header"
        sizeof_hdr = struct.unpack(endian + "i", head[:4])[0]
        if sizeof_hdr not in _NIFTI:
            continue
        if len(head) < sizeof_hdr:
            return "truncated header"
        dim_format, dim_at, bitpix_at, offset_format, offset_at = _NIFTI[sizeof_hdr]
        dims = struct.unpack_from(f"{endian}8{dim_format}", head, dim_at)
        bitpix = struct.unpack_from(endian + "h", head, bitpix_at)[0]
        offset = int(struct.unpack_from(endian + offset_format, head, offset_at)[0])
        if not 1 <= dims[0] <= 7:
            return None
        expected = offset + math.prod(dims[1:dims[0] + 1]) * bitpix // 8
        actual = path.stat().st_size
        return f"truncated data ({actual} of {expected} bytes)" if actual < expected else None
    return None


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


def metaimage_problem(path: Path) -> str | None:
    """Return why the pixel data of a MetaImage file cannot be read, or None.

    Detects a missing data file and, for uncompressed data, one shorter than the header declares.
    """
    fields, header_end = metaimage_header(path)
    data_name = fields.get("ElementDataFile")
    if not data_name:
        return "no ElementDataFile in header"
    if data_name.upper().startswith("LIST") or "%" in data_name:
        return None  # one file per slice: left to SimpleITK
    local = data_name.upper() == "LOCAL"
    data = path if local else path.parent / data_name
    if not data.is_file():
        return f"data file {data_name} not found"
    if fields.get("CompressedData", "False").lower() == "true":
        return None
    try:
        dims = [int(v) for v in fields.get("DimSize", "").split()]
        channels = int(fields.get("ElementNumberOfChannels", "1"))
        item = _MET_BYTES[fields.get("ElementType", "")]
        header = header_end if local else max(int(fields.get("HeaderSize", "0")), 0)
    except (ValueError, KeyError):
        return None  # unusual header: let SimpleITK judge it
    expected = header + item * channels * math.prod(dims)
    actual = data.stat().st_size
    if actual < expected:
        what = "pixel data" if local else f"data file {data_name}"
        return f"{what} is truncated ({actual} of {expected} bytes)"
    return None
