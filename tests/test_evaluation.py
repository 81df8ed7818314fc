"""Scoring, summaries, grids and evaluation files, on hand-made label maps."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from echoseg.errors import DataError, EchosegError
from echoseg.evaluation import EvalItem, evaluate_model, evaluate_predictions, score_image
from echoseg.evaluation.grid import parse_grid, to_scoring_grid
from echoseg.evaluation.writers import read_per_image_csv, write_evaluation
from echoseg.metrics import CRITERIA

DESIGN_COLUMNS = ["id", "patient", "view", "phase", "dice_LV", "dice_MYO", "dice_LA", "hd_LV",
                  "hd_MYO", "hd_LA", "anatomical_outlier"]


def three_squares(shape=(40, 40), lv_top=5):
    """LV, MYO and LA as separate 10x10 squares (not plausible anatomy, easy arithmetic)."""
    m = np.zeros(shape, np.uint8)
    m[lv_top : lv_top + 10, 5:15] = 1
    m[5:15, 20:30] = 2
    m[25:35, 5:15] = 3
    return m


def item(i, pred, gt, spacing=None, image=None):
    return EvalItem(f"p{i}_4CH_ED", f"p{i}", "4CH", "ED", pred, gt, spacing, image)


def test_score_image_known_values_and_column_order():
    gt = three_squares()
    pred = three_squares(lv_top=8)  # LV 3 rows lower
    pred[pred == 3] = 0  # LA missing
    row = score_image(pred, gt, spacing=(0.5, 2.0))
    assert list(row)[:7] == DESIGN_COLUMNS[4:]
    assert list(row)[7:] == [f"{c}_ok" for c in CRITERIA] + ["hd95_LV", "hd95_MYO", "hd95_LA"]
    assert row["dice_LV"] == pytest.approx(0.7) and row["dice_MYO"] == 1.0
    assert row["dice_LA"] == 0.0
    assert row["hd_LV"] == pytest.approx(1.5) and row["hd_MYO"] == 0.0  # 3 rows x 0.5 mm
    assert math.isnan(row["hd_LA"]) and math.isnan(row["hd95_LA"])
    assert row["anatomical_outlier"] is True and row["components_in_la_ok"] is False


def test_evaluate_predictions_summary_by_hand():
    gt = three_squares()
    items = [item(0, gt.copy(), gt), item(1, three_squares(lv_top=8), gt)]
    ev = evaluate_predictions(items, model="m", postprocess="none")
    s = ev.summary
    assert s["n_images"] == 2 and [r["id"] for r in ev.rows] == ["p0_4CH_ED", "p1_4CH_ED"]
    assert s["dice"]["LV"] == pytest.approx(0.85) and s["dice_std"]["LV"] == pytest.approx(0.15)
    assert s["hausdorff"]["LV"] == pytest.approx(1.5) and s["hausdorff_std"]["LV"] == 1.5
    assert s["hausdorff_nan"] == {"LV": 0, "MYO": 0, "LA": 0}
    assert s["anatomical_outliers"] == 2  # three squares are no heart
    assert (s["postprocess"], s["model"], s["grid"], s["hausdorff_unit"]) == ("none", "m",
                                                                               "native", "px")
    assert set(s) >= {"n_images", "dice", "hausdorff", "anatomical_outliers", "postprocess",
                      "model", "dice_std", "hausdorff_std", "hausdorff_nan", "grid"}


def test_nan_hausdorff_is_counted_not_dropped():
    gt = three_squares()
    empty = np.zeros_like(gt)
    ev = evaluate_predictions([item(0, gt.copy(), gt), item(1, empty, gt)])
    assert ev.summary["n_images"] == 2
    assert ev.summary["hausdorff_nan"] == {"LV": 1, "MYO": 1, "LA": 1}
    assert ev.summary["hausdorff"]["LV"] == 0.0  # mean over the one defined value
    assert ev.summary["dice"]["LV"] == 0.5


def test_postprocess_is_applied_and_recorded():
    gt = three_squares()
    pred = gt.copy()
    pred[38, 38] = 1  # a stray LV pixel
    plain = evaluate_predictions([item(0, pred, gt)])
    cleaned = evaluate_predictions([item(0, pred, gt)], postprocess="cca",
                                   prior_postprocess="fill")
    assert plain.rows[0]["dice_LV"] < 1.0 and cleaned.rows[0]["dice_LV"] == 1.0
    assert cleaned.summary["postprocess"] == "fill+cca"
    with pytest.raises(EchosegError, match="valid steps"):
        evaluate_predictions([item(0, pred, gt)], postprocess="smooth")


def test_native_grid_maps_predictions_back_to_the_ground_truth():
    gt = three_squares((20, 20), lv_top=2)
    pred = np.kron(gt, np.ones((2, 2), np.uint8))  # the same map at twice the size
    ev = evaluate_predictions([item(0, pred, gt, spacing=(0.3, 0.3))])
    assert ev.rows[0]["dice_LV"] == 1.0 and ev.summary["hausdorff_unit"] == "mm"


def test_fixed_grid_rescales_spacing():
    gt = np.zeros((20, 10), np.uint8)
    gt[4:10, 2:8] = 1
    pred = np.roll(gt, 2, axis=0)  # 2 rows of 1.0 mm
    native = evaluate_predictions([item(0, pred, gt, spacing=(1.0, 1.0))])
    fixed = evaluate_predictions([item(0, pred, gt, spacing=(1.0, 1.0))], grid=40)
    assert native.rows[0]["hd_LV"] == pytest.approx(2.0)
    assert fixed.rows[0]["hd_LV"] == pytest.approx(2.0)  # 4 rows of 0.5 mm on the 40x40 grid
    assert fixed.summary["grid"] == 40
    p, g, sp = to_scoring_grid(pred, gt, (1.0, 1.0), 40)
    assert p.shape == g.shape == (40, 40) and sp == (0.5, 0.25)


def test_parse_grid():
    assert parse_grid("native") == "native" and parse_grid("MODEL") == "model"
    assert parse_grid("256") == 256
    for bad in ("huge", "4", "-1"):
        with pytest.raises(EchosegError, match="--grid"):
            parse_grid(bad)


def test_worst_cases_are_the_lowest_mean_dice_first():
    gt = three_squares()
    items = [item(i, three_squares(lv_top=5 + shift), gt) for i, shift in enumerate([0, 4, 2, 6])]
    ev = evaluate_predictions(items, worst=2)
    assert [c.row["id"] for c in ev.worst] == ["p3_4CH_ED", "p1_4CH_ED"]
    assert ev.worst[0].pred.shape == gt.shape


@pytest.mark.parametrize(
    ("pred", "message"),
    [(np.full((40, 40), 5, np.uint8), "outside 0..3: 5"),
     (np.zeros((40, 40), np.float32), "integer labels"),
     (np.zeros((2, 40, 40), np.uint8), "2D label map")],
)
def test_invalid_predictions_raise_data_errors(pred, message):
    gt = three_squares()
    with pytest.raises(DataError, match=message):
        evaluate_predictions([item(0, gt.copy(), gt), item(1, pred, gt)])


def test_duplicate_ids_and_no_items_are_errors():
    gt = three_squares()
    with pytest.raises(DataError, match="twice"):
        evaluate_predictions([item(0, gt, gt), item(0, gt, gt)])
    with pytest.raises(DataError, match="no images"):
        evaluate_predictions([])


class FakeSample:
    def __init__(self, i, folder: Path, gt):
        from echoseg.data.readers import write_image, write_label_map

        self.id, self.patient, self.view, self.phase = f"p{i}_2CH_ES", f"p{i}", "2CH", "ES"
        self.image_path = folder / f"{self.id}.png"
        self.label_path = folder / f"{self.id}_gt.png"
        self.spacing = None
        write_image(self.image_path, (gt * 60).astype(np.uint8))
        write_label_map(self.label_path, gt)


def test_evaluate_model_calls_the_predictor_in_batches(tmp_path):
    gts = [three_squares(lv_top=t) for t in (3, 5, 7, 9, 11)]
    samples = [FakeSample(i, tmp_path, g) for i, g in enumerate(gts)]
    calls = []

    def predict_batch(images):
        calls.append(len(images))
        return [(im // 60).astype(np.uint8) for im in images]  # undo the fake image

    ev = evaluate_model(predict_batch, samples, batch_size=2, model="fake", worst=1)
    assert calls == [2, 2, 1]
    assert ev.summary["dice"] == {"LV": 1.0, "MYO": 1.0, "LA": 1.0}
    assert ev.summary["model"] == "fake" and ev.worst[0].image is not None
    with pytest.raises(DataError, match="returned 1 label maps for 2 images"):
        evaluate_model(lambda ims: ims[:1], samples, batch_size=2)


def test_written_files(tmp_path):
    gt = three_squares()
    ev = evaluate_predictions([item(0, gt.copy(), gt), item(1, np.zeros_like(gt), gt)],
                              model="m")
    write_evaluation(tmp_path, ev.rows, ev.summary, "table\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["per_image.csv", "summary.json",
                                                          "summary.md"]
    header = (tmp_path / "per_image.csv").read_text().splitlines()[0].split(",")
    assert header[:11] == DESIGN_COLUMNS and header[11] == "holes_in_lv_ok"
    rows = read_per_image_csv(tmp_path / "per_image.csv")
    assert rows[0]["id"] == "p0_4CH_ED" and rows[0]["dice_LV"] == 1.0
    assert math.isnan(rows[1]["hd_LV"]) and rows[1]["anatomical_outlier"] == 1.0
    summary = json.loads((tmp_path / "summary.json").read_text())  # strict JSON: NaN -> null
    assert summary["hausdorff_nan"]["LV"] == 1 and summary["n_images"] == 2
