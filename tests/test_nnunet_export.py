"""`echoseg nnunet export`: nnU-Net v2 raw datasets from the bundled samples and CAMUS layouts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import echoseg
from echoseg.cli import main
from echoseg.data.dataset import open_dataset
from echoseg.data.pairs import read_pair
from echoseg.data.readers import write_image, write_label_map
from echoseg.data.splits import resolve_splits
from echoseg.nnunet_export import (
    REFERENCE,
    case_names,
    export_nnunet,
    rename_predictions,
    to_uint8,
)

BUNDLED = Path(echoseg.__file__).parent / "samples" / "camus224"
LABELS = {"background": 0, "LV": 1, "MYO": 2, "LA": 3}


def export(data: Path, out: Path, *extra: str, dataset_id: int = 501) -> int:
    return main(["nnunet", "export", str(data), "--dataset-id", str(dataset_id),
                 "--out", str(out), *extra])


def png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "L"
        return np.asarray(image)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def ids_of(dataset, patients) -> list[str]:
    return [s.id for s in dataset.select(patients)]


def assert_exported(folder: Path, data: Path, test: bool) -> dict:
    """Check an export of a dataset with safe ids against the dataset; returns dataset.json."""
    dataset = open_dataset(data)
    splits = resolve_splits(dataset)
    train = ids_of(dataset, splits.get("train", []) + splits.get("val", []))
    assert names(folder / "imagesTr") == sorted(f"{i}_0000.png" for i in train)
    assert names(folder / "labelsTr") == sorted(f"{i}.png" for i in train)
    assert (folder / "imagesTs").exists() == test
    if test:
        assert names(folder / "imagesTs") == sorted(
            f"{i}_0000.png" for i in ids_of(dataset, splits["test"]))
    for sample in dataset.samples:
        image, label = read_pair(sample)
        where = "imagesTr" if sample.id in train else "imagesTs"
        assert np.array_equal(png(folder / where / f"{sample.id}_0000.png"), image)
        if sample.id in train:
            written = png(folder / "labelsTr" / f"{sample.id}.png")
            assert written.dtype == np.uint8 and np.array_equal(written, label)
    assert json.loads((folder / "splits_final.json").read_text()) == [
        {"train": ids_of(dataset, splits.get("train", [])),
         "val": ids_of(dataset, splits.get("val", []))}]
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "echo"} and meta["labels"] == LABELS
    assert meta["numTraining"] == len(train) and meta["file_ending"] == ".png"
    assert meta["name"] == folder.name and meta["reference"] == REFERENCE
    assert "CC BY-NC-SA 4.0" in meta["license"]
    return meta


def test_export_samples(samples_root, tmp_path, capsys):
    assert export(samples_root, tmp_path / "raw") == 0
    folder = tmp_path / "raw" / "Dataset501_camus224"
    assert names(tmp_path / "raw") == [folder.name]
    assert names(folder) == ["dataset.json", "imagesTr", "labelsTr", "splits_final.json"]
    assert assert_exported(folder, samples_root, test=False)["numTraining"] == 32
    out = capsys.readouterr().out
    for command in ("nnUNetv2_plan_and_preprocess -d 501 --verify_dataset_integrity -c 2d",
                    "nnUNetv2_train 501 2d 0\n", "-tr nnUNetTrainer_100epochs",
                    "-tr nnUNetTrainerNoDA", "-tr nnUNetTrainerNoDeepSupervision",
                    "splits_final.json", "nnUNet_preprocessed/Dataset501_camus224/",
                    "fold_0/validation", "--split val"):
        assert command in out
    assert "nnUNetv2_predict" not in out  # no test split, no imagesTs


def test_export_camus2019_with_test_split(camus2019, tmp_path, capsys):
    assert export(camus2019.root, tmp_path / "raw", "--json", dataset_id=7) == 0
    folder = tmp_path / "raw" / "Dataset007_CAMUS"
    assert json.loads(capsys.readouterr().out) == {"dataset": str(folder), "cases": 8,
                                                   "test_cases": 4}
    assert_exported(folder, camus2019.root, test=True)
    for path in [*folder.glob("images*/*_0000.png")]:  # native sizes, values as in the .mhd
        assert np.array_equal(png(path), camus2019.images[path.name[: -len("_0000.png")]])


def test_export_camus2023(camus2023, tmp_path):
    result = export_nnunet(camus2023.root, tmp_path, 8)
    assert result.folder.name == "Dataset008_CAMUS" and result.test_cases == 0
    assert_exported(result.folder, camus2023.root, test=False)


def test_to_uint8():
    assert to_uint8(np.array([[0, 255]], np.uint16)).tolist() == [[0, 255]]
    assert to_uint8(np.array([[-1.0, np.nan, 1.0]])).tolist() == [[0, 0, 255]]
    assert to_uint8(np.array([[0, 1000]], np.uint16)).dtype == np.uint8


def test_bundled_samples_without_train_split_warn(tmp_path):
    with pytest.warns(UserWarning, match="no train patients"):
        result = export_nnunet(BUNDLED, tmp_path, 12, name="Echo")
    assert result.folder == tmp_path / "Dataset012_Echo" and result.cases == 16
    splits = json.loads((result.folder / "splits_final.json").read_text())
    assert splits[0]["train"] == [] and len(splits[0]["val"]) == 16


def test_split_file_overrides(samples_root, tmp_path, capsys):
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["patient0001", "patient0002"], "val": ["patient0003"],
                                 "test": ["patient0200"]}))
    assert export(samples_root, tmp_path / "raw", "--split-file", str(split), "--name", "X") == 0
    folder = tmp_path / "raw" / "Dataset501_X"
    final = json.loads((folder / "splits_final.json").read_text())[0]
    assert [len(final["train"]), len(final["val"])] == [8, 4]
    assert len(names(folder / "imagesTs")) == 4
    assert "left out 4 patients" in capsys.readouterr().out


@pytest.mark.parametrize("dataset_id", ["0", "1000"])
def test_bad_dataset_id(samples_root, tmp_path, capsys, dataset_id):
    assert export(samples_root, tmp_path / "raw", dataset_id=int(dataset_id)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--dataset-id must be in 1..999" in err and dataset_id in err
    assert not (tmp_path / "raw").exists()


def test_existing_dataset_id_needs_force(samples_root, tmp_path, capsys):
    old = tmp_path / "raw" / "Dataset501_Other"
    old.mkdir(parents=True)
    (old / "dataset.json").write_text("{}")
    assert export(samples_root, tmp_path / "raw") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Dataset501_Other" in err and "--force" in err
    assert names(tmp_path / "raw") == ["Dataset501_Other"]
    assert export(samples_root, tmp_path / "raw", "--force") == 0
    assert names(tmp_path / "raw") == ["Dataset501_camus224"]


def test_failure_leaves_nothing(tmp_path, capsys):
    data = tmp_path / "data"
    for i, value in enumerate((1, 7)):  # the second label map has an invalid value
        write_image(data / f"case{i}.png", np.full((8, 8), 50, np.uint8))
        Image.fromarray(np.full((8, 8), value, np.uint8)).save(data / f"case{i}_gt.png")
    (data / "splits.json").write_text('{"train": ["case0", "case1"]}')
    assert export(data, tmp_path / "raw") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "case1_gt.png" in err and "outside 0..3" in err
    assert not (tmp_path / "raw").exists()


def test_no_labelled_samples(tmp_path, capsys):
    write_image(tmp_path / "data" / "case0.png", np.zeros((8, 8), np.uint8))
    assert export(tmp_path / "data", tmp_path / "raw") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no labelled samples" in err


def test_round_trip_through_evaluate(samples_root, tmp_path, capsys):
    assert export(samples_root, tmp_path / "raw") == 0
    fake = tmp_path / "nnunet_output"
    shutil.copytree(tmp_path / "raw" / "Dataset501_camus224" / "labelsTr", fake)
    capsys.readouterr()
    assert main(["evaluate", "--pred", str(fake), "--data", str(samples_root), "--split", "val",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_images"] == 16 and summary["dice"] == {"LV": 1.0, "MYO": 1.0, "LA": 1.0}


def test_unsafe_ids_get_a_case_map(tmp_path, capsys):
    data = tmp_path / "data"
    ids = ["a b", "a_b", "c+d"]
    label = np.zeros((12, 10), np.uint8)
    label[2:6, 2:8], label[6:9, 2:8], label[9:11, 3:7] = 1, 2, 3
    for i, sample_id in enumerate(ids):
        write_image(data / f"{sample_id}.png", np.full((12, 10), 40 * i, np.uint8))
        write_label_map(data / f"{sample_id}_gt.png", label)
    (data / "splits.json").write_text(json.dumps({"train": ["a_b", "c+d"], "val": ["a b"]}))
    assert case_names(ids) == {"a b": "a_b_2", "a_b": "a_b", "c+d": "c_d"}
    assert export(data, tmp_path / "raw", "--name", "Odd") == 0
    folder = tmp_path / "raw" / "Dataset501_Odd"
    assert "echoseg nnunet rename" in capsys.readouterr().out
    case_map = json.loads((folder / "case_map.json").read_text())
    assert case_map == {"a_b_2": "a b", "c_d": "c+d"}
    assert names(folder / "labelsTr") == ["a_b.png", "a_b_2.png", "c_d.png"]
    assert json.loads((folder / "splits_final.json").read_text()) == [
        {"train": ["a_b", "c_d"], "val": ["a_b_2"]}]
    meta = json.loads((folder / "dataset.json").read_text())
    assert "CC BY-NC-SA" not in meta["license"]  # not CAMUS-named data
    pred = tmp_path / "pred"
    shutil.copytree(folder / "labelsTr", pred)
    assert rename_predictions(pred, case_map) == 2
    assert main(["nnunet", "rename", str(pred), "--case-map", str(folder / "case_map.json")]) == 0
    assert names(pred) == ["a b.png", "a_b.png", "c+d.png"]
    capsys.readouterr()
    assert main(["evaluate", "--pred", str(pred), "--data", str(data), "--split", "val",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dice"] == {"LV": 1.0, "MYO": 1.0, "LA": 1.0}


def test_nnunet_verifies_the_export(camus2019, tmp_path):
    pytest.importorskip("nnunetv2")
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    result = export_nnunet(camus2019.root, tmp_path, 9)
    verify_dataset_integrity(str(result.folder), num_processes=1)
