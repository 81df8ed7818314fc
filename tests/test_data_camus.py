"""The original CAMUS layouts (2023 NIfTI, 2019 MetaImage), read back value for value."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from echoseg.data.camus import parse_info_cfg
from echoseg.data.dataset import open_dataset
from echoseg.data.pairs import read_pair
from echoseg.data.readers import write_image
from echoseg.errors import DataError


@pytest.mark.parametrize("release", ["camus2023", "camus2019"])
def test_release_reads_back_exactly(release, request):
    data = request.getfixturevalue(release)
    dataset = open_dataset(data.root)
    assert dataset.layout == "camus"
    assert dataset.patients == ["patient0001", "patient0002", "patient0003"]
    assert [s.id for s in dataset.samples] == sorted(data.images)
    for sample in dataset.samples:
        patient, view, phase = sample.id.split("_")
        assert (sample.patient, sample.view, sample.phase) == (patient, view, phase)
        assert sample.spacing == data.spacing == (0.308, 0.154)
        assert sample.native_size == data.sizes[view]
        assert dict(sample.info) == data.info[(patient, view)]
        image, label = read_pair(sample)
        np.testing.assert_array_equal(image, data.images[sample.id])
        np.testing.assert_array_equal(label, data.labels[sample.id])
        assert label.dtype == np.uint8


def test_2023_info_types_sequences_and_split_folder(camus2023):
    sizes, spacing, n_frames = camus2023.sizes, camus2023.spacing, camus2023.n_frames
    dataset = open_dataset(camus2023.root)
    info = dataset.samples[0].info
    assert info == {"ED": 1, "ES": 10, "NbFrame": 11, "Sex": "M", "Age": 50,
                    "ImageQuality": "Good", "EF": 55, "FrameRate": 25.5}
    assert [type(info[k]) for k in ("ED", "Sex", "FrameRate")] == [int, str, float]
    assert [(q.id, q.kind, q.n_frames, q.native_size, q.spacing) for q in dataset.sequences] == [
        ("patient0001_2CH_half_sequence", "half_sequence", n_frames, sizes["2CH"], spacing),
        ("patient0001_4CH_half_sequence", "half_sequence", n_frames, sizes["4CH"], spacing),
    ]
    assert all(q.label_path and q.label_path.name.endswith("_gt.nii.gz")
               for q in dataset.sequences)
    # data-loader workers and Ray executors receive samples pickled
    assert pickle.loads(pickle.dumps(dataset.samples)) == dataset.samples
    assert pickle.loads(pickle.dumps(dataset.sequences)) == dataset.sequences
    assert dataset.split_file == camus2023.root / "database_split"
    # pointing at database_nifti itself finds the same samples and the sibling split folder
    inner = open_dataset(camus2023.patients_dir)
    assert [s.id for s in inner.samples] == [s.id for s in dataset.samples]
    assert inner.split_file == camus2023.root / "database_split"


def test_2019_info_keys_and_full_sequences(camus2019):
    dataset = open_dataset(camus2019.root)
    assert dict(dataset.select(["patient0002"])[0].info) == {
        "ED": 1, "ES": 12, "NbFrame": 15, "LVedv": 91.5, "LVesv": 40.25, "LVef": 55.5,
        "ImageQuality": "Medium"}
    assert [(q.kind, q.n_frames, q.label_path) for q in dataset.sequences] == [
        ("sequence", camus2019.n_frames, None)] * 2
    assert dataset.split_file is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ED: 1\nES 12\n", "line 2: expected 'Key: value', got 'ES 12'"),
        ("ED: 1\nED: 2\n", "line 2: duplicate key 'ED'"),
        ("ED: one\n", "line 1: ED must be a number, got 'one'"),
        ("ED: 1\nES: 20\nNbFrame: 15\n", "ES = 20 is beyond NbFrame = 15"),
        ("\n\n", "empty Info cfg"),
    ],
)
def test_malformed_info_cfg(tmp_path, text, problem):
    path = tmp_path / "Info_2CH.cfg"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        parse_info_cfg(path)
    assert str(err.value) == f"{path}: {problem}"


def test_problems_in_a_camus_release_are_all_collected(camus2023):
    folder = camus2023.patients_dir
    (folder / "patient0002" / "Info_4CH.cfg").write_text("ED: 1\ngarbage\n")
    (folder / "patient0003" / "patient0003_2CH_ES_gt.nii.gz").unlink()
    (folder / "patient0003" / "patient0003_4CH_ED.nii.gz").unlink()
    dataset = open_dataset(camus2023.root, strict=False)
    assert dataset.problems == [
        f"{folder}/patient0002/Info_4CH.cfg: line 2: expected 'Key: value', got 'garbage'",
        f"{folder}/patient0003/patient0003_2CH_ES.nii.gz: missing label map "
        "(patient0003_2CH_ES_gt.nii.gz)",
        f"{folder}/patient0003/patient0003_4CH_ED_gt.nii.gz: label map without an image",
    ]
    assert len(dataset.samples) == 10
    with pytest.raises(DataError, match=r"Info_4CH\.cfg: line 2: .* \(and 2 more problems"):
        open_dataset(camus2023.root)


def test_duplicate_ids_across_formats(camus2023):
    folder = camus2023.patients_dir / "patient0001"
    write_image(folder / "patient0001_2CH_ED.mhd", camus2023.images["patient0001_2CH_ED"])
    write_image(folder / "patient0001_2CH_ED_gt.mhd", camus2023.labels["patient0001_2CH_ED"])
    dataset = open_dataset(camus2023.root, strict=False)
    assert dataset.problems == [f"{folder}/patient0001_2CH_ED.nii.gz: duplicate id "
                                f"'patient0001_2CH_ED' (also {folder}/patient0001_2CH_ED.mhd)"]
    assert len(dataset.samples) == 12
