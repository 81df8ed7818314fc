"""Scanner DICOM: pixels of every photometric, spacing and imaging region from the ultrasound
regions, frame time, JPEG, damaged files, and `echoseg predict` on a clip with an ECG trace."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import convert_color_space, get_decoder
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    generate_uid,
)

from echoseg.cli import main
from echoseg.data.readers import read_header, read_image
from echoseg.errors import DataError
from echoseg.inference.files import InputFile, find_inputs, output_extension
from echoseg.inference.pipeline import FilePredictor, load_input
from echoseg.io import crop_region, is_dicom_file, read_dicom_header, read_scan

US_MULTI = "1.2.840.10008.5.1.4.1.1.3.1"  # Ultrasound Multi-frame Image Storage
US_SINGLE = "1.2.840.10008.5.1.4.1.1.6.1"  # Ultrasound Image Storage
SC = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
MPEG4 = "1.2.840.10008.1.2.4.102"  # MPEG-4 AVC/H.264 High Profile: no pydicom decoder
H, W = 60, 80
SECTOR = (10, 50, 15, 65)  # rows 10..49, cols 15..64: (row0, row1, col0, col1)
TEXT = 250  # value of the burnt-in text and ECG trace outside the sector


def region(row0, row1, col0, col1, spatial=1, units=3, delta=(0.03, 0.03)) -> Dataset:
    """One item of the Sequence of Ultrasound Regions (MaxX1/MaxY1 inclusive)."""
    item = Dataset()
    item.RegionSpatialFormat = spatial
    item.RegionDataType = 1
    item.RegionLocationMinX0, item.RegionLocationMinY0 = col0, row0
    item.RegionLocationMaxX1, item.RegionLocationMaxY1 = col1 - 1, row1 - 1
    item.PhysicalUnitsXDirection = item.PhysicalUnitsYDirection = units
    item.PhysicalDeltaX, item.PhysicalDeltaY = delta[1], delta[0]  # cm per pixel
    return item


def dicom(pixels: np.ndarray | None, photometric="MONOCHROME2", sop=US_MULTI,
          syntax=ExplicitVRLittleEndian, **attrs) -> Dataset:
    """A dataset in the DICOM File Format, pixel module set from ``pixels`` (when given)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop, meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    if pixels is not None:
        bits = 16 if pixels.dtype == np.uint16 else 8
        ds.set_pixel_data(pixels, photometric, bits)
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


def save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def clip(frames=3, seed=0) -> np.ndarray:
    """(T, H, W) uint8: speckle inside the sector, text and an ECG trace outside it."""
    rng = np.random.default_rng(seed)
    out = np.zeros((frames, H, W), np.uint8)
    row0, row1, col0, col1 = SECTOR
    out[:, row0:row1, col0:col1] = rng.integers(0, 200, (frames, row1 - row0, col1 - col0))
    out[:, 1:6, 2:30] = TEXT  # patient name, date
    out[:, 53:57, :] = TEXT  # ECG trace
    return out


def us_clip(path: Path, frames=3, **attrs) -> Path:
    regions = [region(*SECTOR), region(52, 58, 0, W, spatial=4, units=4),  # ECG waveform
               region(0, 8, 60, 80, delta=(0.1, 0.1))]  # a smaller 2D region (a thumbnail)
    ds = dicom(clip(frames), SequenceOfUltrasoundRegions=regions, FrameTime=33.3, **attrs)
    return save(ds, path)


class Recorder:
    """A segmenter that records what it is given and labels every pixel LV."""

    runtime = "fake"

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def predict_batch(self, images, batch_size=8):
        self.seen.extend(np.array(im) for im in images)
        return [np.ones(np.asarray(im).shape, np.uint8) for im in images]


def test_multiframe_spacing_region_and_frame_time(tmp_path):
    path = us_clip(tmp_path / "clip.dcm")
    scan = read_scan(path)
    np.testing.assert_array_equal(scan.array, clip())
    assert scan.array.dtype == np.uint8
    assert scan.spacing == (0.3, 0.3)  # 0.03 cm, from the largest 2D region
    assert scan.region == SECTOR
    assert scan.frame_time_ms == pytest.approx(33.3)
    array, spacing = read_image(path)
    np.testing.assert_array_equal(array, scan.array)
    assert spacing == (0.3, 0.3)
    assert read_header(path) == ((3, H, W), (0.3, 0.3))
    header = read_dicom_header(path)
    assert header.shape == (3, H, W) and header.photometric == "MONOCHROME2"


