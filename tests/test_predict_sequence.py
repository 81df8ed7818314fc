"""What `echoseg predict` writes for a sequence: the LV curve with ED/ES, consistency, the
Info cfg's frames compared, EF of a patient whose two views are given, and video overlays."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from echoseg.data.readers import write_image
from echoseg.inference.files import find_inputs
from echoseg.inference.pipeline import FilePredictor
from test_clinical_sequence import filling
from test_clinical_sequence import render as beating_labels
from test_clinical_volumes import half_ellipsoid
from test_clinical_volumes import render as ellipsoid_labels

STEP = 80  # the test images show label k as grey level k * STEP


class LabelEcho:
    """A segmenter that reads the labels back from images drawn as ``label * STEP``."""

    runtime, size, name = "fake", 64, "fake"

    def predict_batch(self, images, batch_size=8):
        return [np.rint(np.asarray(im, np.float32) / STEP).astype(np.uint8) for im in images]


def predict(tmp_path, *paths) -> FilePredictor:
    predictor = FilePredictor(LabelEcho(), tmp_path / "out", 8)
    predictor.run(find_inputs(list(paths)).files)
    return predictor


def test_beating_sequence_gives_curve_phases_and_figures(tmp_path):
    labels = beating_labels(filling(np.arange(51) + 5))  # ES at 3, 23, 43; ED at 15, 35
    write_image(tmp_path / "clip.nii.gz", labels * STEP, (0.5, 0.5))
    predictor = predict(tmp_path, tmp_path / "clip.nii.gz")
    assert not predictor.failures and not predictor.notes
    summary = json.loads((tmp_path / "out" / "clip_sequence.json").read_text())
    assert summary["ed_frames"] == [15, 35] and summary["es_frames"] == [3, 23, 43]
    assert summary["curve_unit"] == "mm2" and summary["n_frames"] == 51
    assert summary["lv_area"][15] == pytest.approx((labels[15] == 1).sum() * 0.25)
    assert summary["flicker_frames"] == [] and summary["reference"] is None
    for name in ("clip_curve.png", "clip_temporal.png"):
        assert (tmp_path / "out" / name).read_bytes()[:4] == b"\x89PNG"


def test_dicom_r_waves_are_the_end_diastole_reference(tmp_path):
    from test_io_dicom import dicom, save

    labels = beating_labels(filling(np.arange(51) + 5))  # ED at 15 and 35
    ds = dicom((labels * STEP).astype(np.uint8), FrameTime=40.0,
               RWavePointer=[15, 37])  # 1-based: frames 14 and 36
    predictor = predict(tmp_path, save(ds, tmp_path / "ecg.dcm"))
    assert not predictor.failures and not predictor.notes
    summary = json.loads((tmp_path / "out" / "ecg_sequence.json").read_text())
    assert summary["ed_frames"] == [15, 35]
    reference = summary["reference"]
    assert reference["source"] == "DICOM R Wave Pointer" and reference["es"] == []
    assert [r["reference"] for r in reference["ed"]] == [14, 36]
    assert [r["difference_frames"] for r in reference["ed"]] == [1, -1]
    assert [r["difference_ms"] for r in reference["ed"]] == [40.0, -40.0]


def camus_half_sequence(folder, view: str, radius_ed: float, radius_es: float, frames: int):
    """A CAMUS-named ED -> ES half sequence of a half-ellipsoid LV: long axis 45 -> 38 mm."""
    spacing = (0.3, 0.3)
    stack = np.stack([ellipsoid_labels(45 - 7 * f, radius_ed + (radius_es - radius_ed) * f,
                                       spacing) for f in np.linspace(0, 1, frames)])
    write_image(folder / f"patient0007_{view}_half_sequence.nii.gz", stack * STEP, spacing)
    (folder / f"Info_{view}.cfg").write_text(f"ED: 1\nES: {frames - 1}\nNbFrame: {frames}\n"
                                             "LVedv: 32.0\nLVesv: 13.4\nLVef: 58.3\n")


def test_both_views_of_a_patient_give_volumes_and_ef(tmp_path):
    camus_half_sequence(tmp_path, "2CH", 17, 12, 9)
    camus_half_sequence(tmp_path, "4CH", 20, 14, 12)
    predictor = predict(tmp_path, tmp_path)
    assert not predictor.failures and not predictor.notes
    result = json.loads((tmp_path / "out" / "patient0007_ef.json").read_text())
    edv, esv = half_ellipsoid(45, 17, 20) / 1000, half_ellipsoid(38, 12, 14) / 1000
    assert result["frames"] == {"2CH": {"ED": 0, "ES": 8}, "4CH": {"ED": 0, "ES": 11}}
    assert result["edv"] == pytest.approx(edv, rel=0.02)
    assert result["esv"] == pytest.approx(esv, rel=0.02)
    assert result["ef"] == pytest.approx(100 * (edv - esv) / edv, abs=1.0)
    assert result["volume_unit"] == "mL" and len(result["volume_curve"]) == 9
    assert result["volume_curve"][0] == pytest.approx(result["edv"], rel=0.01)
    assert result["reference"] == {"edv": 32.0, "esv": 13.4, "ef": 58.3,
                                   "source": "Info_4CH.cfg"}
    summary = json.loads((tmp_path / "out" / "patient0007_4CH_half_sequence_sequence.json")
                         .read_text())
    # the Info cfg says ES is frame 11 (1-based), one before the last: detected 11 (0-based)
    assert summary["reference"]["source"] == "Info_4CH.cfg"
    assert summary["reference"]["ed"][0]["difference_frames"] == 0
    assert summary["reference"]["es"][0]["difference_frames"] == 1


def test_sequence_that_cannot_be_analysed_keeps_its_labels_and_gets_a_note(tmp_path):
    write_image(tmp_path / "empty.nii.gz", np.zeros((4, 32, 32), np.uint8), None)
    predictor = predict(tmp_path, tmp_path / "empty.nii.gz")
    assert not predictor.failures and (tmp_path / "out" / "empty_seg.nii.gz").exists()
    assert len(predictor.notes) == 1 and "no sequence analysis" in predictor.notes[0]
    assert not (tmp_path / "out" / "empty_sequence.json").exists()


def test_video_input_gets_an_overlay_video(tmp_path):
    labels = beating_labels(filling(np.arange(24)))
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20.0,
                             labels.shape[:0:-1], isColor=False)
    for frame in labels:
        writer.write((frame * STEP).astype(np.uint8))
    writer.release()
    predictor = predict(tmp_path, path)
    assert not predictor.failures and len(predictor.rows) == 24
    summary = json.loads((tmp_path / "out" / "clip_sequence.json").read_text())
    assert summary["frame_time_ms"] == pytest.approx(50.0)
    video = cv2.VideoCapture(str(tmp_path / "out" / "clip_overlay.avi"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 24
    video.release()


def test_overlay_videos_are_not_taken_as_inputs(tmp_path):
    for name in ("clip_overlay.avi", "clip_overlay.png", "clip.avi"):
        (tmp_path / name).write_bytes(b"")
    found = find_inputs([tmp_path])
    assert [f.path.name for f in found.files] == ["clip.avi"]
    assert sorted(p.name for p in found.skipped_outputs) == ["clip_overlay.avi",
                                                             "clip_overlay.png"]
