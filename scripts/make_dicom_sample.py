"""Write the bundled DICOM sample: patient0200's apical 4-chamber ED and ES frames as a 2-frame
Ultrasound Multi-frame Image, as a scanner would write it.

Usage: python scripts/make_dicom_sample.py [--out src/echoseg/samples/dicom/patient0200_4CH.dcm]

The two 224x224 CAMUS frames (src/echoseg/samples/camus224/patient0200) are placed in a larger
frame with a burnt-in text band above and an ECG-like trace below, and the Sequence of
Ultrasound Regions marks the image as the 2D region, so `echoseg predict` segments inside it
and pastes the labels back. The source images carry no pixel spacing, so the region has no
physical units and none is invented.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "src" / "echoseg" / "samples"
US_MULTI_FRAME = "1.2.840.10008.5.1.4.1.1.3.1"  # Ultrasound Multi-frame Image Storage
TOP, BOTTOM, SIDE = 24, 32, 16  # pixels of text band, trace band and margin around the image
# fixed UIDs under the UUID-derived root 2.25: the file is the same every time it is written
STUDY, SERIES, INSTANCE = (f"2.25.{n}" for n in (
    200040000000000000000000000001, 200040000000000000000000000002,
    200040000000000000000000000003))


def frames() -> np.ndarray:
    """(2, H, W) uint8: ED and ES of patient0200 4CH inside the scanner-like frame."""
    out = []
    for phase in ("ED", "ES"):
        image = np.asarray(Image.open(SAMPLES / "camus224" / "patient0200"
                                      / f"patient0200_4CH_{phase}.png").convert("L"))
        h, w = image.shape
        frame = np.zeros((TOP + h + BOTTOM, 2 * SIDE + w), np.uint8)
        frame[TOP:TOP + h, SIDE:SIDE + w] = image
        frame[6:14, SIDE:SIDE + 90] = 230  # where a scanner burns in name and date
        cols = np.arange(frame.shape[1])
        trace = TOP + h + BOTTOM // 2 + (6 * np.sin(cols / 9.0)).astype(int)
        frame[trace, cols] = 200  # an ECG-like trace
        out.append(frame)
    return np.stack(out)


def region(rows: int, cols: int) -> Dataset:
    """The 2D region of the image inside the frame (MaxX1/MaxY1 inclusive), no physical units."""
    item = Dataset()
    item.RegionSpatialFormat = 1  # 2D tissue
    item.RegionDataType = 1
    item.RegionFlags = 0
    item.RegionLocationMinX0, item.RegionLocationMinY0 = SIDE, TOP
    item.RegionLocationMaxX1, item.RegionLocationMaxY1 = cols - SIDE - 1, rows - BOTTOM - 1
    item.PhysicalUnitsXDirection = item.PhysicalUnitsYDirection = 0  # none: spacing unknown
    item.PhysicalDeltaX = item.PhysicalDeltaY = 0.0
    return item


def write(path: Path) -> Path:
    """Write the sample to ``path``; returns it."""
    pixels = frames()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = US_MULTI_FRAME
    meta.MediaStorageSOPInstanceUID = INSTANCE
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = US_MULTI_FRAME, INSTANCE
    ds.StudyInstanceUID, ds.SeriesInstanceUID = STUDY, SERIES
    ds.Modality = "US"
    ds.PatientName, ds.PatientID = "CAMUS^patient0200", "patient0200"
    ds.SeriesDescription = "CAMUS patient0200 apical 4-chamber, ED and ES (CC BY-NC-SA 4.0)"
    ds.set_pixel_data(pixels, "MONOCHROME2", 8, generate_instance_uid=False)
    ds.SequenceOfUltrasoundRegions = [region(*pixels.shape[1:])]
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SAMPLES / "dicom" / "patient0200_4CH.dcm")
    print(write(parser.parse_args().out))


if __name__ == "__main__":
    main()