def test_r_wave_pointer_gives_end_diastole_frames(tmp_path):
    # DICOM numbers frames from 1; 0 and 9 lie outside a 5-frame clip and are ignored
    path = us_clip(tmp_path / "ecg.dcm", frames=5, RWavePointer=[4, 1, 0, 9, 4])
    assert read_scan(path).r_wave_frames == (0, 3)
    assert read_dicom_header(path).r_wave_frames == (0, 3)
    assert read_scan(us_clip(tmp_path / "plain.dcm")).r_wave_frames == ()


def test_anisotropic_region_spacing_is_row_col_in_mm(tmp_path):
    regions = [region(0, H, 0, W - 10, delta=(0.05, 0.02))]
    path = save(dicom(clip(1)[0], sop=US_SINGLE, SequenceOfUltrasoundRegions=regions,
                      CineRate=50), tmp_path / "one.dcm")
    scan = read_scan(path)
    assert scan.array.shape == (H, W) and scan.spacing == (0.5, 0.2)
    assert scan.region == (0, H, 0, W - 10) and scan.frame_time_ms == 20.0


@pytest.mark.parametrize(("attrs", "expected"), [
    ({"PixelSpacing": [0.25, 0.5]}, (0.25, 0.5)),  # no region: PixelSpacing, already mm
    ({"SequenceOfUltrasoundRegions": [region(0, H, 0, W, units=0)],  # units not cm
      "PixelSpacing": [0.2, 0.2]}, (0.2, 0.2)),
    ({}, None),
])
def test_spacing_fallbacks(tmp_path, attrs, expected):
    path = save(dicom(clip(1)[0], sop=SC, **attrs), tmp_path / "x.dcm")
    scan = read_scan(path)
    assert scan.spacing == expected and scan.region is None and scan.frame_time_ms is None


def test_monochrome1_is_inverted(tmp_path):
    gray = clip(1)[0]
    path = save(dicom(gray, "MONOCHROME1", sop=US_SINGLE), tmp_path / "m1.dcm")
    np.testing.assert_array_equal(read_image(path)[0], 255 - gray)
    wide = (gray.astype(np.uint16) * 16)
    ds = dicom(wide, "MONOCHROME1", sop=SC)
    ds.BitsStored, ds.HighBit = 12, 11
    np.testing.assert_array_equal(read_image(save(ds, tmp_path / "m12.dcm"))[0], 4095 - wide)


def rgb_frames(frames=2) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    base = np.stack([yy * 4, xx * 3, (yy + xx) * 2], -1)
    return np.stack([(base + 20 * t) % 256 for t in range(frames)]).astype(np.uint8)


def luma(rgb: np.ndarray) -> np.ndarray:
    return np.rint(rgb.astype(np.float64) @ [0.299, 0.587, 0.114])


@pytest.mark.parametrize("photometric", ["RGB", "YBR_FULL"])
def test_colour_is_read_as_luma(tmp_path, photometric):
    rgb = rgb_frames()
    pixels = rgb if photometric == "RGB" else convert_color_space(rgb, "RGB", "YBR_FULL")
    path = save(dicom(pixels, photometric), tmp_path / "c.dcm")
    array, _ = read_image(path)
    assert array.shape == (2, H, W) and array.dtype == np.uint8
    tolerance = 1 if photometric == "RGB" else 2  # float32 rounding; YBR -> RGB rounds too
    assert np.abs(array - luma(rgb)).max() <= tolerance


