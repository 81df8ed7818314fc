"""The EchoNet-Dynamic layout, written here: videos of a beating ellipse traced at ED and ES."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest

from echoseg.cli import main
from echoseg.data import echonet
from echoseg.data.dataset import open_dataset
from echoseg.data.echonet import (
    echonet_reference,
    polygon_area,
    polygon_mask,
    tracing_label,
    tracing_polygon,
)
from echoseg.data.pairs import read_pair
from echoseg.data.splits import resolve_splits
from echoseg.errors import DataError
from echoseg.io import video as video_io

SIZE, N_FRAMES, FPS = 112, 30, 50.0
ED_FRAME, ES_FRAME = 5, 20
CENTRE = (56.0, 60.0)  # x, y in pixels
N_CHORDS = 20


def semi_axes(t: int) -> tuple[float, float]:
    """(across, along the long axis) semi-axes in pixels at frame t: largest at ED, least at ES."""
    s = 0.5 + 0.5 * math.cos(2 * math.pi * (t - ED_FRAME) / N_FRAMES)
    return 14 + 6 * s, 28 + 8 * s


def chords(t: int, tilt_deg: float) -> list[tuple[float, float, float, float]]:
    """The long axis (apex to base), then N_CHORDS chords across the ellipse at frame t."""
    a, b = semi_axes(t)
    cos, sin = math.cos(math.radians(tilt_deg)), math.sin(math.radians(tilt_deg))

    def world(u: float, v: float) -> tuple[float, float]:  # u across, v along (down)
        return CENTRE[0] + u * cos - v * sin, CENTRE[1] + u * sin + v * cos

    rows = [(*world(0, -b), *world(0, b))]
    for i in range(N_CHORDS):
        v = -b + (i + 0.5) * 2 * b / N_CHORDS
        half = a * math.sqrt(max(0.0, 1 - (v / b) ** 2))
        rows.append((*world(-half, v), *world(half, v)))
    return rows


@dataclass
class EchoNetFolder:
    root: Path
    names: list[str]
    splits: dict[str, str]
    reference: dict[str, dict[str, float]]
    tilts: dict[str, float] = field(default_factory=dict)


def write_video(path: Path, tilt_deg: float, n_frames: int = N_FRAMES) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (SIZE, SIZE), True)
    assert writer.isOpened()
    rng = np.random.default_rng(0)
    for t in range(n_frames):
        frame = rng.integers(0, 30, (SIZE, SIZE), dtype=np.uint8)
        a, b = semi_axes(t)
        cv2.ellipse(frame, (round(CENTRE[0]), round(CENTRE[1])), (round(a), round(b)),
                    tilt_deg, 0, 360, 200, -1)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()


def write_tracings(path: Path, videos: dict[str, float], extra_rows: list | None = None) -> None:
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["FileName", "X1", "Y1", "X2", "Y2", "Frame"])
        for name, tilt in videos.items():
            for frame in (ES_FRAME, ED_FRAME):  # ES first, as in the real file
                for row in chords(frame, tilt):
                    out.writerow([f"{name}.avi", *(f"{v:.4f}" for v in row), frame])
        for row in extra_rows or []:
            out.writerow(row)


@pytest.fixture
def echonet_folder(tmp_path) -> EchoNetFolder:
    root = tmp_path / "EchoNet-Dynamic"
    (root / "Videos").mkdir(parents=True)
    names = ["0X1A2B3C4D5E6F7A80", "0X2B3C4D5E6F7A8091", "0X3C4D5E6F7A8091A2"]
    tilts = dict(zip(names, (0.0, 15.0, -10.0), strict=True))
    splits = dict(zip(names, ("TRAIN", "VAL", "TEST"), strict=True))
    reference = {n: {"ef": 55.0 + i, "edv": 120.0 + i, "esv": 54.0 + i}
                 for i, n in enumerate(names)}
    with (root / "FileList.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS",
                      "NumberOfFrames", "Split"])
        for i, name in enumerate(names):
            ref = reference[name]
            file_name = f"{name}.avi" if i == 2 else name  # FileName may lack .avi
            out.writerow([file_name, ref["ef"], ref["esv"], ref["edv"], SIZE, SIZE, FPS,
                          N_FRAMES, splits[name]])
    for name in names:
        write_video(root / "Videos" / f"{name}.avi", tilts[name])
    write_tracings(root / "VolumeTracings.csv", tilts)
    return EchoNetFolder(root, names, splits, reference, tilts)


def test_samples_labels_and_phases(echonet_folder):
    dataset = open_dataset(echonet_folder.root)
    assert dataset.layout == "echonet" and dataset.structures == ("LV",)
    assert dataset.patients == echonet_folder.names
    assert [s.id for s in dataset.samples] == [f"{n}_{p}" for n in echonet_folder.names
                                               for p in ("ED", "ES")]
    for sample in dataset.samples:
        assert (sample.view, sample.spacing, sample.native_size) == ("4CH", None, (SIZE, SIZE))
        frame = ED_FRAME if sample.phase == "ED" else ES_FRAME
        assert sample.info["Frame"] == frame
        assert sample.info["Split"] == echonet_folder.splits[sample.patient]
        image, label = read_pair(sample)
        assert image.shape == label.shape == (SIZE, SIZE) and label.dtype == np.uint8
        assert set(np.unique(label)) == {0, 1}
        a, b = semi_axes(frame)
        assert np.count_nonzero(label) == pytest.approx(math.pi * a * b, rel=0.04)
        video_frame = video_io.read_video_frames(
            echonet_folder.root / "Videos" / f"{sample.patient}.avi", [frame])[frame]
        np.testing.assert_array_equal(image, video_frame)
        inside = image[label == 1].astype(float).mean()
        outside = image[label == 0].astype(float).mean()
        assert inside > 150 and outside < 60  # the label covers the bright ellipse


def test_sequences_splits_and_reference(echonet_folder):
    dataset = open_dataset(echonet_folder.root)
    assert [(q.id, q.kind, q.n_frames, q.native_size) for q in dataset.sequences] == [
        (n, "video", N_FRAMES, (SIZE, SIZE)) for n in echonet_folder.names]
    assert dataset.sequences[0].info["FPS"] == FPS
    assert dataset.sequences[0].info["NumberOfFrames"] == N_FRAMES
    splits = resolve_splits(dataset)
    by_split = {v.lower(): [k] for k, v in echonet_folder.splits.items()}
    assert splits == by_split
    assert echonet_reference(echonet_folder.root) == echonet_folder.reference


def test_nothing_written_into_the_dataset_and_cache_reused(echonet_folder, monkeypatch):
    before = sorted(p for p in echonet_folder.root.rglob("*"))
    first = open_dataset(echonet_folder.root)
    assert sorted(p for p in echonet_folder.root.rglob("*")) == before
    assert all(echonet_folder.root not in s.image_path.parents for s in first.samples)

    def no_decoding(*args, **kwargs):
        raise AssertionError("frames decoded again")

    monkeypatch.setattr(video_io, "read_video_frames", no_decoding)
    again = open_dataset(echonet_folder.root)
    assert [s.image_path for s in again.samples] == [s.image_path for s in first.samples]


def test_changed_tracing_gives_new_label(echonet_folder):
    old = {s.id: s.label_path for s in open_dataset(echonet_folder.root).samples}
    tilts = dict(echonet_folder.tilts)
    tilts[echonet_folder.names[0]] = 30.0
    write_tracings(echonet_folder.root / "VolumeTracings.csv", tilts)
    new = {s.id: s.label_path for s in open_dataset(echonet_folder.root).samples}
    changed = [i for i in old if old[i] != new[i]]
    assert changed == [f"{echonet_folder.names[0]}_ED", f"{echonet_folder.names[0]}_ES"]
    assert not any(old[i].exists() for i in changed)  # superseded files removed


def test_area_decides_ed_not_row_order(echonet_folder):
    name = echonet_folder.names[0]
    path = echonet_folder.root / "VolumeTracings.csv"
    rows = path.read_text().splitlines()
    body = [r for r in rows[1:] if r.startswith(name)]
    es_rows = [r for r in body if r.endswith(f",{ES_FRAME}")]
    ed_rows = [r for r in body if r.endswith(f",{ED_FRAME}")]
    rest = [r for r in rows[1:] if not r.startswith(name)]
    path.write_text("\n".join([rows[0], *ed_rows, *es_rows, *rest]) + "\n")
    phases = {s.phase: s.info["Frame"] for s in open_dataset(echonet_folder.root).samples
              if s.patient == name}
    assert phases == {"ED": ED_FRAME, "ES": ES_FRAME}


def test_video_with_one_traced_frame_has_no_samples(echonet_folder):
    path = echonet_folder.root / "VolumeTracings.csv"
    name = echonet_folder.names[1]
    lines = path.read_text().splitlines()
    path.write_text("\n".join(r for r in lines
                              if not (r.startswith(name) and r.endswith(f",{ED_FRAME}"))) + "\n")
    dataset = open_dataset(echonet_folder.root)
    assert name not in dataset.patients and len(dataset.samples) == 4
    assert name in [q.id for q in dataset.sequences]


def test_missing_video(echonet_folder):
    missing = echonet_folder.root / "Videos" / f"{echonet_folder.names[1]}.avi"
    missing.unlink()
    with pytest.raises(DataError, match=rf"^{missing}: cannot read video \(file not found\)$"):
        open_dataset(echonet_folder.root)
    dataset = open_dataset(echonet_folder.root, strict=False)
    assert len(dataset.problems) == 1 and len(dataset.samples) == 4


def test_tracing_beyond_the_video(echonet_folder):
    name = echonet_folder.names[2]
    write_video(echonet_folder.root / "Videos" / f"{name}.avi", 0.0, n_frames=ES_FRAME)
    tracings = echonet_folder.root / "VolumeTracings.csv"
    first_es = 2 + 2 * (N_CHORDS + 1) * 2  # header, then two videos of two frames each
    with pytest.raises(DataError) as err:
        open_dataset(echonet_folder.root)
    assert str(err.value) == (f"{tracings}: line {first_es}: frame {ES_FRAME} of {name}.avi is "
                              f"beyond its {ES_FRAME} frames (frames count from 0)")


@pytest.mark.parametrize("edit, message", [
    (lambda rows: rows.__setitem__(3, rows[3].replace(rows[3].split(",")[1], "abc", 1)),
     r"VolumeTracings.csv: line 4: X1 must be a number, got 'abc'$"),
    (lambda rows: rows.__setitem__(5, "0X1A2B3C4D5E6F7A80.avi,1,2,3"),
     r"VolumeTracings.csv: line 6: expected 6 fields \(FileName,X1,Y1,X2,Y2,Frame\), got 4$"),
    (lambda rows: rows.__setitem__(2, rows[2].rsplit(",", 1)[0] + ",2.5"),
     r"VolumeTracings.csv: line 3: Frame must be a whole number >= 0, got '2.5'$"),
    (lambda rows: rows.__setitem__(0, "FileName,X1,Y1,X2,Y2"),
     r"VolumeTracings.csv: line 1: missing column Frame"),
    (lambda rows: rows.append("0XFFFF.avi,1,2,3,4,0"),
     r"VolumeTracings.csv: line 128: 0XFFFF.avi is not in FileList.csv$"),
])
def test_malformed_tracings(echonet_folder, edit, message):
    path = echonet_folder.root / "VolumeTracings.csv"
    rows = path.read_text().splitlines()
    edit(rows)
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=message) as err:
        open_dataset(echonet_folder.root)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


@pytest.mark.parametrize("edit, message", [
    (lambda rows: rows.__setitem__(2, rows[2].replace(",VAL", ",HOLDOUT")),
     r"FileList.csv: line 3: Split must be TRAIN, VAL or TEST, got 'HOLDOUT'$"),
    (lambda rows: rows.__setitem__(1, rows[1].replace(",55.0,", ",n/a,")),
     r"FileList.csv: line 2: EF must be a number, got 'n/a'$"),
    (lambda rows: rows.append(rows[1]), r"FileList.csv: line 5: FileName 0X1A2B3C4D5E6F7A80 "
                                        "is listed twice$"),
])
def test_malformed_file_list(echonet_folder, edit, message):
    path = echonet_folder.root / "FileList.csv"
    rows = path.read_text().splitlines()
    edit(rows)
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=message):
        open_dataset(echonet_folder.root)
    with pytest.raises(DataError, match=message):
        echonet_reference(echonet_folder.root)


def test_info_command_json(echonet_folder, capsys):
    assert main(["info", str(echonet_folder.root), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["layout"] == "echonet" and summary["n_images"] == 6
    assert summary["labels"] == [0, 1] and summary["splits"] == {"train": 1, "val": 1, "test": 1}
    assert summary["phases"] == {"ED": 3, "ES": 3} and summary["n_sequences"] == 3


def test_polygon_geometry():
    square = np.array([[1.5, 1.5], [5.5, 1.5], [5.5, 4.5], [1.5, 4.5]])  # x, y
    mask = polygon_mask(square, (8, 8))
    assert polygon_area(square) == 12.0 and mask.sum() == 12
    assert mask[2:5, 2:6].all()
    assert polygon_mask(square + 100, (8, 8)).sum() == 0  # outside the image
    rows = [(0, 0, 0, 0), (2, 1, 6, 1), (2, 3, 6, 3)]  # long axis, then two chords
    np.testing.assert_array_equal(tracing_polygon(rows), [[2, 1], [2, 3], [6, 3], [6, 1]])
    label = tracing_label(np.array(rows, dtype=float), (5, 8))
    assert label.dtype == np.uint8 and label.sum() == polygon_area(tracing_polygon(rows)) == 8


def test_layout_detection_needs_all_three(tmp_path, echonet_folder):
    assert echonet.is_echonet_layout(echonet_folder.root)
    (echonet_folder.root / "VolumeTracings.csv").unlink()
    assert not echonet.is_echonet_layout(echonet_folder.root)
