"""`echoseg evaluate --pred` and `echoseg compare` end to end on the bundled CAMUS samples."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from echoseg.cli import main
from echoseg.data.readers import read_image, write_label_map

DATA = Path(__file__).parent / "data" / "camus224"
VAL = ["patient0200", "patient0206", "patient0230", "patient0232"]


def val_ground_truths():
    return sorted(p for patient in VAL for p in (DATA / patient).glob("*_gt.png"))


@pytest.fixture(scope="module")
def preds(tmp_path_factory):
    """Three prediction folders for the 16 val images: perfect (PNG, <id>_pred.png in a
    subfolder), LV shifted 2 px down (NIfTI, <id>.nii.gz) and shifted 4 px down (PNG)."""
    root = tmp_path_factory.mktemp("preds")
    for gt_path in val_ground_truths():
        sample_id = gt_path.name[: -len("_gt.png")]
        gt, _ = read_image(gt_path)
        nested = root / "perfect" / "fold_0" / f"{sample_id}_pred.png"
        nested.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(gt_path, nested)
        write_label_map(root / "shift2" / f"{sample_id}.nii.gz", np.roll(gt, 2, axis=0))
        write_label_map(root / "shift4" / f"{sample_id}.png", np.roll(gt, 4, axis=0))
    return root


@pytest.fixture(scope="module")
def evaluations(preds, tmp_path_factory):
    out = tmp_path_factory.mktemp("evals")
    for name in ("perfect", "shift2", "shift4"):
        code = main(["evaluate", "--data", str(DATA), "--split", "val", "--pred",
                     str(preds / name), "--out", str(out / name)])
        assert code == 0
    return out


def test_evaluate_writes_the_design_files(evaluations, capsys):
    files = sorted(p.name for p in (evaluations / "perfect").iterdir())
    assert files == ["per_image.csv", "summary.json", "summary.md"]
    summary = json.loads((evaluations / "perfect" / "summary.json").read_text())
    assert summary["n_images"] == 16 and summary["dice"] == {"LV": 1.0, "MYO": 1.0, "LA": 1.0}
    assert summary["hausdorff"] == {"LV": 0.0, "MYO": 0.0, "LA": 0.0}
    assert summary["postprocess"] == "none" and summary["grid"] == "native"
    assert summary["hausdorff_unit"] == "px"  # PNG: spacing unknown
    # 6 val ground truths are known MYO-LA frontier outliers (see test_metrics_anatomical)
    assert summary["anatomical_outliers"] == 6
    assert summary["anatomical_failures"]["frontier_ratio_myo_la"] == 6
    shifted = json.loads((evaluations / "shift2" / "summary.json").read_text())
    assert shifted["hausdorff"]["LV"] == pytest.approx(2.0)  # every boundary moved 2 px
    lines = (evaluations / "shift2" / "per_image.csv").read_text().splitlines()
    assert len(lines) == 17 and lines[0].startswith("id,patient,view,phase,dice_LV")


def test_evaluate_json_prints_one_object(preds, capsys):
    code = main(["evaluate", "--data", str(DATA), "--split", "val", "--pred",
                 str(preds / "shift4"), "--postprocess", "cca+fill", "--grid", "model", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["grid"] == 256 and summary["postprocess"] == "cca+fill"
    assert 0.8 < summary["dice"]["LV"] < 1.0


def test_evaluate_prints_a_markdown_table(preds, capsys):
    assert main(["evaluate", "--data", str(DATA), "--split", "val", "--pred",
                 str(preds / "perfect")]) == 0
    out = capsys.readouterr().out
    assert "| LV | 1.000 ± 0.000 | 0.00 ± 0.00 |" in out and "Anatomical outliers:" in out


def test_evaluate_worst_figures(preds, tmp_path):
    out = tmp_path / "ev"
    assert main(["evaluate", "--data", str(DATA), "--split", "val", "--pred",
                 str(preds / "shift4"), "--out", str(out), "--worst", "2"]) == 0
    figures = sorted((out / "worst").iterdir())
    assert len(figures) == 2 and figures[0].name.startswith("01_patient")


def test_missing_predictions_fail_and_write_nothing(preds, tmp_path, capsys):
    partial = tmp_path / "partial"
    shutil.copytree(preds / "shift4", partial)
    for name in ("patient0200_2CH_ED.png", "patient0200_2CH_ES.png", "patient0232_4CH_ES.png"):
        (partial / name).unlink()
    out = tmp_path / "out"
    code = main(["evaluate", "--data", str(DATA), "--split", "val", "--pred", str(partial),
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err.count("\n") == 1
    assert "no prediction for 3 of 16 images (patient0200_2CH_ED, patient0200_2CH_ES, " \
           "patient0232_4CH_ES)" in err


def test_invalid_prediction_labels_write_nothing(preds, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(preds / "shift4", bad)
    write_label_map(bad / "patient0230_2CH_ED.png", np.zeros((224, 224), np.uint8))
    from PIL import Image

    Image.fromarray(np.full((224, 224), 7, np.uint8)).save(bad / "patient0232_4CH_ES.png")
    out = tmp_path / "out"
    code = main(["evaluate", "--data", str(DATA), "--split", "val", "--pred", str(bad), "--out",
                 str(out)])
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "patient0232_4CH_ES: prediction has label values outside 0..3: 7" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--pred", "X"], "no split named 'test' (available: train, val)"),
        (["--split", "val", "--pred", "X", "--postprocess", "blur"], "valid steps"),
        (["--split", "val", "--pred", "X", "--grid", "tiny"], "--grid"),
        (["--split", "val"], "give either MODEL or --pred"),
        (["lightweight", "--split", "val", "--pred", "X"], "give either MODEL or --pred"),
        (["--split", "val", "--pred", "X", "--worst", "2"], "--worst needs --out"),
        (["--split", "val", "--pred", "no/such/folder"], "prediction folder not found"),
    ],
)
def test_evaluate_user_errors(argv, message, preds, capsys):
    argv = [str(preds / "perfect") if a == "X" else a for a in argv]
    assert main(["evaluate", "--data", str(DATA), *argv]) == 2
    assert message in capsys.readouterr().err


def test_evaluate_model_without_inference_module(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "echoseg.inference", None)  # import fails
    assert main(["evaluate", "lightweight", "--data", str(DATA), "--split", "val"]) == 2
    assert "model inference is not available" in capsys.readouterr().err


def test_compare_two_evaluations(evaluations, tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", str(evaluations / "perfect"), str(evaluations / "shift2"), "--out",
                 str(out), "--names", "exact,shifted"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["boxplots.png", "compare.json", "report.md"]
    report = json.loads((out / "compare.json").read_text())
    assert [m["name"] for m in report["models"]] == ["exact", "shifted"]
    dice_lv = next(t for t in report["tests"] if t["metric"] == "dice" and t["structure"] == "LV")
    assert dice_lv["n"] == 16 and dice_lv["p"] < 0.001 and dice_lv["mean_difference"] > 0
    assert "exact vs shifted" in (out / "report.md").read_text()
    assert "Wilcoxon" in capsys.readouterr().out


def test_compare_each_against_the_first_as_json(evaluations, capsys):
    dirs = [str(evaluations / n) for n in ("perfect", "shift2", "shift4")]
    assert main(["compare", *dirs, "--pairs", "first", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {(t["a"], t["b"]) for t in report["tests"]} == {("perfect", "shift2"),
                                                          ("perfect", "shift4")}
    assert len(report["tests"]) == 2 * 6


def test_compare_mismatched_images(evaluations, tmp_path, capsys):
    cut = tmp_path / "cut"
    cut.mkdir()
    lines = (evaluations / "shift2" / "per_image.csv").read_text().splitlines()
    (cut / "per_image.csv").write_text("\n".join(lines[:-2]) + "\n")
    missing = sorted(line.split(",")[0] for line in lines[-2:])
    out = tmp_path / "out"
    code = main(["compare", str(evaluations / "perfect"), str(cut), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert f"cut lacks 2 of perfect's images ({missing[0]}, {missing[1]})" in err


def test_compare_user_errors(evaluations, tmp_path, capsys):
    perfect = str(evaluations / "perfect")
    assert main(["compare", perfect]) == 2
    assert main(["compare", perfect, perfect]) == 2  # same name twice
    assert main(["compare", perfect, str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "at least two" in err and "distinct" in err and "per_image.csv" in err


class FakeModel:
    """Stands in for echoseg.inference.load_model(...): predicts an empty LA."""

    name, size, postprocess_spec = "fake-net", 128, "cca"

    def __init__(self, gts):
        self.gts = iter(gts)

    def predict_batch(self, images):
        preds = []
        for _ in images:
            pred = next(self.gts).copy()
            pred[pred == 3] = 0
            preds.append(pred)
        return preds


def test_evaluate_model_path_uses_load_model(monkeypatch, tmp_path, capsys):
    import echoseg.inference

    gts = [read_image(p)[0] for p in val_ground_truths()]  # the split's order: sorted ids
    calls = {}

    def fake_load_model(name, device="cpu", postprocess=None, runtime=None, precision="fp32",
                        tta=False):
        calls.update(name=name, device=device, postprocess=postprocess, runtime=runtime,
                     precision=precision, tta=tta)
        return FakeModel(gts)

    monkeypatch.setattr(echoseg.inference, "load_model", fake_load_model)
    code = main(["evaluate", "somemodel", "--data", str(DATA), "--split", "val", "--grid",
                 "model", "--device", "cpu", "--json", "--batch-size", "5"])
    assert code == 0
    assert calls == {"name": "somemodel", "device": "cpu", "postprocess": None,
                     "runtime": "auto", "precision": "fp32", "tta": False}
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == "fake-net" and summary["postprocess"] == "cca"
    assert summary["grid"] == 128 and summary["dice"]["LA"] == 0.0
    assert summary["dice"]["LV"] == 1.0 and summary["hausdorff_nan"]["LA"] == 16


def test_evaluate_in_mm_on_a_nifti_release(camus2023, tmp_path, capsys):
    # the conftest's synthetic CAMUS 2023 release: spacing (0.308, 0.154) mm (row, col)
    pred_dir = tmp_path / "pred"
    val_ids = [i for i in camus2023.labels if i.startswith("patient0003")]
    for sample_id in val_ids:
        write_label_map(pred_dir / f"{sample_id}.png", np.roll(camus2023.labels[sample_id], 2, 0))
    assert main(["evaluate", "--data", str(camus2023.root), "--split", "val", "--pred",
                 str(pred_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_images"] == len(val_ids) == 4 and summary["hausdorff_unit"] == "mm"
    assert summary["hausdorff"]["LV"] == pytest.approx(2 * 0.308)  # 2 rows of 0.308 mm
