"""Hostile image files: sizes from headers, decompression bombs, non-finite pixels, short
payloads, empty volumes, palette images and FIFOs. Each gives one line naming the file."""

from __future__ import annotations

import csv
import gzip
import os
import zlib

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from conftest import assert_one_error, gray_image
from echoseg.data.limits import check_size
from echoseg.data.preprocess import image_to_grid
from echoseg.data.readers import read_header, read_image, read_label_map, write_image
from echoseg.errors import ConfigError, DataError
from echoseg.evaluation.grid import parse_grid

TOO_LARGE = ("image too large (50000 x 50000 pixels; at most 16384 a side, "
             "set ECHOSEG_MAX_SIDE to change)")


def predict(cli, model, *inputs, out):
    return cli("predict", model, *inputs, "--out", out, "--device", "cpu", "--quiet")


def csv_rows(out) -> list[dict]:
    with open(out / "predictions.csv", newline="") as f:
        return list(csv.DictReader(f))


def good_pngs(folder, names=("a.png", "c.png")):
    for seed, name in enumerate(names):
        write_image(folder / name, gray_image(seed=seed))


# --- sizes declared by headers ------------------------------------------------------------

def test_png_declaring_a_huge_size_is_skipped_in_a_folder_run(cli, tiny_model, hostile,
                                                               tmp_path):
    good_pngs(tmp_path / "in")
    bomb = hostile.png("in/b.png", 50000, 50000)
    assert bomb.stat().st_size < 400
    out = tmp_path / "out"
    result = predict(cli, tiny_model, tmp_path / "in", out=out)
    line = assert_one_error(result, bomb, rc=1)
    assert line == f"echoseg: error: {bomb}: {TOO_LARGE}"
    assert (out / "a_seg.png").is_file() and (out / "c_seg.png").is_file()
    assert not list(out.glob("b_*"))
    assert [r["output"] for r in csv_rows(out)] == ["a_seg.png", "c_seg.png"]


def test_png_past_pils_bomb_limit_is_a_problem_for_info(cli, hostile, tmp_path, monkeypatch):
    # 225 Mpx: PIL raised DecompressionBombError; with a lower side limit echoseg refuses first
    monkeypatch.setenv("ECHOSEG_MAX_SIDE", "8192")
    for name in ("a", "b"):
        write_image(tmp_path / "data" / f"{name}.png", gray_image())
        write_image(tmp_path / "data" / f"{name}_gt.png", np.zeros((50, 40), np.uint8))
    bomb = hostile.png("data/b.png", 15000, 15000)
    result = cli("info", tmp_path / "data")
    assert result.rc == 2
    assert f"  {bomb}: image too large (15000 x 15000 pixels; at most 8192 a side" in result.out
    assert "Images       1" in result.out


def test_pil_bomb_warning_is_never_printed(cli, tiny_model, hostile, tmp_path, monkeypatch):
    monkeypatch.setenv("ECHOSEG_MAX_SIDE", "4096")
    good_pngs(tmp_path / "in", ["a.png"])
    bomb = hostile.png("in/b.png", 10000, 10000)  # 100 Mpx: PIL's DecompressionBombWarning
    result = predict(cli, tiny_model, tmp_path / "in", out=tmp_path / "out")
    assert_one_error(result, bomb, "image too large (10000 x 10000 pixels", rc=1)
    assert "exceeds limit" not in result.err and "DOS attack" not in result.err


def test_pils_own_bomb_error_becomes_one_line(tmp_path, monkeypatch):
    # should PIL's process-wide limit be set again by other code, its error is still one line
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    path = tmp_path / "x.png"
    write_image(path, gray_image((50, 40)))
    with pytest.raises(DataError) as err:
        read_image(path)
    assert str(err.value).startswith(f"{path}: cannot read image (Image size (2000 pixels)")


def test_compressed_metaimage_declaring_a_huge_size(cli, tiny_model, hostile, tmp_path):
    # the reported case: 1 KB on disk, 2.5 GB decoded
    bomb = hostile.metaimage("in/bomb.mhd", (50000, 50000), payload=b"\0" * 100_000)
    assert bomb.stat().st_size + bomb.with_suffix(".zraw").stat().st_size < 1024
    good_pngs(tmp_path / "in", ["a.png"])
    out = tmp_path / "out"
    result = predict(cli, tiny_model, bomb, tmp_path / "in" / "a.png", out=out)
    assert assert_one_error(result, rc=1) == f"echoseg: error: {bomb}: {TOO_LARGE}"
    assert sorted(p.name for p in out.iterdir()) == ["a_overlay.png", "a_seg.png",
                                                     "predictions.csv"]
    with pytest.raises(DataError, match="image too large"):
        read_header(bomb)


