"""Readers: pixel values, shapes and (row, col) spacing from every format; one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from echoseg.data.readers import (
    read_header,
    read_image,
    read_label_map,
    write_image,
    write_label_map,
)
from echoseg.errors import DataError

IMAGE = (np.arange(50 * 40).reshape(50, 40) % 256).astype(np.uint8)  # H=50, W=40


@pytest.mark.parametrize("ext", [".png", ".tif", ".nii.gz", ".nii", ".mhd"])
def test_round_trip_values_shape_and_spacing(tmp_path, ext):
    path = tmp_path / f"x{ext}"
    write_image(path, IMAGE, spacing=(0.308, 0.154))
    array, spacing = read_image(path)
    np.testing.assert_array_equal(array, IMAGE)
    assert array.dtype == np.uint8
    shape, header_spacing = read_header(path)
    assert shape == (50, 40)
    expected = None if ext in (".png", ".tif") else (0.308, 0.154)
    assert spacing == header_spacing == expected


def test_sitk_spacing_is_swapped_to_row_col(tmp_path):
    image = sitk.GetImageFromArray(IMAGE)
    image.SetSpacing((0.154, 0.308))  # ITK order: x (column), y (row)
    sitk.WriteImage(image, str(tmp_path / "x.nii.gz"))
    assert read_image(tmp_path / "x.nii.gz")[1] == (0.308, 0.154)


def test_sequence_and_one_slice_volume(tmp_path):
    frames = np.stack([IMAGE, IMAGE // 2, IMAGE // 3])
    write_image(tmp_path / "seq.nii.gz", frames, spacing=(0.3, 0.2))
    array, spacing = read_image(tmp_path / "seq.nii.gz")
    np.testing.assert_array_equal(array, frames)
    assert spacing == (0.3, 0.2)
    assert read_header(tmp_path / "seq.nii.gz") == ((3, 50, 40), (0.3, 0.2))
    write_image(tmp_path / "slice.mhd", IMAGE[None])  # 2019 CAMUS style: W x H x 1 volume
    assert read_image(tmp_path / "slice.mhd")[0].shape == (50, 40)
    assert read_header(tmp_path / "slice.mhd")[0] == (50, 40)


def test_rgb_is_converted_to_grayscale_and_16_bit_kept(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 1] = 200
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    array, _ = read_image(tmp_path / "rgb.png")
    assert array.shape == (4, 5) and array.dtype == np.uint8
    assert np.all(array == round(0.587 * 200))
    deep = (np.arange(20).reshape(4, 5) * 3000).astype(np.uint16)
    write_image(tmp_path / "deep.png", deep)
    np.testing.assert_array_equal(read_image(tmp_path / "deep.png")[0], deep)


def test_write_label_map_rejects_values_outside_labels(tmp_path):
    write_label_map(tmp_path / "ok.png", np.array([[0, 1], [2, 3]]))
    assert read_image(tmp_path / "ok.png")[0].tolist() == [[0, 1], [2, 3]]
    with pytest.raises(ValueError, match="0..3"):
        write_label_map(tmp_path / "bad.png", np.array([[0, 4]]))


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: None, "file not found"),
        (lambda p: p.write_bytes(b""), "cannot identify image file"),
        (lambda p: p.write_bytes(b"not an image at all"), "cannot identify image file"),
        (lambda p: (write_image(p, IMAGE), _truncate(p)), "truncated"),
    ],
    ids=["missing", "empty", "garbage", "truncated"],
)
def test_png_errors_are_one_line_naming_the_file(tmp_path, make, reason):
    path = tmp_path / "x.png"
    make(path)
    with pytest.raises(DataError) as err:
        read_image(path)
    message = str(err.value)
    assert message.startswith(f"{path}: cannot read image (") and reason in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("ext", "reason"),
    [(".nii.gz", "truncated gzip data"), (".nii", "truncated data (54316 of 60352 bytes)"),
     (".mha", "pixel data is truncated (54249 of 60277 bytes)")],
)
def test_truncated_volumes_are_detected(tmp_path, ext, reason, capfd):
    # SimpleITK itself silently zero-fills truncated NIfTI data
    path = tmp_path / f"x{ext}"
    write_image(path, np.random.default_rng(0).integers(0, 255, (200, 300), dtype=np.uint8))
    _truncate(path, 0.9)
    with pytest.raises(DataError) as err:
        read_image(path)
    assert str(err.value) == f"{path}: cannot read image ({reason})"
    assert capfd.readouterr().err == ""


def test_garbage_nifti_is_one_line(tmp_path):
    path = tmp_path / "x.nii.gz"
    path.write_bytes(b"garbage" * 20)
    with pytest.raises(DataError) as err:
        read_header(path)
    assert str(err.value) == f"{path}: cannot read image (not a readable NIfTI/MetaImage file)"


def test_metaimage_missing_or_short_raw(tmp_path, capfd):
    path = tmp_path / "x.mhd"
    write_image(path, IMAGE)
    _truncate(tmp_path / "x.raw", 0.5)
    with pytest.raises(DataError) as err:
        read_image(path)
    assert str(err.value) == (f"{path}: cannot read image "
                              "(data file x.raw is truncated (1000 of 2000 bytes))")
    (tmp_path / "x.raw").unlink()
    with pytest.raises(DataError, match=r"x\.mhd: cannot read image \(data file x\.raw not found"):
        read_header(path)
    assert capfd.readouterr().err == ""  # ITK printed nothing: the check ran first


def test_palette_png_is_gray_as_an_image_and_indices_as_a_label_map(tmp_path):
    indices = np.array([[0, 1], [2, 3]], np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])  # black, red, green, blue
    image.save(tmp_path / "label.png")
    np.testing.assert_array_equal(read_label_map(tmp_path / "label.png")[0], indices)
    # an image is what it displays: the luma of each palette colour
    gray = read_image(tmp_path / "label.png")[0]
    np.testing.assert_array_equal(gray, [[0, 76], [150, 29]])


def test_reading_png_never_imports_simpleitk(samples_root):
    # the GPU image has no SimpleITK: PNG-only work (training on the PNG copy) must not need it
    png = next(Path(samples_root).rglob("*_gt.png"))
    code = ("import sys; from echoseg.data.readers import read_image; "
            f"a, s = read_image({str(png)!r}); "
            "assert 'SimpleITK' not in sys.modules, 'imported'; print(a.shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(224, 224)"


def test_python_dash_m_echoseg_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "echoseg", "models", "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["lightweight"]["params"] == 1_979_828
