"""The calibrated quality flag: bounds learned from hand-made masks, the flag on a broken mask,
JSON files, the predictions.csv columns and K_sequence.json, and the shipped thresholds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from echoseg.cli import main
from echoseg.config import from_dict
from echoseg.data.preprocess import label_to_grid
from echoseg.data.readers import read_label_map, write_image
from echoseg.errors import EchosegError
from echoseg.inference import load_model, loading
from echoseg.inference.bundle import save_bundled
from echoseg.inference.files import find_inputs
from echoseg.inference.pipeline import FilePredictor
from echoseg.metrics import CRITERIA, anatomical_errors
from echoseg.metrics.quality import (
    RULES,
    calibrate,
    coverage_bound,
    load_thresholds,
    quality_flags,
    save_thresholds,
)
from echoseg.models import build_model
from test_clinical_sequence import filling
from test_clinical_sequence import render as beating_labels
from test_metrics_anatomical import heart

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "echoseg"
SHIPPED = PACKAGE / "weights" / "lightweight.quality.json"
SAMPLES = sorted((PACKAGE / "samples" / "camus224").glob("**/*_gt.png"))
TESTDATA = Path(__file__).parent / "data" / "camus224"
LV = 1
STEP = 80  # LabelEcho's images show label k as grey level k * STEP


def with_lv_pieces(mask: np.ndarray, extra: int) -> np.ndarray:
    """``mask`` with ``extra`` 3x3 LV islands inside the MYO wall's outer background, left of
    the heart (rows 60.., columns 40..), each its own 8-connected component."""
    out = mask.copy()
    for k in range(extra):
        out[60 + 6 * k:63 + 6 * k, 40:43] = LV
    return out


def test_every_criterion_has_a_rule():
    assert set(RULES) == set(CRITERIA)


def test_coverage_bound_is_the_inverse_empirical_cdf():
    values = np.arange(200.0)
    assert coverage_bound(values, 0.995, upper=True) == 198  # 199 of 200 are <= 198
    assert coverage_bound(values, 0.995, upper=False) == 1  # 199 of 200 are >= 1
    assert coverage_bound(values, 0.9975, upper=True) == 199  # two-sided: 0.25th / 99.75th
    assert coverage_bound(values, 1.0, upper=False) == 0
    assert coverage_bound(np.array([5.0]), 0.995, upper=True) == 5


def test_calibrated_component_bound_from_known_counts():
    base = heart()
    # 197 masks with one LV piece, 2 with two, 1 with three: 199 of 200 have <= 2 pieces
    masks = [base] * 197 + [with_lv_pieces(base, 1)] * 2 + [with_lv_pieces(base, 2)]
    assert [anatomical_errors(m)["components_in_lv"] for m in masks[-3:]] == [2, 2, 3]
    q = calibrate(masks)
    assert q.n == 200 and q.coverage == 0.995 and q.shape == (224, 224)
    assert q.bounds["components_in_lv"] == {"min": 1.0, "max": 2.0}
    assert q.flagged["components_in_lv"] == pytest.approx(0.005)
    assert q.bounds["components_in_myo"] == {"min": 1.0, "max": 1.0}
    assert q.flagged["components_in_myo"] == 0
    assert set(q.bounds["erosion_ratio_myo"]) == {"min"}  # one-sided, from below
    assert set(q.bounds["frontier_ratio_myo_la"]) == {"max"}
    assert 0.005 <= q.flagged_any <= 0.015


def test_extra_lv_piece_is_flagged_by_name():
    base = heart()
    q = calibrate([base, heart(thickness=9), heart(la_rx=24)])
    assert quality_flags(base, q) == (True, [])
    assert quality_flags(with_lv_pieces(base, 1), q) == (False, ["components_in_lv"])
    with pytest.raises(ValueError, match="224x224 grid"):
        quality_flags(base[:100], q)


def test_calibration_refuses_mixed_shapes_and_no_masks():
    with pytest.raises(ValueError, match="different shapes"):
        calibrate([heart(), heart()[:200]])
    with pytest.raises(ValueError, match="no label maps"):
        calibrate([])


def test_json_round_trip_and_broken_files(tmp_path):
    q = calibrate([heart(), heart(thickness=8)], coverage=0.9, source={"split": "train"})
    path = save_thresholds(q, tmp_path / "q.json")
    back = load_thresholds(path)
    assert back == q and back.to_dict() == json.loads(path.read_text())
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(EchosegError, match="bad.json: not valid JSON"):
        load_thresholds(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"config": {}}')
    with pytest.raises(EchosegError, match="not a quality-threshold file"):
        load_thresholds(tmp_path / "other.json")


@pytest.fixture
def tiny(tmp_path, monkeypatch) -> Path:
    """Bundled model "tiny" (random, 64x64 grid); returns its weights folder."""
    torch.manual_seed(0)
    config = from_dict({"data": {"size": 64}, "model": {"encoder": [8, 8, 16], "decoder": [8, 8]}})
    save_bundled(build_model(config.model), config, tmp_path / "weights", "tiny")
    monkeypatch.setattr(loading, "WEIGHTS_DIR", tmp_path / "weights")
    return tmp_path / "weights"


def predict_rows(tmp_path) -> list[dict]:
    image = np.random.default_rng(0).integers(0, 256, (50, 40), dtype=np.uint8)
    write_image(tmp_path / "in" / "echo.png", image)
    assert main(["predict", "tiny", str(tmp_path / "in" / "echo.png"), "--out",
                 str(tmp_path / "out"), "--device", "cpu"]) == 0
    with open(tmp_path / "out" / "predictions.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_predict_writes_quality_columns_from_json_beside_weights(tmp_path, tiny):
    save_thresholds(calibrate([label_to_grid(heart(), 64)]), tiny / "tiny.quality.json")
    assert load_model("tiny").quality.shape == (64, 64)
    (row,) = predict_rows(tmp_path)
    assert row["quality_ok"] in ("0", "1")
    failed = row["quality_failed"].split(";") if row["quality_failed"] else []
    assert set(failed) <= set(CRITERIA) and (row["quality_ok"] == "1") == (not failed)
    assert row["quality_ok"] == "0"  # a random network does not draw a heart


def test_no_quality_json_gives_empty_cells(tmp_path, tiny):
    assert load_model("tiny").quality is None
    (row,) = predict_rows(tmp_path)
    assert row["quality_ok"] == "" and row["quality_failed"] == ""


def test_quality_json_of_another_grid_is_refused(tiny):
    save_thresholds(calibrate([heart()]), tiny / "tiny.quality.json")
    with pytest.raises(EchosegError, match="224x224 grid, but the model's grid is 64x64"):
        load_model("tiny")


class LabelEcho:
    """A segmenter that reads the labels back from images drawn as ``label * STEP``."""

    runtime, size, name = "fake", 64, "fake"

    def __init__(self, quality) -> None:
        self.quality = quality

    def predict_batch(self, images, batch_size=8):
        return [np.rint(np.asarray(im, np.float32) / STEP).astype(np.uint8) for im in images]


def test_sequence_json_lists_the_flagged_frames(tmp_path):
    labels = beating_labels(filling(np.arange(51) + 5))
    quality = calibrate([label_to_grid(frame, 64) for frame in labels], coverage=1.0)
    labels[7, 100:106, 2:8] = LV  # a detached LV piece in frame 7 only
    write_image(tmp_path / "clip.nii.gz", labels * STEP, (0.5, 0.5))
    predictor = FilePredictor(LabelEcho(quality), tmp_path / "out", 8)
    predictor.run(find_inputs([tmp_path / "clip.nii.gz"]).files)
    assert not predictor.failures and not predictor.notes
    assert [t for t, r in enumerate(predictor.rows) if not r["quality_ok"]] == [7]
    assert "components_in_lv" in predictor.rows[7]["quality_failed"].split(";")
    summary = json.loads((tmp_path / "out" / "clip_sequence.json").read_text())
    assert summary["quality_flagged_frames"] == [7]


def test_calibrate_command_writes_thresholds_with_provenance(tmp_path, capsys):
    out = tmp_path / "q" / "tiny.quality.json"
    assert main(["quality", "calibrate", str(TESTDATA), "--size", "112", "--split", "train",
                 "--out", str(out)]) == 0
    q = load_thresholds(out)
    assert q.n == 16 and q.shape == (112, 112) and q.source["split"] == "train"
    assert "--size 112" in q.source["command"]
    assert "Calibrated on 16 expert masks" in capsys.readouterr().out
    assert main(["quality", "calibrate", str(TESTDATA), "--size", "112", "--split", "nope",
                 "--out", str(out)]) == 2


def test_shipped_thresholds_pass_most_bundled_expert_masks():
    q = load_thresholds(SHIPPED)
    size = json.loads(SHIPPED.with_name("lightweight.json").read_text())["config"]["data"]["size"]
    assert q.shape == (size, size) and q.coverage == 0.995 and q.n == 1600
    assert q.source["split"] == "train"
    assert len(SAMPLES) == 16
    grids = [label_to_grid(read_label_map(p)[0], size) for p in SAMPLES]
    assert sum(quality_flags(g, q)[0] for g in grids) == 16  # measured: all 16 pass
    assert sum(anatomical_errors(g)["outlier"] for g in grids) == 6  # CAMUS thresholds: 6 fail
    assert load_model("lightweight").quality == q
