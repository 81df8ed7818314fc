"""What a dataset is made of: 2D image/label pairs (samples) and cine sequences."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    """One 2D image with its label map.

    ``id`` is unique in a dataset (e.g. "patient0001_2CH_ED"); ``spacing`` is the pixel size in mm
    in (row, column) order, None when the file does not record it (PNG); ``native_size`` is the
    image size (H, W) in pixels; ``info`` holds the CAMUS Info cfg fields of the patient and view
    (a plain dict, so samples pickle for data-loader workers; treat it as read-only).
    """

    id: str
    patient: str
    view: str | None
    phase: str | None
    image_path: Path
    label_path: Path | None
    spacing: tuple[float, float] | None
    native_size: tuple[int, int]
    info: Mapping = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class SequenceFile:
    """A 2D+t cine loop (CAMUS half/full sequence); not a training sample.

    ``kind`` is "half_sequence" (2023 release) or "sequence" (2019 release); ``label_path`` is
    its per-frame label file when the release has one; sizes and spacing as in :class:`Sample`.
    """

    id: str
    patient: str
    view: str | None
    kind: str
    path: Path
    label_path: Path | None
    n_frames: int
    spacing: tuple[float, float] | None
    native_size: tuple[int, int]
    info: Mapping = field(default_factory=dict, hash=False)


@dataclass
class Scan:
    """What a layout scanner found: samples, sequences, and one line per problem."""

    samples: list[Sample] = field(default_factory=list)
    sequences: list[SequenceFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
