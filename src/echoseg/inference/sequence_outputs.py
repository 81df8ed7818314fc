"""What `echoseg predict` writes for a 2D+t input beyond its label maps, and for a patient
whose two CAMUS views were both given as sequences.

For a sequence with key K:

- ``K_sequence.json``: the LV area curve (mm² with spacing, else px²), ED/ES per cycle, frames
  flagged as segmentation failures, FAC, frame-to-frame Dice per structure and flicker frames
  (``echoseg.clinical.sequence.sequence_summary``), the frames the calibrated quality flag
  flagged (``quality_flagged_frames``, 0-based; null when the model has no quality
  thresholds, see ``echoseg.metrics.quality``) and, for a CAMUS sequence whose
  ``Info_<view>.cfg`` lies beside it, the detected minus the Info cfg's ED/ES frames (for a
  DICOM with an R Wave Pointer, the detected minus its end-diastole frames);
- ``K_curve.png`` (the curve with the chosen frames) and ``K_temporal.png`` (frame-to-frame Dice,
  flicker shaded);
- ``K_overlay.avi``, for a video input: an MJPG overlay video at its frame rate, for a quick
  look beside the frame folder.

For a patient with both ``patientX_2CH_*sequence`` and ``patientX_4CH_*sequence`` among the
inputs: ``patientX_ef.json`` with EDV, ESV and EF by the biplane method of disks from each
view's own ED and ES frames, the volume curve (each 4CH frame matched to a 2CH frame by its
position in the recording) and the Info cfg's reference values when present.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from echoseg.data.camus import parse_info_cfg
from echoseg.data.names import VIDEO_EXTENSIONS, parse_camus_stem, split_extension
from echoseg.data.readers import Spacing
from echoseg.errors import DataError, EchosegError
from echoseg.evaluation.writers import write_text
from echoseg.labels import LV

REFERENCE_KEYS = ("LVedv", "LVesv", "LVef")


@dataclass
class SequenceResult:
    """One segmented sequence kept for the patient-level measurement: its labels (T, H, W),
    cropped to the bounding box of all their foreground,
    spacing (mm, row/col) or None, and its detected ED and ES frames (0-based)."""

    labels: np.ndarray
    spacing: Spacing
    ed: int
    es: int


def camus_sequence(path: Path) -> tuple[str, str] | None:
    """(patient, view) of a CAMUS sequence file name (``patient0001_4CH_half_sequence.nii.gz``,
    ``..._sequence.mhd``), else None."""
    parsed = parse_camus_stem(split_extension(path)[0])
    if parsed is None or parsed[3] or parsed[2] not in ("half_sequence", "sequence"):
        return None
    return parsed[0], parsed[1]


def info_in(folder: Path, view: str) -> dict | None:
    """The fields of ``Info_<view>.cfg`` in ``folder``, or None when absent or broken."""
    info = folder / f"Info_{view}.cfg"
    if not info.is_file():
        return None
    try:
        return parse_info_cfg(info)
    except EchosegError:
        return None


def write_sequence_outputs(out_dir: Path, key: str, input_path: Path, frames: list[np.ndarray],
                           labels: list[np.ndarray], spacing: Spacing,
                           frame_time_ms: float | None,
                           quality_flagged: list[int] | None = None,
                           r_wave_frames: tuple[int, ...] = ()) -> SequenceResult | None:
    """Write K_sequence.json, K_curve.png, K_temporal.png (and K_overlay.avi for a video
    input) for one sequence; ``quality_flagged``: the frames the quality flag flagged (None:
    no quality thresholds); ``r_wave_frames``: 0-based end-diastole frames the file marks
    (DICOM R Wave Pointer), the reference when no Info cfg gives ED and ES. Returns what the
    patient-level measurement needs (None when no ED or ES frame was found). Raises
    EchosegError (DataError) or ValueError when the sequence cannot be analysed."""
    from echoseg.clinical.figures import curve_figure, temporal_figure
    from echoseg.clinical.sequence import (
        PhaseReference,
        analyse_sequence,
        curve_unit,
        reference_phases,
    )

    volume = np.stack(labels)
    if not (volume == LV).any():
        raise DataError("no LV in any frame")
    reference = None
    camus = camus_sequence(input_path)
    info = info_in(input_path.parent, camus[1]) if camus else None
    if info is not None and "ED" in info and "ES" in info:
        reference = reference_phases(info, f"Info_{camus[1]}.cfg")
        reference = reference if max(*reference.ed, *reference.es) < len(volume) else None
    elif r_wave_frames:
        reference = PhaseReference(tuple(r_wave_frames), (), "DICOM R Wave Pointer")
    if reference is not None:
        reference = reference.within(len(volume))
    rows, cols = np.flatnonzero(volume.any(axis=(0, 2))), np.flatnonzero(volume.any(axis=(0, 1)))
    # every measure below is the same on the labels' bounding box, which is cheaper to scan
    volume = volume[:, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    analysis = analyse_sequence(volume, spacing, frame_time_ms, reference=reference)
    summary, phases = analysis.summary, analysis.phases
    summary["quality_flagged_frames"] = quality_flagged
    summary["input"] = str(input_path)
    write_text(out_dir / f"{key}_sequence.json", json.dumps(summary, indent=1) + "\n")
    curve_figure(analysis.areas, phases, out_dir / f"{key}_curve.png", unit=curve_unit(spacing),
                 reference=reference, title=f"{key}: LV area")
    temporal_figure(analysis.dice, out_dir / f"{key}_temporal.png",
                    flicker=summary["flicker_frames"], frame_time_ms=frame_time_ms,
                    title=f"{key}: frame-to-frame Dice")
    if split_extension(input_path)[1] in VIDEO_EXTENSIONS:
        from echoseg.io.video import write_overlay_video

        fps = None if frame_time_ms is None else 1000.0 / frame_time_ms
        write_overlay_video(out_dir / f"{key}_overlay.avi", np.stack(frames), np.stack(labels),
                            fps)
    if phases.ed_frame is None or phases.es_frame is None:
        return None
    return SequenceResult(volume, spacing, int(phases.ed_frame), int(phases.es_frame))


def write_patient_ef(out_dir: Path, patient: str, views: dict[str, SequenceResult],
                     folder: Path) -> Path:
    """Write ``<patient>_ef.json`` from the 2CH and 4CH sequences of one patient (``views``:
    view -> result; ``folder`` holds their Info cfgs, if any); returns its path."""
    from echoseg.clinical import frame_volume, patient_measurements

    measured = patient_measurements({(view, phase): (r.labels[frame], r.spacing)
                                     for view, r in views.items()
                                     for phase, frame in (("ED", r.ed), ("ES", r.es))},
                                    patient=patient)
    a2c, a4c = views["2CH"], views["4CH"]
    matched = np.rint(np.linspace(0, len(a4c.labels) - 1, len(a2c.labels))).astype(int)
    curve = []
    for t, u in enumerate(matched):
        try:
            curve.append(frame_volume(a2c.labels[t], a4c.labels[u], a2c.spacing, a4c.spacing))
        except (EchosegError, ValueError):
            curve.append(None)
    result = {**measured.to_dict(), "frames": {v: {"ED": r.ed, "ES": r.es}
                                                for v, r in views.items()},
              "volume_curve": [None if v is None or not np.isfinite(v) else float(v)
                               for v in curve],
              "volume_curve_frames": "the 2CH frames; 4CH frame matched by its position "
                                     "in the recording",
              "reference": _reference(folder)}
    return write_text(out_dir / f"{patient}_ef.json", json.dumps(result, indent=1) + "\n")


def _reference(folder: Path) -> dict | None:
    """EDV, ESV (mL) and EF (%) from the Info cfgs in ``folder`` (the 4CH one first)."""
    for view in ("4CH", "2CH"):
        info = info_in(folder, view)
        if info and all(k in info for k in REFERENCE_KEYS):
            return {"edv": info["LVedv"], "esv": info["LVesv"], "ef": info["LVef"],
                    "source": f"Info_{view}.cfg"}
    return None
