"""Segment files: read each input, batch frames across files, write outputs and CSV rows.

A failure confined to one file (unreadable, unsupported shape, cannot be written) is reported
through ``on_error`` and that file is skipped; the others are still processed.
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
from echoseg.data.readers import Spacing, read_image
from echoseg.errors import DataError, EchosegError
from echoseg.evaluation.writers import per_image_csv, write_text
from echoseg.inference.files import InputFile, output_extension
from echoseg.inference.outputs import frame_row, relative_output, write_outputs

if TYPE_CHECKING:
    from echoseg.inference.segmenter import Segmenter

CSV_NAME = "predictions.csv"


@dataclass
class Loaded:
    """An input read into memory: its frames (2D arrays), spacing (mm, row/col) or None,
    whether it is a sequence (written as one (T, H, W) label map), and one note per frame for
    the CSV ("" when nothing was changed)."""

    file: InputFile
    frames: list[np.ndarray]
    spacing: Spacing
    sequence: bool
    notes: list[str] = field(default_factory=list)


def load_input(file: InputFile) -> Loaded:
    """Read one input; raises DataError naming the file when it cannot be segmented.

    Non-finite pixels of each frame are set to that frame's minimum
    (``echoseg.data.preprocess.fill_non_finite``) and counted in the frame's note.
    """
    array, spacing = read_image(file.path)
    if array.ndim == 3 and split_extension(file.path)[1] in PIL_EXTENSIONS:
        raise DataError(f"{file.path}: multi-frame {split_extension(file.path)[1]} images are "
                        "not supported (give sequences as NIfTI or MetaImage)")
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
        notes.append(f"{count} non-finite pixel{'s' * (count > 1)} set to the image minimum"
                     if count else "")
    return Loaded(file, frames, spacing, array.ndim == 3, notes)


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
    rows: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

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
        frames = [f for p in pending for f in p.frames]
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
            self._write(p, own, per_frame)

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
        for t, lbl in enumerate(labels):
            self.rows.append(frame_row(file.path, t, output, lbl, loaded.spacing, seconds,
                                       note=loaded.notes[t] if t < len(loaded.notes) else "",
                                       runtime=getattr(self.segmenter, "runtime", "")))
        self.on_file(file.path)
