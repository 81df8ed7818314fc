"""`echoseg compare` and `echoseg evaluate` on broken evaluations and broken label maps.

Each broken per_image.csv, summary.json or label map gives exit code 2, one line naming the
file (and the line and column, or the image), and no output folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from conftest import assert_one_error, snapshot
from echoseg.evaluation import EvalItem, evaluate_predictions, summary_markdown
from echoseg.evaluation.writers import write_evaluation


def _labels() -> np.ndarray:
    """A 32x32 label map: a 5x5 LV square and a 4x4 MYO square, no LA."""
    labels = np.zeros((32, 32), np.uint8)
    labels[5:10, 5:10] = 1
    labels[20:24, 5:9] = 2
    return labels


def write_evaluation_folder(folder: Path, shift: int) -> Path:
    """An evaluation of 6 images (img0..img5) whose predictions are the ground truth moved
    ``shift`` rows down (shift 2: LV Dice 2*15/50 = 0.6, Hausdorff 2 px), as `echoseg evaluate
    --out` writes it."""
    gt = _labels()
    items = [EvalItem(f"img{i}", f"p{i}", "4CH", "ED", np.roll(gt, shift, axis=0), gt)
             for i in range(6)]
    evaluation = evaluate_predictions(items)
    write_evaluation(folder, evaluation.rows, evaluation.summary,
                     summary_markdown(evaluation.summary))
    return folder


def _csv_lines(folder: Path) -> list[str]:
    return (folder / "per_image.csv").read_text().splitlines()


def _set_cell(lines: list[str], line: int, column: str, value: str) -> list[str]:
    """``lines`` with the cell of ``column`` on line ``line`` (1-based, as an editor counts)
    replaced by ``value``."""
    header = lines[0].split(",")
    cells = lines[line - 1].split(",")
    cells[header.index(column)] = value
    return [*lines[:line - 1], ",".join(cells), *lines[line:]]


def _drop_column(lines: list[str], column: str) -> list[str]:
    index = lines[0].split(",").index(column)
    return [",".join(c for i, c in enumerate(line.split(",")) if i != index) for line in lines]


# (what is broken, how to break the lines of a good per_image.csv or its bytes, the problem)
BROKEN_CSV = [
    ("inf distance", lambda ls: _set_cell(ls, 3, "hd_LV", "inf"),
     "line 3, column hd_LV: 'inf' is not a finite number (an undefined value is nan)"),
    ("-inf Dice", lambda ls: _set_cell(ls, 2, "dice_LA", "-inf"),
     "line 2, column dice_LA: '-inf' is not a finite number (an undefined value is nan)"),
    ("text in a number column", lambda ls: _set_cell(ls, 4, "dice_MYO", "good"),
     "line 4, column dice_MYO: 'good' is not a number"),
    ("empty number", lambda ls: _set_cell(ls, 2, "hd_LA", ""),
     "line 2, column hd_LA: '' is not a number"),
    ("Dice above 1", lambda ls: _set_cell(ls, 2, "dice_LV", "1.5"),
     "line 2, column dice_LV: 1.5 is out of range (a Dice is in 0..1)"),
    ("negative distance", lambda ls: _set_cell(ls, 5, "hd_MYO", "-2"),
     "line 5, column hd_MYO: -2 is out of range (a distance is >= 0)"),
    ("flag not 0/1", lambda ls: _set_cell(ls, 2, "anatomical_outlier", "2"),
     "line 2, column anatomical_outlier: '2' is not a flag (0 or 1)"),
    ("empty id", lambda ls: _set_cell(ls, 3, "id", ""), "line 3: empty id"),
    ("no hd_LA column", lambda ls: _drop_column(ls, "hd_LA"),
     "not a per_image.csv (no column hd_LA)"),
    ("no id column", lambda ls: _drop_column(ls, "id"), "not a per_image.csv (no column id)"),
    ("short row", lambda ls: [*ls[:2], ",".join(ls[2].split(",")[:5]), *ls[3:]],
     "line 3 has 5 fields, the header 26"),  # 4 ids, 3+3 metrics, outlier, 12 criteria, 3 HD95
    ("header only", lambda ls: ls[:1], "no image rows (only a header)"),
    ("empty file", lambda ls: [], "empty file (expected an evaluation's per_image.csv)"),
    ("binary", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",
     "not a UTF-8 text file (expected an evaluation's per_image.csv)"),
    ("Latin-1 text", "id,dice_LV\ncaf\xe9,1\n".encode("latin-1"),
     "not a UTF-8 text file (expected an evaluation's per_image.csv)"),
]


@pytest.fixture
def evaluations(tmp_path) -> tuple[Path, Path]:
    """Two good evaluation folders of the same 6 images on the native grid (Hausdorff in px)."""
    return (write_evaluation_folder(tmp_path / "A", shift=0),
            write_evaluation_folder(tmp_path / "B", shift=2))


@pytest.mark.parametrize(("what", "breaking", "problem"), BROKEN_CSV,
                         ids=[case[0] for case in BROKEN_CSV])
def test_a_broken_per_image_csv_is_one_line(what, breaking, problem, evaluations, tmp_path,
                                            cli):
    a, b = evaluations
    table = b / "per_image.csv"
    if isinstance(breaking, bytes):
        table.write_bytes(breaking)
    else:
        lines = breaking(_csv_lines(b))
        table.write_text("".join(f"{line}\n" for line in lines))
    before = snapshot_both(a, b)
    out = tmp_path / "cmp"
    result = cli("compare", a, b, "--out", out)
    line = assert_one_error_line(result)
    assert line == f"echoseg: error: {table}: {problem}"
    assert not out.exists() and snapshot_both(a, b) == before


def test_the_csv_reader_keeps_good_values(evaluations):
    from echoseg.evaluation.writers import read_per_image_csv

    rows = read_per_image_csv(evaluations[1] / "per_image.csv")
    assert [r["id"] for r in rows] == [f"img{i}" for i in range(6)]
    assert rows[0]["dice_LV"] == pytest.approx(0.6) and rows[0]["hd_LV"] == 2.0
    assert np.isnan(rows[0]["hd_LA"])  # LA absent from both: undefined, written as nan


def _summary(folder: Path, **changes) -> None:
    path = folder / "summary.json"
    summary = json.loads(path.read_text())
    summary.update(changes)
    path.write_text(json.dumps(summary))


@pytest.mark.parametrize(
    ("change_b", "problem"),
    [({"grid": 256}, "{b}: scored on grid 256 (Hausdorff in px) but {a} on grid native "
      "(Hausdorff in px)"),
     ({"hausdorff_unit": "mm"}, "{b}: scored on grid native (Hausdorff in mm) but {a} on grid "
      "native (Hausdorff in px)")],
    ids=["grid", "unit"])
def test_evaluations_on_different_grids_are_refused(change_b, problem, evaluations, tmp_path,
                                                    cli):
    a, b = evaluations
    _summary(b, **change_b)
    out = tmp_path / "cmp"
    result = cli("compare", a, b, "--out", out)
    line = assert_one_error_line(result)
    assert line == ("echoseg: error: " + problem.format(a=a, b=b) + "; compare needs "
                    "evaluations on the same grid: run evaluate with the same --grid")
    assert not out.exists()


@pytest.mark.parametrize(
    ("summary", "problem"),
    [(None, "no such file (compare needs each evaluation's summary.json to check that all were "
      "scored on the same grid)"),
     (b"{not json", "not an evaluation's summary.json (Expecting property name enclosed in "
      "double quotes: line 1 column 2 (char 1))"),
     (b"\xff\xfe", "not an evaluation's summary.json ('utf-8' codec can't decode byte 0xff in "
      "position 0: invalid start byte)"),
     (b'{"n_images": 6}', "not an evaluation's summary.json (no 'grid' and 'hausdorff_unit')"),
     (b"[1, 2]", "not an evaluation's summary.json (no 'grid' and 'hausdorff_unit')")],
    ids=["missing", "not JSON", "binary", "no grid", "a list"])
def test_an_unusable_summary_json_is_refused(summary, problem, evaluations, cli):
    a, b = evaluations
    path = b / "summary.json"
    if summary is None:
        path.unlink()
    else:
        path.write_bytes(summary)
    result = cli("compare", a, b, "--json")
    assert assert_one_error_line(result) == f"echoseg: error: {path}: {problem}"
    assert result.out == ""


def test_evaluations_on_one_grid_are_compared(evaluations, tmp_path, cli):
    a, b = evaluations
    for folder in (a, b):
        _summary(folder, grid=256)
    result = cli("compare", a, b, "--json")
    assert result.rc == 0, result.err
    report = json.loads(result.out)
    assert (report["grid"], report["hausdorff_unit"]) == (256, "px")
    dice_lv = next(t for t in report["tests"] if (t["metric"], t["structure"]) == ("dice", "LV"))
    assert dice_lv["n"] == 6 and dice_lv["mean_difference"] == pytest.approx(0.4)
    result = cli("compare", a, b)
    assert "paired by image id, scored on grid 256); Hausdorff (HD) in px." in result.out


# --- evaluate: label maps with values outside 0..3 name the file and the image -------------

VAL_ID = "patient0230_2CH_ED"  # one of the 16 validation images of tests/data/camus224


@pytest.fixture
def perfect_predictions(samples_root, tmp_path) -> Path:
    """Copies of the 16 validation ground truths as predictions (``<id>_pred.png``)."""
    folder = tmp_path / "pred"
    folder.mkdir()
    for patient in json.loads((samples_root / "splits.json").read_text())["val"]:
        for gt in (samples_root / patient).glob("*_gt.png"):
            shutil.copy(gt, folder / gt.name.replace("_gt.png", "_pred.png"))
    return folder


@pytest.mark.parametrize(
    ("labels", "problem"),
    [(np.full((224, 224), 7, np.uint8), "prediction has label values outside 0..3: 7"),
     (np.arange(224 * 224).reshape(224, 224) % 6, "prediction has label values outside 0..3: 4, 5"),
     (np.full((224, 224), 1.0, np.float32), "prediction must hold integer labels, got float32")],
    ids=["7", "4 and 5", "float"])
def test_evaluate_names_the_prediction_file(labels, problem, perfect_predictions, samples_root,
                                            tmp_path, cli):
    bad = perfect_predictions / f"{VAL_ID}_pred.png"
    if labels.dtype == np.float32:
        bad.unlink()
        bad = perfect_predictions / f"{VAL_ID}.nii.gz"
        sitk.WriteImage(sitk.GetImageFromArray(labels), str(bad))  # another tool's float map
    else:
        Image.fromarray(labels.astype(np.uint8)).save(bad)
    out = tmp_path / "ev"
    result = cli("evaluate", "--data", samples_root, "--split", "val", "--pred",
                 perfect_predictions, "--out", out)
    assert assert_one_error_line(result) == f"echoseg: error: {bad}: image {VAL_ID}: {problem}"
    assert not out.exists()


def test_evaluate_names_the_ground_truth_file(perfect_predictions, samples_root, tmp_path, cli):
    data = tmp_path / "data"
    shutil.copytree(samples_root, data)
    gt = data / "patient0230" / f"{VAL_ID}_gt.png"
    labels = np.asarray(Image.open(gt)).copy()
    labels[:3, :3] = 9
    Image.fromarray(labels).save(gt)
    out = tmp_path / "ev"
    result = cli("evaluate", "--data", data, "--split", "val", "--pred", perfect_predictions,
                 "--out", out)
    line = assert_one_error_line(result)
    assert line == (f"echoseg: error: {gt}: image {VAL_ID}: ground truth has label values "
                    "outside 0..3: 9")
    assert not out.exists()


def assert_one_error_line(result) -> str:
    """Exit code 2 and nothing on stderr but one error line; returns it."""
    line = assert_one_error(result)
    assert result.err.splitlines() == [line], result.err
    return line


def snapshot_both(*folders: Path) -> list[dict[str, str]]:
    """The snapshot of each folder."""
    return [snapshot(folder) for folder in folders]
