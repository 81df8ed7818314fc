"""Folder datasets (X.png + X_gt.png, images/ + labels/) and open_dataset's general behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from echoseg.data.dataset import open_dataset
from echoseg.data.pairs import read_pair
from echoseg.data.readers import read_image, write_image
from echoseg.errors import DataError


def test_bundled_samples(samples_root):
    dataset = open_dataset(samples_root)
    assert dataset.layout == "folder"
    assert dataset.patients == ["patient0001", "patient0002", "patient0003", "patient0004",
                                "patient0200", "patient0206", "patient0230", "patient0232"]
    assert len(dataset.samples) == 32 and dataset.problems == []
    first = dataset.samples[0]
    assert (first.id, first.patient, first.view, first.phase) == (
        "patient0001_2CH_ED", "patient0001", "2CH", "ED")
    assert first.image_path == samples_root / "patient0001" / "patient0001_2CH_ED.png"
    assert first.label_path == samples_root / "patient0001" / "patient0001_2CH_ED_gt.png"
    assert (first.spacing, first.native_size, dict(first.info)) == (None, (224, 224), {})
    assert [s.id for s in dataset.samples] == sorted(s.id for s in dataset.samples)
    assert dataset.split_file == samples_root / "splits.json"
    picked = dataset.select(["patient0232", "patient0002"])
    assert [s.patient for s in picked] == ["patient0002"] * 4 + ["patient0232"] * 4
    with pytest.raises(DataError, match="patients not in the dataset: patient9999"):
        dataset.select(["patient9999"])


def test_images_and_labels_folders_with_any_names(tmp_path):
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    label = np.array([[0, 1, 2, 3]] * 3, np.uint8)
    write_image(tmp_path / "images" / "site_a" / "case7.png", image)
    write_image(tmp_path / "labels" / "site_a" / "case7.png", label)
    write_image(tmp_path / "images" / "scan.nii.gz", image, spacing=(0.5, 0.25))
    write_image(tmp_path / "labels" / "scan.nii.gz", label, spacing=(0.5, 0.25))
    dataset = open_dataset(tmp_path)
    assert dataset.layout == "folder"
    assert [(s.id, s.patient, s.view, s.phase, s.spacing, s.native_size)
            for s in dataset.samples] == [("case7", "case7", None, None, None, (3, 4)),
                                          ("scan", "scan", None, None, (0.5, 0.25), (3, 4))]
    for sample in dataset.samples:
        got_image, got_label = read_pair(sample)
        np.testing.assert_array_equal(got_image, image)
        np.testing.assert_array_equal(got_label, label)


def test_images_without_labels_when_allowed(tmp_path):
    write_image(tmp_path / "a.png", np.zeros((3, 3), np.uint8))
    with pytest.raises(DataError, match=r"a\.png: missing label map \(expected a_gt\.png\)"):
        open_dataset(tmp_path)
    dataset = open_dataset(tmp_path, require_labels=False)
    assert dataset.samples[0].label_path is None


def test_folder_problems(tmp_path):
    image = np.zeros((4, 4), np.uint8)
    write_image(tmp_path / "p" / "a.png", image)
    write_image(tmp_path / "p" / "a_gt.png", np.zeros((4, 5), np.uint8))
    write_image(tmp_path / "p" / "b_gt.png", image)
    write_image(tmp_path / "images" / "c.png", image)
    write_image(tmp_path / "q" / "d.png", image)
    write_image(tmp_path / "q" / "d_gt.png", image)
    write_image(tmp_path / "r" / "d.png", image)
    write_image(tmp_path / "r" / "d_gt.png", image)
    write_image(tmp_path / "q" / "seq.nii.gz", np.zeros((3, 4, 4), np.uint8))
    write_image(tmp_path / "q" / "seq_gt.nii.gz", np.zeros((3, 4, 4), np.uint8))
    dataset = open_dataset(tmp_path, strict=False)
    assert dataset.problems == [
        f"{tmp_path}/images/c.png: missing label map (expected labels/c.png or c_gt.png)",
        f"{tmp_path}/p/b_gt.png: label map without an image",
        f"{tmp_path}/p/a_gt.png: label map size 4x5 does not match image size 4x4 (HxW, a.png)",
        f"{tmp_path}/q/seq.nii.gz: expected a 2D image, got a sequence of 3 frames of 4x4",
        f"{tmp_path}/r/d.png: duplicate id 'd' (also {tmp_path}/q/d.png)",
    ]
    assert [s.image_path for s in dataset.samples] == [tmp_path / "q" / "d.png"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "{root}/missing: no such folder"),
        (lambda root: (root / "missing").mkdir(), "{root}/missing: empty folder"),
        (lambda root: (root / "missing").mkdir() or (root / "missing" / "notes.txt").write_text(
            "x"), "{root}/missing: no image files found"),
        (lambda root: (root / "missing").write_text("x"), "{root}/missing: not a folder"),
    ],
    ids=["absent", "empty", "no-images", "file"],
)
def test_unusable_root(tmp_path, setup, message):
    setup(tmp_path)
    for strict in (True, False):
        with pytest.raises(DataError) as err:
            open_dataset(tmp_path / "missing", strict=strict)
        assert str(err.value) == message.format(root=tmp_path)


def test_hidden_files_are_ignored(tmp_path, samples_root):
    write_image(tmp_path / "x.png", read_image(samples_root / "patient0001" /
                                               "patient0001_2CH_ED.png")[0])
    write_image(tmp_path / "x_gt.png", np.zeros((224, 224), np.uint8))
    (tmp_path / ".thumbs").mkdir()
    (tmp_path / ".thumbs" / "y.png").write_bytes(b"junk")
    (tmp_path / "._x.png").write_bytes(b"junk")  # macOS resource fork
    assert [s.id for s in open_dataset(tmp_path).samples] == ["x"]