def test_huge_metaimage_is_a_problem_for_info(cli, hostile, tmp_path):
    write_image(tmp_path / "data" / "a.png", gray_image())
    write_image(tmp_path / "data" / "a_gt.png", np.zeros((50, 40), np.uint8))
    bomb = hostile.metaimage("data/b.mhd", (50000, 50000))
    write_image(tmp_path / "data" / "b_gt.png", np.zeros((50, 40), np.uint8))
    result = cli("info", tmp_path / "data")
    assert result.rc == 2 and f"  {bomb}: {TOO_LARGE}" in result.out


@pytest.mark.parametrize("name", ["seq.nii.gz", "seq.nii", "seq.mhd"])
def test_too_many_frames(hostile, name):
    size = (4, 4, 3000)
    if name.endswith(".mhd"):
        path = hostile.metaimage(name, size, payload=bytes(48000), compressed=False)
    else:
        path = hostile.nifti(name, size)
    message = (f"{path}: too many frames (3000; at most 2048, set ECHOSEG_MAX_FRAMES to "
               "change)")
    for read in (read_image, read_header):
        with pytest.raises(DataError) as err:
            read(path)
        assert str(err.value) == message


def test_limits_from_the_environment(cli, tiny_model, tmp_path, monkeypatch):
    good_pngs(tmp_path / "in", ["a.png"])
    write_image(tmp_path / "in" / "wide.png", gray_image((20, 60)))
    monkeypatch.setenv("ECHOSEG_MAX_SIDE", "50")
    result = predict(cli, tiny_model, tmp_path / "in", out=tmp_path / "out")
    assert_one_error(result, tmp_path / "in" / "wide.png",
                     "image too large (20 x 60 pixels; at most 50 a side", rc=1)
    monkeypatch.setenv("ECHOSEG_MAX_SIDE", "lots")
    with pytest.raises(ConfigError, match="ECHOSEG_MAX_SIDE must be a whole number >= 1, "
                       "got 'lots'"):
        read_image(tmp_path / "in" / "a.png")
    monkeypatch.setenv("ECHOSEG_MAX_SIDE", "64")
    monkeypatch.setenv("ECHOSEG_MAX_PIXELS", "1000")
    with pytest.raises(DataError, match=r"image too large \(1 frames of 50 x 40 pixels; at most "
                       "1000 pixels in all, set ECHOSEG_MAX_PIXELS"):
        read_image(tmp_path / "in" / "a.png")


def test_check_size_for_other_readers():
    check_size("v.avi", 600, 800, 2048)
    with pytest.raises(DataError, match=r"^v\.avi: too many frames \(2049;"):
        check_size("v.avi", 600, 800, 2049)
    with pytest.raises(DataError, match=r"^v\.dcm: cannot read image \(empty: shape \(0, 60"):
        check_size("v.dcm", 600, 800, 0)


def test_grid_is_bounded_by_the_side_limit(cli, tiny_model, samples_root, monkeypatch):
    with pytest.raises(ConfigError, match="--grid must be at most 16384 pixels, got 100000"):
        parse_grid("100000")
    assert parse_grid("16384") == 16384
    monkeypatch.setenv("ECHOSEG_MAX_SIDE", "512")
    result = cli("evaluate", tiny_model, "--data", samples_root, "--grid", "1024",
                 "--device", "cpu")
    line = assert_one_error(result, "--grid must be at most 512 pixels, got 1024")
    assert line.endswith("(set ECHOSEG_MAX_SIDE to change)")


# --- non-finite pixels ----------------------------------------------------------------------

