"""`echoseg ef` end to end: synthetic CAMUS releases with ellipse masks of known volumes, a
folder of predictions, broken patients, the JSON schema, a model run on the fly, real data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from echoseg.cli import main
from echoseg.clinical import patient_measurements
from echoseg.data.readers import write_image, write_label_map
from test_data_echonet import ED_FRAME, ES_FRAME, echonet_folder, semi_axes  # noqa: F401

SPACING = (0.4, 0.3)  # mm (row, col): anisotropic, as CAMUS
PATIENTS = ("patient0001", "patient0002", "patient0003")
# (length, radius) in mm of the LV half-ellipse of each view and phase; patient i's ES radii
# are scaled by ES_SCALE[i], so the EFs differ
SIZES = {("2CH", "ED"): (45, 17), ("4CH", "ED"): (45, 20),
         ("2CH", "ES"): (38, 12), ("4CH", "ES"): (38, 14)}
ES_SCALE = (1.0, 0.9, 1.1)
CAMUS_ORIGINAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "camus_original"
PATIENT_KEYS = ["patient", "source", "edv", "esv", "ef", "volume_unit", "problems"]
AGREEMENT_KEYS = ["a", "b", "n", "r", "bias", "loa_low", "loa_high", "mae"]


def ellipse_map(length: float, radius: float, *, la_gap: float = 0.0,
                extra_piece: bool = False) -> np.ndarray:
    """The central section of a half-ellipsoid LV (semi-axes ``length`` along the axis, apex at
    the top, ``radius`` across; mm) with a 5 mm MYO wall and an LA below the base, on an
    80 x 60 mm canvas at SPACING. Pixel (r, c) is inside when its centre is."""
    row_mm, col_mm = SPACING
    height, width = math.ceil(80 / row_mm), math.ceil(60 / col_mm)
    up = -(np.arange(height)[:, None] - (round(60 / row_mm) + 0.5)) * row_mm
    across = (np.arange(width)[None, :] - width / 2) * col_mm
    labels = np.zeros((height, width), np.uint8)
    labels[(up > 0) & ((up / (length + 5)) ** 2 + (across / (radius + 5)) ** 2 <= 1)] = 2
    labels[(up < -la_gap) & (((up + la_gap) / 15) ** 2 + (across / radius) ** 2 <= 1)] = 3
    labels[(up > 0) & ((up / length) ** 2 + (across / radius) ** 2 <= 1)] = 1
    if extra_piece:
        labels[2:8, 2:8] = 1
    return labels


def volume(phase: str, scale: float = 1.0) -> float:
    """Half-ellipsoid volume 2/3 pi L r1 r2 (mL) of one phase."""
    (length, r2), (_, r4) = SIZES["2CH", phase], SIZES["4CH", phase]
    return 2 / 3 * math.pi * length * r2 * r4 * scale ** 2 / 1000


def view_maps(index: int, *, es_extra: float = 0.0, **kw) -> dict:
    """(view, phase) -> label map of patient ``index`` (ES radii + ``es_extra`` mm)."""
    maps = {}
    for (view, phase), (length, radius) in SIZES.items():
        if phase == "ES":
            radius = radius * ES_SCALE[index] + es_extra
        maps[view, phase] = ellipse_map(length, radius, **kw)
    return maps


def write_release(root: Path, broken: dict | None = None) -> Path:
    """A CAMUS 2023-style release (NIfTI, Info cfg with LVedv/LVesv/LVef) of PATIENTS below
    ``root``; ``broken`` maps a patient to {(view, phase): label map or None (no files)}."""
    for index, patient in enumerate(PATIENTS):
        folder = root / "database_nifti" / patient
        maps = {**view_maps(index), **(broken or {}).get(patient, {})}
        for (view, phase), labels in maps.items():
            if labels is None:
                continue
            stem = folder / f"{patient}_{view}_{phase}"
            write_image(f"{stem}.nii.gz", (labels * 60).astype(np.uint8), SPACING)
            write_label_map(f"{stem}_gt.nii.gz", labels, SPACING)
        edv, esv = volume("ED"), volume("ES", ES_SCALE[index])
        info = (f"ED: 1\nES: 12\nNbFrame: 15\nLVedv: {edv:.2f}\nLVesv: {esv:.2f}\n"
                f"LVef: {100 * (edv - esv) / edv:.1f}\nImageQuality: Good\n")
        for view in ("2CH", "4CH"):
            (folder / f"Info_{view}.cfg").write_text(info)
    return root


def run_json(args: list[str], capsys) -> tuple[int, dict, str]:
    code = main(["ef", *map(str, args), "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in the JSON")), err


def rows(result: dict, source: str) -> dict:
    return {r["patient"]: r for r in result["patients"] if r["source"] == source}


def test_expert_masks_match_the_known_volumes(tmp_path, capsys):
    code, result, err = run_json([write_release(tmp_path / "camus")], capsys)
    assert code == 0, err
    expert, reference = rows(result, "expert"), rows(result, "reference")
    assert list(expert) == list(reference) == list(PATIENTS)
    for index, patient in enumerate(PATIENTS):
        edv, esv = volume("ED"), volume("ES", ES_SCALE[index])
        assert expert[patient]["volume_unit"] == "mL" and expert[patient]["problems"] == []
        assert expert[patient]["edv"] == pytest.approx(edv, rel=0.03)
        assert expert[patient]["esv"] == pytest.approx(esv, rel=0.03)
        assert expert[patient]["ef"] == pytest.approx(100 * (edv - esv) / edv, abs=1.5)
        assert reference[patient]["edv"] == pytest.approx(edv, abs=0.01)
    ef = [a for a in result["agreement"] if (a["a"], a["b"]) == ("expert", "reference")]
    assert len(ef) == 1 and ef[0]["n"] == 3 and ef[0]["r"] > 0.99 and ef[0]["mae"] < 1.5


def test_json_schema_has_exactly_the_documented_keys(tmp_path, capsys):
    _, result, _ = run_json([write_release(tmp_path / "camus")], capsys)
    assert list(result) == ["patients", "agreement"]
    assert {r["source"] for r in result["patients"]} == {"expert", "reference"}
    for row in result["patients"]:
        assert list(row) == PATIENT_KEYS
    for entry in result["agreement"]:
        assert list(entry) == AGREEMENT_KEYS


def test_predictions_from_a_folder(tmp_path, capsys):
    root = write_release(tmp_path / "camus")
    pred = tmp_path / "pred"
    expected = {}
    for index, patient in enumerate(PATIENTS):  # ES 1 mm wider than the expert's: lower EF
        maps = view_maps(index, es_extra=1.0)
        for (view, phase), labels in maps.items():
            write_label_map(pred / patient / f"{patient}_{view}_{phase}_seg.png", labels)
        expected[patient] = patient_measurements(
            {k: (v, SPACING) for k, v in maps.items()}, patient).ef
    out = tmp_path / "out"
    code, result, err = run_json([root, "--pred", pred, "--out", out], capsys)
    assert code == 0, err
    prediction, expert = rows(result, "prediction"), rows(result, "expert")
    for patient in PATIENTS:
        assert prediction[patient]["ef"] == pytest.approx(expected[patient], abs=1e-9)
        assert prediction[patient]["ef"] < expert[patient]["ef"]
    pairs = {(a["a"], a["b"]): a for a in result["agreement"]}
    assert list(pairs) == [("prediction", "expert"), ("prediction", "reference"),
                           ("expert", "reference")]
    diffs = [prediction[p]["ef"] - expert[p]["ef"] for p in PATIENTS]
    assert pairs["prediction", "expert"]["bias"] == pytest.approx(np.mean(diffs))
    assert pairs["prediction", "expert"]["mae"] == pytest.approx(np.mean(np.abs(diffs)))
    names = {p.name for p in out.iterdir()}
    assert {"ef.csv", "agreement.csv", "report.md", "provenance.json"} <= names
    for pair in ("prediction_vs_expert", "prediction_vs_reference", "expert_vs_reference"):
        assert {f"bland_altman_{pair}.png", f"scatter_{pair}.png"} <= names
    csv_lines = (out / "ef.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 3 * len(PATIENTS)
    assert csv_lines[0].startswith("patient,source,method,volume_unit,edv,esv,ef")
    assert "4CH_ED_length" in csv_lines[0] and "2CH_single_plane_ef" in csv_lines[0]
    report = (out / "report.md").read_text()
    assert "## Agreement" in report and "## Method" in report and "## Provenance" in report
    assert json.loads((out / "provenance.json").read_text())["patients"] == 3


BROKEN = {  # kind -> (patient0002's replaced views, text of the problem, EF still computed)
    "no LV": ({("2CH", "ES"): ellipse_map(38, 10.8) * 0, ("4CH", "ES"): ellipse_map(38, 12.6) * 0},
              "no LV (label 1)", False),
    "LV pieces": ({("4CH", "ED"): ellipse_map(45, 20, extra_piece=True)}, "LV in 2 pieces",
                  True),
    "LV apart from LA": ({("2CH", "ED"): ellipse_map(45, 17, la_gap=3.0)},
                         "LV does not touch the LA", True),
    "EF < 0": ({("2CH", "ED"): ellipse_map(38, 10.8), ("4CH", "ED"): ellipse_map(38, 12.6),
                ("2CH", "ES"): ellipse_map(45, 17), ("4CH", "ES"): ellipse_map(45, 20)},
               "EF < 0", False),
    "missing view": ({("4CH", "ES"): None}, "4CH ES: missing", True),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_broken_patient_is_reported_and_the_others_computed(tmp_path, capsys, kind):
    views, text, computed = BROKEN[kind]
    root = write_release(tmp_path / "camus", {"patient0002": views})
    code, result, err = run_json([root], capsys)
    expert = rows(result, "expert")
    assert code == (0 if computed else 1)
    assert any(text in p for p in expert["patient0002"]["problems"]), expert["patient0002"]
    assert "patient0002 (expert): " in err and text in err
    assert (expert["patient0002"]["ef"] is not None) == computed
    for patient in ("patient0001", "patient0003"):
        assert expert[patient]["ef"] is not None and expert[patient]["problems"] == []
    ef = next(a for a in result["agreement"] if (a["a"], a["b"]) == ("expert", "reference"))
    assert ef["n"] == (3 if computed else 2)
    if not computed:
        assert ef["r"] is None  # two patients: no r


def test_split_restricts_the_patients(tmp_path, capsys):
    root = write_release(tmp_path / "camus")
    (root / "database_split").mkdir()
    (root / "database_split" / "subgroup_training.txt").write_text("patient0001\npatient0002\n")
    (root / "database_split" / "subgroup_validation.txt").write_text("patient0003\n")
    code, result, _ = run_json([root, "--split", "val"], capsys)
    assert code == 0 and {r["patient"] for r in result["patients"]} == {"patient0003"}
    assert main(["ef", str(root), "--split", "test"]) == 2
    assert "no split named 'test' (available: train, val)" in capsys.readouterr().err


def test_folder_dataset_without_spacing_gives_pixel_volumes(samples_root, tmp_path, capsys):
    out = tmp_path / "out"
    code, result, err = run_json([samples_root, "--split", "val", "--out", out], capsys)
    assert code == 0, err
    assert {r["source"] for r in result["patients"]} == {"expert"}
    assert all(r["volume_unit"] == "px^3" and r["ef"] > 0 for r in result["patients"])
    assert result["agreement"] == []
    assert "NOT comparable to mL" in (out / "report.md").read_text()


@pytest.mark.parametrize("args", [
    ["--pred", "{tmp}", "--model", "lightweight"],
    ["--runtime", "torch"],
    ["--batch-size", "0", "--model", "lightweight"],
])
def test_bad_arguments_exit_2(tmp_path, capsys, args):
    root = write_release(tmp_path / "camus")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["ef", str(root), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("echoseg: error: ") and len(err.strip().splitlines()) == 1


def test_no_data_or_no_predictions_exit_2(tmp_path, capsys):
    assert main(["ef", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    root = write_release(tmp_path / "camus")
    (tmp_path / "empty").mkdir()
    assert main(["ef", str(root), "--pred", str(tmp_path / "empty"), "--out",
                 str(tmp_path / "out")]) == 2
    assert "no prediction file for any of the 12 images" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_model_run_on_the_fly(tmp_path, capsys, monkeypatch):
    import torch

    from echoseg.config import from_dict
    from echoseg.inference import loading
    from echoseg.inference.bundle import save_bundled
    from echoseg.models import build_model

    torch.manual_seed(0)
    config = from_dict({"data": {"size": 32}, "model": {"encoder": [4, 4, 8],
                                                        "decoder": [4, 4]}})
    save_bundled(build_model(config.model), config, tmp_path / "weights", "tiny")
    monkeypatch.setattr(loading, "WEIGHTS_DIR", tmp_path / "weights")
    code, result, err = run_json([write_release(tmp_path / "camus"), "--model", "tiny",
                                  "--device", "cpu"], capsys)
    prediction = rows(result, "prediction")
    assert list(prediction) == list(PATIENTS)  # a random model: EF or a problem, per patient
    failed = [p for p, r in prediction.items() if r["ef"] is None]
    assert code == (1 if failed else 0)
    assert all(prediction[p]["problems"] for p in failed)


@pytest.mark.shared_data
def test_real_camus_expert_ef_matches_the_info_cfg(capsys):
    if not (CAMUS_ORIGINAL / "patient0001" / "Info_2CH.cfg").is_file():
        pytest.skip(f"{CAMUS_ORIGINAL} not found")
    code, result, err = run_json([CAMUS_ORIGINAL], capsys)
    assert code == 0, err
    expert, reference = rows(result, "expert"), rows(result, "reference")
    assert set(expert) == set(reference) == {"patient0001", "patient0002"}
    for patient, row in expert.items():
        assert row["volume_unit"] == "mL"
        assert row["ef"] == pytest.approx(reference[patient]["ef"], abs=1.0)


def test_echonet_single_plane_against_file_list(request, capsys):
    echonet = request.getfixturevalue("echonet_folder")  # from test_data_echonet
    code, result, err = run_json([echonet.root], capsys)
    assert code == 0, err
    expert, reference = rows(result, "expert"), rows(result, "reference")
    assert list(expert) == list(reference) == echonet.names
    (a_ed, b_ed), (a_es, b_es) = semi_axes(ED_FRAME), semi_axes(ES_FRAME)
    ellipsoid_ef = 100 * (1 - a_es ** 2 * b_es / (a_ed ** 2 * b_ed))  # V ~ a^2 b
    for name in echonet.names:
        assert expert[name]["volume_unit"] == "px^3" and expert[name]["problems"] == []
        assert expert[name]["ef"] == pytest.approx(ellipsoid_ef, abs=2.0)
        assert {k: reference[name][k] for k in ("ef", "edv", "esv")} == \
            echonet.reference[name]
        assert reference[name]["volume_unit"] == "mL"
    assert [(a["a"], a["b"], a["n"]) for a in result["agreement"]] == [
        ("expert", "reference", 3)]


def test_a_missing_prediction_file_is_reported_per_patient(tmp_path, capsys):
    root = write_release(tmp_path / "camus")
    pred = tmp_path / "pred"
    for index, patient in enumerate(PATIENTS):
        for (view, phase), labels in view_maps(index).items():
            if (patient, view, phase) != ("patient0003", "4CH", "ES"):
                write_label_map(pred / f"{patient}_{view}_{phase}.png", labels)
    code, result, err = run_json([root, "--pred", pred], capsys)
    assert code == 0, err
    prediction = rows(result, "prediction")
    assert all(prediction[p]["ef"] is not None for p in PATIENTS)
    assert prediction["patient0003"]["problems"] == [
        f"4CH ES: no prediction file for patient0003_4CH_ES in {pred}"]
    assert prediction["patient0001"]["problems"] == []


ES_PIXELS = 9000  # the LV of every ES map of write_release has fewer pixels, every ED one more


class ViewsModel:
    """A stand-in TTA model for `ef --model X --tta`: the images of write_release are the
    label maps times 60, so its 'prediction' is the expert map; its three views are that map,
    the map shifted by 3 pixels (the same EF) and, for ES images (LV under ES_PIXELS pixels),
    the map with the LV eroded by 2 pixels (a higher EF)."""

    name, runtime, device, postprocess_spec, tta = "views", "torch tta", "cpu", "none", True

    def predict_batch_with_views(self, images):
        from scipy import ndimage

        labels = [(np.asarray(im) // 60).astype(np.uint8) for im in images]
        views = []
        for lbl in labels:
            shifted = np.roll(lbl, 3, axis=1)
            eroded = lbl.copy()
            lv = lbl == 1
            if lv.sum() < ES_PIXELS:
                eroded[lv & ~ndimage.binary_erosion(lv, iterations=2)] = 2
            views.append([lbl, shifted, eroded])
        return labels, views

    predict_batch = None


def test_tta_gives_each_predicted_ef_its_spread_over_the_views(tmp_path, capsys, monkeypatch):
    import csv

    from scipy import ndimage

    import echoseg.inference

    monkeypatch.setattr(echoseg.inference, "load_model", lambda *a, **k: ViewsModel())
    root = write_release(tmp_path / "camus")
    out = tmp_path / "out"
    assert main(["ef", str(root), "--model", "views", "--tta", "--out", str(out)]) == 0
    console = capsys.readouterr().out
    with open(out / "ef.csv", newline="") as f:
        table = {(r["patient"], r["source"]): r for r in csv.DictReader(f)}
    for index, patient in enumerate(PATIENTS):
        assert table[patient, "expert"]["ef_tta_sd"] == ""
        maps = view_maps(index)
        eroded = {}
        for key, lbl in maps.items():
            eroded[key] = lbl.copy()
            lv = lbl == 1
            if key[1] == "ES":
                eroded[key][lv & ~ndimage.binary_erosion(lv, iterations=2)] = 2
        shifted = {key: np.roll(lbl, 3, axis=1) for key, lbl in maps.items()}
        efs = [patient_measurements({k: (m, SPACING) for k, m in v.items()}).ef
               for v in (maps, shifted, eroded)]
        assert efs[1] == pytest.approx(efs[0], abs=0.5)  # resampling noise only
        assert efs[2] > efs[0] + 1  # the eroded ES view really moves the EF
        assert float(table[patient, "prediction"]["ef_tta_sd"]) == pytest.approx(
            np.std(efs, ddof=1), abs=1e-6)
        assert f"{efs[0]:.1f} ± {np.std(efs, ddof=1):.1f}" in console
    assert "## EF spread over the TTA views" in (out / "report.md").read_text()