def test_palette_colour_is_read_as_the_luma_it_displays(tmp_path):
    index = clip(1)[0]
    ds = dicom(None, sop=SC, Rows=H, Columns=W, SamplesPerPixel=1, BitsAllocated=8,
               BitsStored=8, HighBit=7, PixelRepresentation=0,
               PhotometricInterpretation="PALETTE COLOR")
    ramp = np.arange(256, dtype=np.uint16) * 257  # 16-bit entries
    for colour, table in zip(("Red", "Green", "Blue"), (ramp, ramp[::-1], ramp), strict=True):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData", table.tobytes())
    ds.PixelData = index.tobytes()
    array, _ = read_image(save(ds, tmp_path / "palette.dcm"))
    i = index.astype(np.float64) * 257
    np.testing.assert_allclose(array, 0.299 * i + 0.587 * (65535 - i) + 0.114 * i, atol=0.05)


def test_jpeg_baseline_multiframe(tmp_path):
    if not get_decoder(JPEGBaseline8Bit).is_available:
        pytest.skip("pydicom has no JPEG Baseline decoder here (needs Pillow)")
    rgb = rgb_frames(3)
    encoded = []
    for frame in rgb:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=95)
        encoded.append(buffer.getvalue())
    ds = dicom(None, syntax=JPEGBaseline8Bit, Rows=H, Columns=W, NumberOfFrames=3,
               SamplesPerPixel=3, PhotometricInterpretation="YBR_FULL_422", PlanarConfiguration=0,
               BitsAllocated=8, BitsStored=8, HighBit=7, PixelRepresentation=0,
               SequenceOfUltrasoundRegions=[region(*SECTOR)])
    ds.PixelData = encapsulate(encoded)
    path = save(ds, tmp_path / "jpeg.dcm")
    scan = read_scan(path)
    assert scan.array.shape == (3, H, W) and scan.region == SECTOR
    assert np.abs(scan.array - luma(rgb)).mean() < 3  # lossy, but the same picture


def test_implicit_vr_single_frame_and_file_without_extension(tmp_path):
    gray = clip(1)[0]
    path = save(dicom(gray, sop=US_SINGLE, syntax=ImplicitVRLittleEndian), tmp_path / "IM_0001")
    assert is_dicom_file(path) and output_extension(path) == ".nii.gz"
    np.testing.assert_array_equal(read_image(path)[0], gray)
    (tmp_path / "README").write_text("not an image")
    (tmp_path / "DICOMDIR").write_bytes(path.read_bytes())  # an index: never an input
    found = find_inputs([tmp_path])
    assert [f.path.name for f in found.files] == ["IM_0001"] and not found.problems