def float_image(seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(100.0, 30.0, (50, 40)).astype(np.float32)


def test_non_finite_pixels_are_set_to_the_minimum_and_noted(cli, tiny_model, tmp_path):
    clean = float_image()
    clean[10, 10] = clean[30, 20] = clean.min()
    dirty = clean.copy()
    dirty[10, 10], dirty[30, 20] = np.nan, np.inf
    write_image(tmp_path / "in" / "clean.mha", clean)
    write_image(tmp_path / "in" / "dirty.mha", dirty)
    out = tmp_path / "out"
    result = predict(cli, tiny_model, tmp_path / "in", out=out)
    assert result.rc == 0 and result.errors == []
    clean_labels = read_label_map(out / "clean_seg.mha")[0]
    assert clean_labels.any()
    np.testing.assert_array_equal(read_label_map(out / "dirty_seg.mha")[0], clean_labels)
    notes = {r["output"]: r["note"] for r in csv_rows(out)}
    assert notes == {"clean_seg.mha": "", "dirty_seg.mha": "2 non-finite pixels set to the "
                     "image minimum"}


def test_the_same_rule_for_training_and_evaluation():
    clean = float_image()
    clean[5, 7] = clean.min()
    dirty = clean.copy()
    dirty[5, 7] = -np.inf
    np.testing.assert_array_equal(image_to_grid(dirty, 32), image_to_grid(clean, 32))
    with pytest.raises(ValueError, match="no finite pixel values"):
        image_to_grid(np.full((4, 4), np.nan, np.float32), 8)


def test_image_without_a_finite_pixel_is_refused(cli, tiny_model, tmp_path):
    good_pngs(tmp_path / "in", ["a.png"])
    bad = tmp_path / "in" / "nan.mha"
    write_image(bad, np.full((50, 40), np.nan, np.float32))
    result = predict(cli, tiny_model, tmp_path / "in", out=tmp_path / "out")
    line = assert_one_error(result, rc=1)
    assert line == f"echoseg: error: {bad}: cannot read image (no finite pixel values)"


# --- payloads shorter than their headers, empty volumes --------------------------------------

def test_nifti_gz_with_a_short_payload(cli, tiny_model, tmp_path):
    path = tmp_path / "in" / "seq.nii.gz"
    write_image(path, np.stack([gray_image(seed=s) for s in range(5)]))
    payload = gzip.decompress(path.read_bytes())
    assert len(payload) == 352 + 5 * 50 * 40
    path.write_bytes(gzip.compress(payload[:-4000]))  # a whole gzip stream, 2 frames short
    good_pngs(tmp_path / "in", ["a.png"])
    out = tmp_path / "out"
    result = predict(cli, tiny_model, tmp_path / "in", out=out)
    line = assert_one_error(result, rc=1)
    assert line == (f"echoseg: error: {path}: cannot read image "
                    "(truncated data (6352 of 10352 bytes))")
    assert not list(out.glob("seq*"))


def test_compressed_metaimage_with_short_data(hostile):
    short = hostile.metaimage("short.mhd", (40, 50, 5), payload=bytes(6000))
    with pytest.raises(DataError) as err:
        read_image(short)
    assert str(err.value) == f"{short}: cannot read image (truncated data (6000 of 10000 bytes))"
    read_header(short)  # the header alone is fine: no decompression there
    zraw = short.with_suffix(".zraw")
    zraw.write_bytes(zraw.read_bytes()[:-10])
    with pytest.raises(DataError) as err:
        read_header(short)
    size = zraw.stat().st_size
    assert str(err.value) == (f"{short}: cannot read image (compressed data file short.zraw is "
                              f"truncated ({size} of {size + 10} bytes))")


def test_local_compressed_metaimage_with_short_data(tmp_path):
    path = tmp_path / "x.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((5, 50, 40), np.uint8)), str(path),
                    useCompression=True)
    data = path.read_bytes()
    at = data.index(b"ElementDataFile = LOCAL\n") + len(b"ElementDataFile = LOCAL\n")
    short = zlib.compress(bytes(9000))
    head = data[:at].replace(b"CompressedDataSize = ",
                             b"CompressedDataSize = %d\nOldSize = " % len(short))
    path.write_bytes(head + short)
    with pytest.raises(DataError) as err:
        read_image(path)
    assert str(err.value) == f"{path}: cannot read image (truncated data (9000 of 10000 bytes))"


@pytest.mark.parametrize("name", ["zero.nii.gz", "zero.nii", "zero.mhd"])
def test_volume_with_zero_frames_is_refused(cli, tiny_model, hostile, tmp_path, name):
    if name.endswith(".mhd"):
        empty = hostile.metaimage(f"in/{name}", (40, 50, 0), payload=b"")
    else:
        empty = hostile.nifti(f"in/{name}", (40, 50, 0))
    good_pngs(tmp_path / "in", ["a.png"])
    result = predict(cli, tiny_model, tmp_path / "in", out=tmp_path / "out")
    line = assert_one_error(result, rc=1)
    assert line == f"echoseg: error: {empty}: cannot read image (empty: shape (0, 50, 40))"
    assert [r["output"] for r in csv_rows(tmp_path / "out")] == ["a_seg.png"]


