"""Segment files: read each input, batch frames across files, write outputs and CSV rows.

A failure confined to one file (unreadable, unsupported shape, cannot be written) is reported
through ``on_error`` and that file is skipped; the others are still processed.

When an input records an imaging region (a DICOM Sequence of Ultrasound Regions, see
``echoseg.io.dicom``), the segmenter sees only that part of each frame, so text, ECG traces
and rulers around the sector do not disturb it; its label maps are pasted back into the full
frame (label 0 outside the region), and outputs, CSV rows and overlays are at full frame size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from echoseg.atomic import WriteError, failure_reason
from echoseg.data.names import PIL_EXTENSIONS, split_extension
from echoseg.data.preprocess import fill_non_finite
from echoseg.data.readers import Spacing
from echoseg.errors import DataError, EchosegError
from echoseg.evaluation.writers import per_image_csv, write_text
from echoseg.inference.files import InputFile, output_extension
from echoseg.inference.outputs import (
    frame_row,
    plausibility_map,
    relative_output,
    write_outputs,
)
from echoseg.inference.sequence_outputs import (
    camus_sequence,
    write_patient_ef,
    write_sequence_outputs,
)
from echoseg.io import Region, crop_region, paste_region, read_scan

if TYPE_CHECKING:
    from echoseg.inference.segmenter import Segmenter

CSV_NAME = "predictions.csv"


@dataclass
class Loaded:
    """An input read into memory: its frames (2D arrays at full frame size), spacing (mm,
    row/col) or None, whether it is a sequence (written as one (T, H, W) label map), one note
    per frame for the CSV ("" when nothing was changed), the imaging ``region`` to segment
    (row0, row1, col0, col1, half-open, or None for the whole frame) and the time between
    frames in ms (``frame_time_ms``, from the file, or None) and the end-diastole frames the
    file marks (``r_wave_frames``, 0-based: a DICOM R Wave Pointer; () when none)."""

    file: InputFile
    frames: list[np.ndarray]
    spacing: Spacing
    sequence: bool
    notes: list[str] = field(default_factory=list)
    region: Region | None = None
    frame_time_ms: float | None = None
    r_wave_frames: tuple[int, ...] = ()

    def model_frames(self) -> list[np.ndarray]:
        """The frames as the segmenter sees them: cropped to ``region``."""
        return [crop_region(frame, self.region) for frame in self.frames]

    def full_labels(self, labels: list[np.ndarray]) -> list[np.ndarray]:
        """Label maps of :meth:`model_frames` pasted back at full frame size (0 outside)."""
        return [paste_region(lbl, self.region, frame.shape[:2])
                for lbl, frame in zip(labels, self.frames, strict=True)]


def load_input(file: InputFile) -> Loaded:
    """Read one input; raises DataError naming the file when it cannot be segmented.

    Non-finite pixels of each frame are set to that frame's minimum
    (``echoseg.data.preprocess.fill_non_finite``) and counted in the frame's note; a crop to
    the imaging region is noted too.
    """
    scan = read_scan(file.path)
    array = scan.array
    if array.ndim == 3 and split_extension(file.path)[1] in PIL_EXTENSIONS:
        raise DataError(f"{file.path}: multi-frame {split_extension(file.path)[1]} images are "
                        "not supported (give sequences as NIfTI, MetaImage or DICOM)")
    if array.ndim not in (2, 3) or 0 in array.shape:
        raise DataError(f"{file.path}: expected a 2D image or a 2D+t sequence, got shape "
                        f"{array.shape}")
    frames, notes = [], []
    for t, frame in enumerate(array if array.ndim == 3 else [array]):
        try:
            frame, count = fill_non_finite(frame)
        except ValueError:
            raise DataError(f"{file.path}: cannot read image (no finite pixel values in frame "
                            f"{t})") from None
        frames.append(frame)
        parts = [f"{count} non-finite pixel{'s' * (count > 1)} set to the image minimum"
                 ] if count else []
        notes.append("; ".join(parts + _region_note(scan.region)))
    return Loaded(file, frames, scan.spacing, array.ndim == 3, notes, scan.region,
                  scan.frame_time_ms, scan.r_wave_frames)


def _region_note(region: Region | None) -> list[str]:
    if region is None:
        return []
    row0, row1, col0, col1 = region
    return [f"segmented inside the ultrasound region (rows {row0}-{row1 - 1}, columns "
            f"{col0}-{col1 - 1}); label 0 outside"]


@dataclass
class FilePredictor:
    """Runs a segmenter over input files, writing outputs under ``out_dir``.

    ``segmenter`` has ``predict_batch(images, batch_size) -> label maps`` (a
    :class:`~echoseg.inference.Segmenter`). Frames of consecutive files are pooled into model
    calls of ``batch_size``. ``rows`` collects one CSV row per frame, ``failures`` one line per
    file that failed; ``on_error(line)`` is called at each failure, ``on_file(path)`` when a
    file is done (written or failed). ``seconds`` in a row is the segmentation time of its
    frame (model call with pre- and post-processing; a batch's time split over its frames),
    file reading and writing excluded.
    """

    segmenter: Segmenter
    out_dir: Path
    batch_size: int = 8
    on_error: Callable[[str], None] = lambda line: None
    on_file: Callable[[Path], None] = lambda path: None
    on_note: Callable[[str], None] = lambda line: None
    rows: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _patients: dict = field(default_factory=dict)  # patient -> {view: SequenceResult}, folder

    def run(self, files: list[InputFile]) -> None:
        """Segment every file, in order; failures are recorded, not raised."""
        pending: list[Loaded] = []
        for file in files:
            try:
                pending.append(load_input(file))
            except EchosegError as exc:
                self._fail(file, str(exc))
                continue
            if sum(len(p.frames) for p in pending) >= self.batch_size:
                self._flush(pending)
                pending = []
        self._flush(pending)
        self._write_patients()

    def write_csv(self) -> Path | None:
        """Write ``out_dir/predictions.csv`` atomically (when any frame was segmented); returns
        its path, or None. Raises WriteError naming it (an old one unchanged) on a disk error."""
        if not self.rows:
            return None
        return write_text(self.out_dir / CSV_NAME, per_image_csv(self.rows))

    def _fail(self, file: InputFile, message: str) -> None:
        line = message if str(file.path) in message else f"{file.path}: {message}"
        self.failures.append(line)
        self.on_error(line)
        self.on_file(file.path)

    def _flush(self, pending: list[Loaded]) -> None:
        if not pending:
            return
        frames = [f for p in pending for f in p.model_frames()]
        start = time.perf_counter()
        try:
            labels = self.segmenter.predict_batch(frames, batch_size=self.batch_size)
        except (RuntimeError, ValueError, MemoryError) as exc:  # e.g. out of GPU memory
            reason = failure_reason(exc)
            for p in pending:
                self._fail(p.file, f"segmentation failed ({reason})")
            return
        per_frame = (time.perf_counter() - start) / len(frames)
        offset = 0
        for p in pending:
            own = labels[offset:offset + len(p.frames)]
            offset += len(p.frames)
            self._write(p, p.full_labels(own), per_frame)

    def _checked(self, labels: np.ndarray, region: Region | None) -> np.ndarray | None:
        size = getattr(self.segmenter, "size", None)
        return None if size is None else plausibility_map(labels, region, size)

    def _write(self, loaded: Loaded, labels: list[np.ndarray], seconds: float) -> None:
        file = loaded.file
        try:
            seg_path = write_outputs(self.out_dir, file.key, output_extension(file.path),
                                     loaded.frames, labels, loaded.spacing, loaded.sequence)
        except WriteError as exc:  # the old outputs, if any, are unchanged
            self._fail(file, f"cannot write {exc.path} ({exc.reason})")
            return
        except (OSError, ValueError, RuntimeError) as exc:
            self._fail(file, f"cannot write outputs ({failure_reason(exc)})")
            return
        output = relative_output(seg_path, self.out_dir)
        quality = getattr(self.segmenter, "quality", None)
        own = [frame_row(file.path, t, output, lbl, loaded.spacing, seconds,
                         note=loaded.notes[t] if t < len(loaded.notes) else "",
                         runtime=getattr(self.segmenter, "runtime", ""),
                         checked=self._checked(lbl, loaded.region), quality=quality)
               for t, lbl in enumerate(labels)]
        self.rows.extend(own)
        if loaded.sequence:
            flagged = None if quality is None else [t for t, row in enumerate(own)
                                                    if not row["quality_ok"]]
            self._write_sequence(loaded, labels, flagged)
        self.on_file(file.path)

    def _note(self, line: str) -> None:
        self.notes.append(line)
        self.on_note(line)

    def _write_sequence(self, loaded: Loaded, labels: list[np.ndarray],
                        quality_flagged: list[int] | None = None) -> None:
        """Curves, ED/ES and consistency of a sequence (with the frames the quality flag
        flagged, None without quality thresholds); a sequence that cannot be analysed keeps
        its label maps and gets a note."""
        file = loaded.file
        try:
            result = write_sequence_outputs(self.out_dir, file.key, file.path, loaded.frames,
                                            labels, loaded.spacing, loaded.frame_time_ms,
                                            quality_flagged=quality_flagged,
                                            r_wave_frames=loaded.r_wave_frames)
        except (EchosegError, WriteError, ValueError, OSError) as exc:
            self._note(f"{file.path}: no sequence analysis ({failure_reason(exc)})")
            return
        camus = camus_sequence(file.path)
        if camus and result is not None:
            views, _ = self._patients.setdefault(camus[0], ({}, file.path.parent))
            views[camus[1]] = result

    def _write_patients(self) -> None:
        """``<patient>_ef.json`` for each patient whose 2CH and 4CH sequences were both given."""
        for patient, (views, folder) in sorted(self._patients.items()):
            if {"2CH", "4CH"} <= set(views):
                try:
                    write_patient_ef(self.out_dir, patient, views, folder)
                except (EchosegError, WriteError, ValueError, OSError) as exc:
                    self._note(f"{patient}: no volumes or EF ({failure_reason(exc)})")
        self._patients.clear()
