"""Patient-level splits: seeded 80/10/10, JSON files, official CAMUS subgroups, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from echoseg.data.dataset import open_dataset
from echoseg.data.readers import write_image
from echoseg.data.splits import random_split, read_split_file, resolve_splits, save_splits
from echoseg.errors import DataError

PATIENTS = [f"patient{i:04d}" for i in range(1, 451)]


def _no_leak(splits):
    names = [p for patients in splits.values() for p in patients]
    assert len(names) == len(set(names))


def test_seeded_split_sizes_leaks_and_reproducibility():
    split = random_split(PATIENTS, seed=0)
    assert {k: len(v) for k, v in split.items()} == {"train": 360, "val": 45, "test": 45}
    _no_leak(split)
    assert sorted(p for v in split.values() for p in v) == PATIENTS
    assert random_split(list(reversed(PATIENTS)), seed=0) == split  # input order is irrelevant
    other = random_split(PATIENTS, seed=1)
    assert other != split and other["test"] != split["test"]


@pytest.mark.parametrize(("n", "sizes"), [(1, (1, 0, 0)), (3, (1, 1, 1)), (8, (6, 1, 1)),
                                          (10, (8, 1, 1)), (25, (19, 3, 3))])
def test_small_datasets_still_get_val_and_test(n, sizes):
    split = random_split(PATIENTS[:n], seed=3)
    assert tuple(len(split[k]) for k in ("train", "val", "test")) == sizes


@pytest.fixture
def tiny_folder(tmp_path):
    """Ten patients, one 4x4 PNG pair each."""
    root = tmp_path / "data"
    for patient in PATIENTS[:10]:
        write_image(root / patient / f"{patient}_4CH_ED.png", np.zeros((4, 4), np.uint8))
        write_image(root / patient / f"{patient}_4CH_ED_gt.png", np.ones((4, 4), np.uint8))
    return root


def test_without_split_file_the_seeded_split_is_used(tiny_folder):
    dataset = open_dataset(tiny_folder)
    assert dataset.split_file is None
    assert resolve_splits(dataset, seed=5) == random_split(PATIENTS[:10], seed=5)


def test_json_split_file_honoured_and_saved_atomically(tiny_folder, tmp_path):
    (tiny_folder / "splits.json").write_text(json.dumps(
        {"train": PATIENTS[2:10], "val": [PATIENTS[1]], "test": [PATIENTS[0]]}))
    dataset = open_dataset(tiny_folder)
    splits = resolve_splits(dataset, seed=123)  # the file wins over the seed
    assert splits == {"train": PATIENTS[2:10], "val": [PATIENTS[1]], "test": [PATIENTS[0]]}
    out = save_splits(splits, tmp_path / "run" / "splits.json")
    assert json.loads(out.read_text()) == splits
    assert [p.name for p in out.parent.iterdir()] == ["splits.json"]  # no temporary left
    # an explicit file wins over the one in the dataset
    assert resolve_splits(dataset, split_file=out) == splits


def test_official_subgroup_files(camus2023):
    dataset = open_dataset(camus2023.root)
    expected = {"train": ["patient0001", "patient0002"], "val": ["patient0003"]}
    assert resolve_splits(dataset) == expected
    split_dir = camus2023.root / "database_split"
    assert read_split_file(split_dir / "subgroup_training.txt") == expected
    (split_dir / "subgroup_testing.txt").write_text("patient0003\n")
    with pytest.raises(DataError) as err:
        resolve_splits(dataset)
    assert str(err.value) == f"{split_dir}: patient patient0003 is listed in both val and test"


def test_split_naming_missing_patients(samples_root, tmp_path):
    path = tmp_path / "splits.json"
    path.write_text(json.dumps({"train": ["patient0001", "patient9998"], "val": ["patient9999"]}))
    with pytest.raises(DataError) as err:
        resolve_splits(open_dataset(samples_root), split_file=path)
    assert str(err.value) == (f"{path}: patients not in the dataset {samples_root}: "
                              "patient9998, patient9999")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"train": ["a"], "validation": ["b"]}',
         "unknown split name(s) validation (expected train, val, test)"),
        ('["a", "b"]', 'expected an object like {"train": [...], "val": [...]}'),
        ('{"train": "a"}', "'train' must be a list of patient names"),
        ('{"train": ["a", "b", "a"]}', "patient a is listed twice in train"),
        ('{"train": ["a"], "val": ["a"]}', "patient a is listed in both train and val"),
        ('{"train": [', "invalid JSON (Expecting value at line 1)"),
    ],
)
def test_malformed_json_split_files(tmp_path, content, problem):
    path = tmp_path / "splits.json"
    path.write_text(content)
    with pytest.raises(DataError) as err:
        read_split_file(path)
    assert str(err.value) == f"{path}: {problem}"


def test_missing_split_file(tmp_path):
    with pytest.raises(DataError, match="nope.json: split file not found"):
        read_split_file(tmp_path / "nope.json")
