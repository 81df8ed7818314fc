"""`echoseg info` and every bad-input case: one line naming the file, from the API and the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import test_data_echonet
from echoseg.cli import main
from echoseg.data.cache import load_arrays
from echoseg.data.dataset import open_dataset
from echoseg.data.readers import read_image, write_image
from echoseg.data.splits import resolve_splits
from echoseg.errors import DataError

echonet_folder = test_data_echonet.echonet_folder  # the tiny EchoNet folder fixture


def _info_json(capsys, *args):
    code = main(["info", *map(str, args), "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_info_on_bundled_samples(samples_root, capsys):
    code, report = _info_json(capsys, samples_root)
    assert code == 0
    assert {k: report[k] for k in ("layout", "n_patients", "n_images", "labels", "splits",
                                   "problems")} == {
        "layout": "folder", "n_patients": 8, "n_images": 32, "labels": [0, 1, 2, 3],
        "splits": {"train": 4, "val": 4}, "problems": []}
    assert report["views"] == {"2CH": 16, "4CH": 16} and report["phases"] == {"ED": 16, "ES": 16}
    assert report["size_min"] == report["size_max"] == [224, 224]
    assert report["structures"] == ["LV", "MYO", "LA"]
    assert main(["info", str(samples_root)]) == 0
    text = capsys.readouterr().out
    assert "Layout       folder" in text and "Splits       train 4, val 4" in text
    assert "Problems     none" in text and "Labels       0, 1, 2, 3" in text


def test_info_on_a_camus_release(camus2023, capsys):
    code, report = _info_json(capsys, camus2023.root)
    assert code == 0
    assert (report["layout"], report["n_patients"], report["n_images"]) == ("camus", 3, 12)
    assert report["labels"] == [0, 1, 2, 3]
    assert report["splits"] == {"train": 2, "val": 1}
    assert report["spacing_min_mm"] == report["spacing_max_mm"] == [0.308, 0.154]
    assert (report["size_min"], report["size_max"]) == ([44, 36], [50, 40])
    assert report["info_fields"] == ["Age", "ED", "EF", "ES", "FrameRate", "ImageQuality",
                                     "NbFrame", "Sex"]
    assert (report["n_sequences"], report["sequence_frames"]) == (2, [4, 4])
    main(["info", str(camus2023.root)])
    text = capsys.readouterr().out
    assert "Size (HxW)   44x36 to 50x40 px, 2 distinct" in text
    assert "Info fields  Age, ED, EF, ES, FrameRate, ImageQuality, NbFrame, Sex" in text
    assert "Sequences    2 (4-4 frames)" in text


def test_info_on_an_echonet_folder(echonet_folder, capsys):
    code, report = _info_json(capsys, echonet_folder.root)
    assert code == 0 and report["problems"] == []
    assert (report["layout"], report["n_patients"], report["n_images"]) == ("echonet", 3, 6)
    assert report["structures"] == ["LV"] and report["labels"] == [0, 1]
    assert report["splits"] == {"train": 1, "val": 1, "test": 1}
    frames = test_data_echonet.N_FRAMES
    assert (report["n_sequences"], report["sequence_frames"]) == (3, [frames, frames])
    assert main(["info", str(echonet_folder.root)]) == 0
    text = capsys.readouterr().out
    assert ("Layout       echonet (EchoNet-Dynamic: FileList.csv, VolumeTracings.csv, "
            "Videos/*.avi)") in text
    assert "Structures   LV\n" in text and "Labels       0, 1\n" in text
    assert f"Sequences    3 ({frames}-{frames} frames)" in text and "Problems     none" in text


def test_info_without_split_file_reports_the_seeded_split(camus2019, capsys):
    code, report = _info_json(capsys, camus2019.root, "--seed", "7")
    assert code == 0 and report["layout"] == "camus"
    assert report["splits"] == {"train": 1, "val": 1, "test": 1}
    assert report["split_source"] == "seeded 80/10/10 split, seed 7"
    assert report["info_fields"] == ["ED", "ES", "ImageQuality", "LVedv", "LVef", "LVesv",
                                     "NbFrame"]
    assert (report["n_sequences"], report["sequence_frames"]) == (2, [4, 4])


@pytest.fixture
def small_copy(samples_root, tmp_path):
    """patient0001 and patient0002 of the bundled samples, free to break."""
    root = tmp_path / "data"
    for patient in ("patient0001", "patient0002"):
        shutil.copytree(samples_root / patient, root / patient)
    return root


def _garbage(path):
    path.write_bytes(b"\x89PNG not really")


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])


def _bad_values(path):
    label = read_image(path)[0].copy()
    label[0, :2] = (5, 9)
    write_image(path, label)


def _duplicate(root):
    for name in ("patient0002_2CH_ED.png", "patient0002_2CH_ED_gt.png"):
        (root / "extra").mkdir(exist_ok=True)
        shutil.copy(root / "patient0002" / name, root / "extra" / name)


P = "{root}/patient0001/patient0001"
# (break the copy, expected problem, the API step that raises it)
CASES = {
    "missing-label": (lambda r: (r / "patient0001/patient0001_2CH_ED_gt.png").unlink(),
                      P + "_2CH_ED.png: missing label map (expected patient0001_2CH_ED_gt.png)",
                      "open"),
    "size-mismatch": (lambda r: write_image(r / "patient0001/patient0001_2CH_ES_gt.png",
                                            np.zeros((20, 30), np.uint8)),
                      P + "_2CH_ES_gt.png: label map size 20x30 does not match image size "
                      "224x224 (HxW, patient0001_2CH_ES.png)", "open"),
    "label-values": (lambda r: _bad_values(r / "patient0002/patient0002_4CH_ED_gt.png"),
                     "{root}/patient0002/patient0002_4CH_ED_gt.png: label values outside 0..3: "
                     "5, 9", "load"),
    "truncated": (lambda r: _truncate(r / "patient0001/patient0001_4CH_ED.png"),
                  P + "_4CH_ED.png: cannot read image (image file is truncated", "load"),
    "unreadable": (lambda r: _garbage(r / "patient0001/patient0001_4CH_ES.png"),
                   P + "_4CH_ES.png: cannot read image (cannot identify image file", "open"),
    "split-patient": (lambda r: (r / "splits.json").write_text(
                          '{"train": ["patient0001", "patient0009"], "val": ["patient0002"]}'),
                      "{root}/splits.json: patients not in the dataset {root}: patient0009",
                      "splits"),
    "duplicate-id": (_duplicate, "{root}/patient0002/patient0002_2CH_ED.png: duplicate id "
                     "'patient0002_2CH_ED' (also {root}/extra/patient0002_2CH_ED.png)", "open"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_api_and_cli(case, small_copy, capsys, tmp_path):
    breaker, template, step = CASES[case]
    breaker(small_copy)
    expected = template.format(root=small_copy)
    with pytest.raises(DataError) as err:
        dataset = open_dataset(small_copy)
        if step == "load":
            load_arrays(dataset.samples, 32, tmp_path / "cache")
        resolve_splits(dataset)
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)

    assert main(["info", str(small_copy)]) == 2
    captured = capsys.readouterr()
    assert f"\n  {expected}" in captured.out and captured.err == ""
    code, report = _info_json(capsys, small_copy)
    assert code == 2 and len(report["problems"]) == 1
    assert report["problems"][0].startswith(expected)


def test_all_problems_reported_at_once(small_copy, capsys):
    for breaker, _, _ in CASES.values():
        breaker(small_copy)
    code, report = _info_json(capsys, small_copy)
    assert code == 2
    for _, template, _ in CASES.values():
        expected = template.format(root=small_copy)
        assert sum(p.startswith(expected) for p in report["problems"]) == 1, expected
    assert len(report["problems"]) == len(CASES)
    with pytest.raises(DataError, match=r"\(and 3 more problems: run 'echoseg info "):
        open_dataset(small_copy)


def test_malformed_info_cfg_api_and_cli(camus2023, capsys):
    cfg = camus2023.patients_dir / "patient0002" / "Info_2CH.cfg"
    cfg.write_text("ED: 1\noops\n")
    expected = f"{cfg}: line 2: expected 'Key: value', got 'oops'"
    with pytest.raises(DataError) as err:
        open_dataset(camus2023.root)
    assert str(err.value) == expected
    assert main(["info", str(camus2023.root)]) == 2
    assert f"\n  {expected}" in capsys.readouterr().out


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
@pytest.mark.parametrize(("make", "problem"), [(lambda p: None, "no such folder"),
                                               (lambda p: p.mkdir(), "empty folder")])
def test_unusable_folder_is_one_line_on_stderr(tmp_path, capsys, make, problem, json_flag):
    make(tmp_path / "d")
    assert main(["info", str(tmp_path / "d"), *json_flag]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"echoseg: error: {tmp_path / 'd'}: {problem}\n"
    assert captured.out == ""


def test_explicit_split_file(samples_root, tmp_path, capsys):
    path = tmp_path / "mine.json"
    path.write_text('{"train": ["patient0001"], "test": ["patient0002", "patient0003"]}')
    code, report = _info_json(capsys, samples_root, "--split-file", path)
    assert code == 0 and report["splits"] == {"train": 1, "test": 2}
    assert report["split_source"] == str(path) and report["n_unassigned"] == 5
    main(["info", str(samples_root), "--split-file", str(path)])
    assert f"train 1, test 2 (from {path}); 5 patients in no split" in capsys.readouterr().out


@pytest.mark.shared_data
def test_info_on_full_camus224(shared_camus224, capsys):
    code, report = _info_json(capsys, shared_camus224)
    assert code == 0
    assert (report["layout"], report["n_patients"], report["n_images"]) == ("folder", 450, 1800)
    assert report["labels"] == [0, 1, 2, 3]
    assert report["splits"] == {"train": 400, "val": 50}
    assert report["problems"] == []
