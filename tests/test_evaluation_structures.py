"""Evaluation scores only the structures the dataset labels (EchoNet-Dynamic: LV only)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import test_data_echonet
from echoseg.cli import main
from echoseg.data.dataset import open_dataset
from echoseg.data.pairs import read_pair
from echoseg.data.readers import write_label_map
from echoseg.evaluation import EvalItem, evaluate_predictions, score_image, summary_markdown
from echoseg.evaluation.compare import compare_tables, comparison_markdown
from echoseg.evaluation.writers import per_image_csv, read_per_image_csv, write_evaluation
from echoseg.metrics import CRITERIA

echonet_folder = test_data_echonet.echonet_folder  # the tiny EchoNet folder fixture

PER_STRUCTURE = ("dice", "dice_std", "hausdorff", "hausdorff_std", "hausdorff_nan", "hd95",
                 "hd95_std", "hd95_nan")


def lv_only_gt() -> np.ndarray:
    """A 20x20 ground truth with only a 4x4 LV square (16 px), as EchoNet labels."""
    gt = np.zeros((20, 20), np.uint8)
    gt[4:8, 4:8] = 1
    return gt


def three_structure_pred() -> np.ndarray:
    """LV: the left half of the ground-truth square (8 px, all inside it): Dice 2*8/(16+8) =
    2/3, Hausdorff 2 px (gt boundary column 7 to pred column 5); MYO and LA squares below."""
    pred = np.zeros((20, 20), np.uint8)
    pred[4:8, 4:6] = 1
    pred[10:14, 4:8] = 2
    pred[14:18, 4:8] = 3
    return pred


def item(name: str, pred: np.ndarray, gt: np.ndarray) -> EvalItem:
    return EvalItem(name, name, "4CH", "ED", pred, gt)


def test_score_image_leaves_unlabelled_structures_and_anatomy_empty():
    row = score_image(three_structure_pred(), lv_only_gt(), structures=("LV",))
    assert row["dice_LV"] == pytest.approx(2 / 3) and row["hd_LV"] == pytest.approx(2.0)
    assert all(row[f"{m}_{s}"] is None for m in ("dice", "hd", "hd95") for s in ("MYO", "LA"))
    assert row["anatomical_outlier"] is None
    assert all(row[f"{c}_ok"] is None for c in CRITERIA)
    assert list(row) == list(score_image(lv_only_gt(), lv_only_gt()))  # same columns
    with pytest.raises(ValueError, match="structures"):
        score_image(lv_only_gt(), lv_only_gt(), structures=("RV",))


def test_lv_only_summary_by_hand():
    gt = lv_only_gt()
    ev = evaluate_predictions([item("a", three_structure_pred(), gt), item("b", gt.copy(), gt)],
                              structures=("LV",))
    s = ev.summary
    assert s["structures"] == ["LV"] and s["n_images"] == 2
    assert s["dice"] == {"LV": pytest.approx((2 / 3 + 1) / 2)}
    assert s["dice_std"]["LV"] == pytest.approx(1 / 6)
    assert s["hausdorff"] == {"LV": pytest.approx(1.0)} and s["hausdorff_nan"] == {"LV": 0}
    for key in PER_STRUCTURE:
        assert set(s[key]) == {"LV"}, key
    assert s["anatomical_outliers"] is None and s["anatomical_failures"] is None
    assert "not applicable" in s["anatomical_note"] and "LV only" in s["anatomical_note"]
    text = summary_markdown(s)
    assert "| LV | 0.833 ± 0.167 |" in text and "| MYO |" not in text and "| LA |" not in text
    assert "Anatomical outliers: not applicable" in text


def test_three_structure_scoring_is_unchanged_by_default():
    gt = lv_only_gt()
    s = evaluate_predictions([item("a", three_structure_pred(), gt)]).summary
    assert s["structures"] == ["LV", "MYO", "LA"]
    assert s["dice"] == {"LV": pytest.approx(2 / 3), "MYO": 0.0, "LA": 0.0}
    assert s["anatomical_outliers"] == 1 and "anatomical_note" not in s
    assert set(s["anatomical_failures"]) == set(CRITERIA)


def test_worst_cases_rank_by_the_scored_structures_only():
    gt = lv_only_gt()
    junk = gt.copy()
    junk[10:14, 4:8], junk[14:18, 4:8] = 2, 3  # perfect LV, MYO and LA where none is labelled
    half = three_structure_pred()
    half[half > 1] = 0  # LV Dice 2/3, nothing else
    items = [item("junk", junk, gt), item("half", half, gt)]
    assert evaluate_predictions(items, worst=1).worst[0].row["id"] == "junk"  # mean of 3: 1/3
    assert evaluate_predictions(items, worst=1, structures=["LV"]).worst[0].row["id"] == "half"


def test_per_image_csv_has_empty_cells_that_read_back_as_nan(tmp_path):
    gt = lv_only_gt()
    ev = evaluate_predictions([item("a", three_structure_pred(), gt), item("b", gt.copy(), gt)],
                              structures=("LV",))
    lines = per_image_csv(ev.rows).splitlines()
    header = lines[0].split(",")
    assert header[:11] == ["id", "patient", "view", "phase", "dice_LV", "dice_MYO", "dice_LA",
                           "hd_LV", "hd_MYO", "hd_LA", "anatomical_outlier"]
    cells = dict(zip(header, lines[1].split(","), strict=True))
    assert float(cells["dice_LV"]) == pytest.approx(2 / 3) and cells["hd_LV"] == "2.0"
    empty = [c for c in header if c.endswith(("_MYO", "_LA", "_ok")) or c == "anatomical_outlier"]
    assert all(cells[c] == "" for c in empty)
    write_evaluation(tmp_path, ev.rows, ev.summary, summary_markdown(ev.summary))
    rows = read_per_image_csv(tmp_path / "per_image.csv")
    assert rows[0]["dice_LV"] == pytest.approx(2 / 3) and math.isnan(rows[0]["dice_MYO"])
    assert math.isnan(rows[1]["anatomical_outlier"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dice"] == {"LV": pytest.approx(5 / 6)} and summary["structures"] == ["LV"]
    assert summary["anatomical_outliers"] is None
    report = compare_tables({"A": {r["id"]: r for r in rows}, "B": {r["id"]: r for r in rows}})
    assert report["structures"] == ["LV"] and {t["structure"] for t in report["tests"]} == {"LV"}
    assert report["models"][0]["anatomical_outliers"] is None
    assert "Dice MYO" not in comparison_markdown(report)


def echonet_predictions(root, pred_dir) -> dict[str, float]:
    """Predictions for the test split (one video: ED, ES) with MYO and LA added around the LV;
    ED's LV is the ground truth's, ES's loses its lower half. Returns id -> expected LV Dice."""
    dataset = open_dataset(root)
    expected = {}
    for sample in dataset.samples:
        if sample.info["Split"] != "TEST":
            continue
        _, gt = read_pair(sample)
        lv = gt == 1
        if sample.phase == "ES":
            rows = np.flatnonzero(lv.any(axis=1))
            lv = lv & (np.arange(gt.shape[0]) < (rows[0] + rows[-1]) // 2)[:, None]
        pred = np.where(lv, 1, 0).astype(np.uint8)
        pred[:8, :] = 2  # a MYO band at the top, an LA band at the bottom: no label there
        pred[-8:, :] = 3
        write_label_map(pred_dir / f"{sample.id}.png", pred)
        expected[sample.id] = 2 * float((lv & (gt == 1)).sum()) / (lv.sum() + (gt == 1).sum())
    return expected


def test_evaluate_cli_on_an_echonet_folder(echonet_folder, tmp_path, capsys):
    pred_dir, out = tmp_path / "pred", tmp_path / "eval"
    expected = echonet_predictions(echonet_folder.root, pred_dir)
    assert len(expected) == 2 and expected[f"{echonet_folder.names[2]}_ED"] == 1.0
    assert main(["evaluate", "--data", str(echonet_folder.root), "--pred", str(pred_dir),
                 "--out", str(out), "--worst", "1"]) == 0
    text = capsys.readouterr().out
    assert "| LV |" in text and "| MYO |" not in text and "not applicable" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["structures"] == ["LV"] and summary["n_images"] == 2
    assert summary["dice"] == {"LV": pytest.approx(np.mean(list(expected.values())))}
    assert set(summary["hausdorff"]) == {"LV"} and summary["anatomical_outliers"] is None
    rows = read_per_image_csv(out / "per_image.csv")
    assert {r["id"]: r["dice_LV"] for r in rows} == pytest.approx(expected)
    assert all(math.isnan(r[c]) for r in rows for c in ("dice_MYO", "hd_LA", "anatomical_outlier"))
    es = f"{echonet_folder.names[2]}_ES"
    assert [p.name for p in (out / "worst").iterdir()] == [f"01_{es}.png"]
    assert main(["evaluate", "--data", str(echonet_folder.root), "--pred", str(pred_dir),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dice"] == summary["dice"]


def test_evaluate_a_model_on_an_echonet_folder(echonet_folder, capsys):
    """The bundled CAMUS model predicts MYO and LA too; on LV-only data only LV is scored."""
    assert main(["evaluate", "lightweight", "--data", str(echonet_folder.root), "--device",
                 "cpu", "--runtime", "torch", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["structures"] == ["LV"] and set(summary["dice"]) == {"LV"}
    assert 0.0 <= summary["dice"]["LV"] <= 1.0 and summary["anatomical_outliers"] is None
    assert summary["model"] == "lightweight" and summary["n_images"] == 2
