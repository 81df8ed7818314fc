"""`echoseg predict` end to end with a tiny random model: formats, sequences, failures."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image

from echoseg.cli import main
from echoseg.config import from_dict
from echoseg.data.readers import read_image, write_image
from echoseg.inference import loading
from echoseg.inference.bundle import save_bundled
from echoseg.inference.outputs import CSV_COLUMNS
from echoseg.models import build_model

SHAPE = (50, 40)  # native (H, W), not square and not the model's 64x64 grid
SPACING = (0.308, 0.154)  # mm (row, col)


@pytest.fixture(autouse=True)
def tiny(tmp_path, monkeypatch):
    """Bundled model "tiny": a random 3-level U-Net on a 64x64 grid."""
    torch.manual_seed(0)
    config = from_dict({"data": {"size": 64}, "model": {"encoder": [8, 8, 16], "decoder": [8, 8]}})
    save_bundled(build_model(config.model), config, tmp_path / "weights", "tiny")
    monkeypatch.setattr(loading, "WEIGHTS_DIR", tmp_path / "weights")


def image(shape=SHAPE, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def rows(out) -> list[dict]:
    with open(out / "predictions.csv", newline="") as f:
        return list(csv.DictReader(f))


def check_labels(array: np.ndarray, shape) -> None:
    assert array.shape == shape and array.dtype == np.uint8
    assert set(np.unique(array)) <= {0, 1, 2, 3}


@pytest.mark.parametrize(("name", "seg_name", "spacing"), [
    ("echo.png", "echo_seg.png", None),
    ("echo.jpg", "echo_seg.png", None),
    ("echo.tif", "echo_seg.png", None),
    ("echo.nii.gz", "echo_seg.nii.gz", SPACING),
    ("echo.nii", "echo_seg.nii", SPACING),
    ("echo.mhd", "echo_seg.mhd", SPACING),
])
def test_predict_round_trip_per_format(tmp_path, capsys, name, seg_name, spacing):
    path = tmp_path / "in" / name
    write_image(path, image(), spacing)
    out = tmp_path / "out"
    assert main(["predict", "tiny", str(path), "--out", str(out), "--batch-size", "2",
                 "--device", "cpu"]) == 0
    labels, seg_spacing = read_image(out / seg_name)
    check_labels(labels, SHAPE)
    assert seg_spacing == spacing  # NIfTI/MetaImage keep the spacing; PNG has none
    assert Image.open(out / "echo_overlay.png").mode == "RGB"
    (row,) = rows(out)
    assert tuple(row) == CSV_COLUMNS
    assert row["input"] == str(path) and row["frame"] == "0" and row["output"] == seg_name
    areas = [int(row[f"area_{s}_px"]) for s in ("LV", "MYO", "LA")]
    assert areas == [int((labels == k).sum()) for k in (1, 2, 3)]
    if spacing is None:
        assert row["area_LV_mm2"] == ""
    else:
        assert float(row["area_LV_mm2"]) == pytest.approx(areas[0] * spacing[0] * spacing[1])
    assert row["anatomically_plausible"] in ("0", "1") and float(row["seconds"]) > 0
    assert "Segmented 1 frame from 1 file" in capsys.readouterr().out
    assert not [p for p in out.rglob(".*")]  # no temporary files left behind


@pytest.mark.parametrize("ext", [".nii.gz", ".mhd"])
def test_sequence_gives_one_label_map_per_frame(tmp_path, capsys, ext):
    frames = np.stack([image(SHAPE, seed) for seed in range(3)])
    path = tmp_path / f"patient0001_4CH_half_sequence{ext}"
    write_image(path, frames, SPACING)
    out = tmp_path / "out"
    assert main(["predict", "tiny", str(path), "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")  # --quiet: nothing printed when all went well
    labels, spacing = read_image(out / f"patient0001_4CH_half_sequence_seg{ext}")
    check_labels(labels, (3, *SHAPE))
    assert spacing == SPACING
    table = rows(out)
    assert [r["frame"] for r in table] == ["0", "1", "2"]
    assert {r["output"] for r in table} == {f"patient0001_4CH_half_sequence_seg{ext}"}
    frames_dir = out / "patient0001_4CH_half_sequence_overlay"
    assert sorted(p.name for p in frames_dir.iterdir()) == [f"frame_00{t}.png" for t in range(3)]
    # anisotropic pixels: overlays stretched to square pixels (rows x2)
    assert Image.open(frames_dir / "frame_000.png").size == (40, 100)


def test_corrupt_file_is_reported_and_skipped(tmp_path, capsys):
    good = [tmp_path / "a.png", tmp_path / "c.nii.gz"]
    write_image(good[0], image())
    write_image(good[1], image(seed=1), SPACING)
    bad = tmp_path / "b.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nthis is not a PNG")
    out = tmp_path / "out"
    code = main(["predict", "tiny", str(good[0]), str(bad), str(good[1]), "--out", str(out)])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "cannot read image" in err[0]
    assert (out / "a_seg.png").is_file() and (out / "c_seg.nii.gz").is_file()
    assert not list(out.glob("b_*"))
    assert [r["input"] for r in rows(out)] == [str(good[0]), str(good[1])]


def test_nothing_processable_exits_2(tmp_path, capsys):
    out = tmp_path / "out"
    missing = tmp_path / "missing.png"
    assert main(["predict", "tiny", str(missing), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{missing}: no such file or folder" in err and "nothing to segment" in err
    assert not out.exists()
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not gzip")
    assert main(["predict", "tiny", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "nothing could be segmented" in err
    assert not (out / "predictions.csv").exists()


@pytest.mark.parametrize("args", [["--batch-size", "0"], ["--postprocess", "bogus"]])
def test_bad_arguments_exit_2(tmp_path, capsys, args):
    write_image(tmp_path / "a.png", image())
    assert main(["predict", "tiny", str(tmp_path / "a.png"), "--out", str(tmp_path / "o"),
                 *args]) == 2
    assert "echoseg: error:" in capsys.readouterr().err


def test_unknown_model_exits_2(tmp_path, capsys):
    write_image(tmp_path / "a.png", image())
    assert main(["predict", "nope", str(tmp_path / "a.png"), "--out", str(tmp_path / "o")]) == 2
    assert "nope: no such model" in capsys.readouterr().err


def test_folder_input_mirrors_folders_and_skips_label_maps(tmp_path, capsys):
    data = tmp_path / "data"
    for rel, seed in (("p1/x.png", 0), ("p2/x.png", 1), ("x.png", 2)):
        write_image(data / rel, image(seed=seed))
        write_image(data / rel.replace(".png", "_gt.png"), np.zeros(SHAPE, np.uint8))
    sitk.WriteImage(sitk.GetImageFromArray(image(seed=3)), str(data / "p1" / "y.mha"))
    other = tmp_path / "other" / "x.png"  # same stem as data/x.png
    write_image(other, image(seed=4))
    out = data / "out"  # inside the input folder: never read back as input
    (out / "stale.png").parent.mkdir(parents=True)
    write_image(out / "stale.png", image())
    assert main(["predict", "tiny", str(data), str(other), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "skipped 3 label maps" in captured.err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*_seg.*")) == [
        "p1/x_seg.png", "p1/y_seg.mha", "p2/x_seg.png", "x_2_seg.png", "x_seg.png"]
    table = rows(out)
    assert len(table) == 5
    by_input = {r["input"]: r["output"] for r in table}
    assert by_input[str(other)] == "x_2_seg.png" and by_input[str(data / "x.png")] == "x_seg.png"
    check_labels(read_image(out / "p2" / "x_seg.png")[0], SHAPE)