def one_line(exc: pytest.ExceptionInfo, path: Path) -> str:
    message = str(exc.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


def test_truncated_and_corrupt_files_are_one_line(tmp_path):
    whole = us_clip(tmp_path / "whole.dcm").read_bytes()
    for name, data, expected in [
        ("short.dcm", whole[:-100], "pixel data truncated"),
        ("header.dcm", whole[:300], "not an image, or truncated"),
        ("preamble.dcm", whole[:100], "not a readable DICOM file"),
        ("text.dcm", b"hello" * 100, "not a readable DICOM file"),
        ("empty.dcm", b"", "not a readable DICOM file"),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(DataError) as exc:
            read_image(path)
        assert expected in one_line(exc, path), name


def test_jpeg_with_damaged_frames_names_the_transfer_syntax(tmp_path):
    ds = dicom(None, syntax=JPEGBaseline8Bit, Rows=H, Columns=W, SamplesPerPixel=1,
               PhotometricInterpretation="MONOCHROME2", BitsAllocated=8, BitsStored=8,
               HighBit=7, PixelRepresentation=0)
    ds.PixelData = encapsulate([b"\xff\xd8 not a JPEG stream \xff\xd9"])
    path = save(ds, tmp_path / "bad.dcm")
    with pytest.raises(DataError) as exc:
        read_image(path)
    line = one_line(exc, path)
    assert "cannot decode DICOM pixel data" in line and JPEGBaseline8Bit in line


def test_unsupported_transfer_syntax_is_one_line(tmp_path):
    ds = dicom(None, syntax=MPEG4, Rows=H, Columns=W, SamplesPerPixel=1,
               PhotometricInterpretation="MONOCHROME2", BitsAllocated=8, BitsStored=8,
               HighBit=7, PixelRepresentation=0)
    ds.PixelData = encapsulate([b"\x00" * 16])
    path = save(ds, tmp_path / "odd.dcm")
    with pytest.raises(DataError) as exc:
        read_image(path)
    line = one_line(exc, path)
    assert "MPEG-4 AVC/H.264" in line and MPEG4 in line and "not supported" in line
    if get_decoder(JPEGLSLossless).is_available:
        return
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    path = save(ds, tmp_path / "jpegls.dcm")
    with pytest.raises(DataError) as exc:
        read_header(path)  # refused from the header, before any decoding
    line = one_line(exc, path)
    assert "JPEG-LS Lossless" in line and JPEGLSLossless in line and "no decoder" in line


def test_sizes_are_checked_from_the_header(tmp_path, monkeypatch):
    path = us_clip(tmp_path / "clip.dcm", frames=4)
    monkeypatch.setenv("ECHOSEG_MAX_FRAMES", "3")
    with pytest.raises(DataError, match="too many frames"):
        read_header(path)
    with pytest.raises(DataError) as exc:
        read_image(path)
    assert "too many frames (4" in one_line(exc, path)


def test_segmenter_sees_only_the_sector(tmp_path):
    path = us_clip(tmp_path / "clip.dcm")
    loaded = load_input(InputFile(path, "clip"))
    assert loaded.region == SECTOR and loaded.frame_time_ms == pytest.approx(33.3)
    recorder = Recorder()
    predictor = FilePredictor(recorder, tmp_path / "out", batch_size=2)
    predictor.run([InputFile(path, "clip")])
    assert not predictor.failures
    assert [im.shape for im in recorder.seen] == [(40, 50)] * 3
    assert all(im.max() < TEXT for im in recorder.seen)  # no text, no ECG trace
    labels, spacing = read_image(tmp_path / "out" / "clip_seg.nii.gz")
    assert labels.shape == (3, H, W) and spacing == (0.3, 0.3)
    row0, row1, col0, col1 = SECTOR
    assert (labels[:, row0:row1, col0:col1] == 1).all()
    assert labels.sum() == 3 * 40 * 50  # label 0 everywhere outside the sector
    assert "ultrasound region (rows 10-49, columns 15-64)" in predictor.rows[0]["note"]


def test_predict_cli_on_a_dicom_clip(tmp_path, capsys):
    path = us_clip(tmp_path / "in" / "clip.dcm")
    broken = tmp_path / "in" / "broken.dcm"
    broken.write_bytes(path.read_bytes()[:-500])
    out = tmp_path / "out"
    assert main(["predict", "lightweight", str(tmp_path / "in"), "--out", str(out),
                 "--device", "cpu", "--quiet"]) == 1  # one of two inputs failed
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"echoseg: error: {broken}: ") and "truncated" in line
    labels, spacing = read_image(out / "clip_seg.nii.gz")
    assert labels.shape == (3, H, W) and labels.dtype == np.uint8 and spacing == (0.3, 0.3)
    row0, row1, col0, col1 = SECTOR
    outside = np.ones((H, W), bool)
    outside[row0:row1, col0:col1] = False
    assert not labels[:, outside].any()
    assert Image.open(out / "clip_overlay.png").size == (W, H)
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["frame"] for r in rows] == ["0", "1", "2"]
    for t, row in enumerate(rows):
        assert row["input"] == str(path) and row["output"] == "clip_seg.nii.gz"
        area = int((labels[t] == 1).sum())
        assert int(row["area_LV_px"]) == area
        assert float(row["area_LV_mm2"]) == pytest.approx(area * 0.3 * 0.3)


def test_bundled_dicom_sample_is_the_camus_frames_inside_its_region():
    from echoseg.inference.files import bundled_samples

    sample = bundled_samples().parent / "dicom" / "patient0200_4CH.dcm"
    scan = read_scan(sample)
    assert scan.array.shape == (2, 280, 256) and scan.spacing is None
    assert scan.region == (24, 248, 16, 240)
    for frame, phase in zip(scan.array, ("ED", "ES"), strict=True):
        png = bundled_samples() / "patient0200" / f"patient0200_4CH_{phase}.png"
        np.testing.assert_array_equal(crop_region(frame, scan.region),
                                      np.asarray(Image.open(png).convert("L")))
