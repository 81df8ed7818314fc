"""Images read with their acquisition geometry: scanner DICOM (ultrasound regions, frame time)
and, through ``echoseg.data.readers``, every other image format, as one :class:`ScanImage`."""

from __future__ import annotations

from pathlib import Path

from echoseg.data.names import VIDEO_EXTENSIONS, split_extension
from echoseg.data.readers import read_image
from echoseg.io.dicom import (
    DicomHeader,
    Region,
    ScanImage,
    crop_region,
    has_dicom_preamble,
    is_dicom_file,
    paste_region,
    read_dicom,
    read_dicom_header,
)

__all__ = ["DicomHeader", "Region", "ScanImage", "crop_region", "has_dicom_preamble",
           "is_dicom_file", "paste_region", "read_dicom", "read_dicom_header", "read_scan"]


def read_scan(path: Path | str) -> ScanImage:
    """Read any image file echoseg takes (``echoseg.data.readers.read_image``), keeping what
    its format records beyond the pixels: for DICOM the imaging region and the frame time
    (:func:`read_dicom`), for a video its frame time; for other formats ``region`` and
    ``frame_time_ms`` are None.
    Raises DataError with one line naming the file when it cannot be read."""
    path = Path(path)
    if is_dicom_file(path):
        return read_dicom(path)
    if split_extension(path)[1] in VIDEO_EXTENSIONS:
        from echoseg.io.video import read_video

        video = read_video(path)
        return ScanImage(video.frames, None, frame_time_ms=video.frame_time_ms)
    array, spacing = read_image(path)
    return ScanImage(array, spacing)