# --- palette images ---------------------------------------------------------------------------

def test_palette_image_is_segmented_from_the_gray_it_displays(cli, tiny_model, tmp_path):
    indices = gray_image(seed=3)
    palette = Image.fromarray(indices, mode="P")
    palette.putpalette([v for i in range(256) for v in (255 - i,) * 3])  # a negative
    write_image(tmp_path / "in" / "gray.png", 255 - indices)
    palette.save(tmp_path / "in" / "palette.png")
    np.testing.assert_array_equal(read_image(tmp_path / "in" / "palette.png")[0], 255 - indices)
    out = tmp_path / "out"
    assert predict(cli, tiny_model, tmp_path / "in", out=out).rc == 0
    np.testing.assert_array_equal(read_label_map(out / "palette_seg.png")[0],
                                  read_label_map(out / "gray_seg.png")[0])


def test_palette_label_map_of_a_dataset_keeps_its_indices(cli, tmp_path):
    labels = np.zeros((50, 40), np.uint8)
    labels[10:30, 10:20], labels[30:40, 10:20] = 1, 3
    write_image(tmp_path / "data" / "a.png", gray_image())
    palette = Image.fromarray(labels, mode="P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    palette.save(tmp_path / "data" / "a_gt.png")
    result = cli("info", tmp_path / "data")
    assert result.rc == 0 and "Labels       0, 1, 3" in result.out


# --- FIFOs and other non-regular files ---------------------------------------------------------

def test_fifo_is_never_opened(hostile, deadline):
    fifo = hostile.fifo("x.png")
    for read in (read_image, read_header, read_label_map):
        with pytest.raises(DataError) as err:
            read(fifo)
        assert str(err.value) == f"{fifo}: cannot read image (not a regular file)"


def test_fifo_in_a_dataset_is_one_problem(cli, hostile, tmp_path, deadline):
    write_image(tmp_path / "data" / "a.png", gray_image())
    write_image(tmp_path / "data" / "a_gt.png", np.zeros((50, 40), np.uint8))
    fifo = hostile.fifo("data/b.png")
    write_image(tmp_path / "data" / "b_gt.png", np.zeros((50, 40), np.uint8))
    result = cli("info", tmp_path / "data")
    assert result.rc == 2
    assert f"  {fifo}: cannot read image (not a regular file)" in result.out


def test_fifo_as_camus_info_or_metaimage_data(cli, hostile, camus2019, deadline):
    patient = camus2019.patients_dir / "patient0001"
    info = patient / "Info_2CH.cfg"
    info.unlink()
    hostile.fifo(str(info.relative_to(hostile.root)))
    raw = patient / "patient0001_4CH_ED.raw"
    raw.unlink()
    hostile.fifo(str(raw.relative_to(hostile.root)))
    result = cli("info", camus2019.root)
    assert result.rc == 2
    assert f"  {info}: cannot read Info cfg (not a regular file)" in result.out
    assert (f"  {patient / 'patient0001_4CH_ED.mhd'}: cannot read image (data file "
            "patient0001_4CH_ED.raw is not a regular file)") in result.out


# --- file names and extreme values --------------------------------------------------------

def test_nifti_under_a_non_utf8_name_is_one_line(cli, tiny_model, tmp_path):
    """SimpleITK aborts the whole process on such a name: the file is refused before it."""
    folder = tmp_path / "in"
    good_pngs(folder, names=("a.png",))
    write_image(folder / "b.nii.gz", gray_image())
    os.rename(bytes(folder / "b.nii.gz"), bytes(folder) + b"/caf\xe9.nii.gz")
    result = predict(cli, tiny_model, folder, out=tmp_path / "out")
    line = assert_one_error(result, "caf", rc=1)
    assert line.endswith("not UTF-8; rename the file")
    assert [r["output"] for r in csv_rows(tmp_path / "out")] == ["a_seg.png"]


def test_values_spanning_the_float64_range_scale_without_overflow():
    image = np.array([[-1e308, 0.0], [1e308, 1e308]])
    with np.errstate(all="raise"):
        grid = image_to_grid(image, size=2)
    assert grid.tolist() == [[0.0, 0.5], [1.0, 1.0]]
