"""One entry point for every layout: ``open_dataset(root)`` finds the samples below a folder."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from echoseg.data.camus import is_camus_layout, scan_camus
from echoseg.data.echonet import STRUCTURES as ECHONET_STRUCTURES
from echoseg.data.echonet import is_echonet_layout, scan_echonet
from echoseg.data.folder import scan_folder
from echoseg.data.names import is_image_file
from echoseg.data.sample import Sample, Scan, SequenceFile
from echoseg.data.splits import find_split_file, join_some
from echoseg.errors import DataError
from echoseg.labels import STRUCTURES

ALL_STRUCTURES = tuple(STRUCTURES)  # ("LV", "MYO", "LA")


@dataclass
class EchoDataset:
    """The samples found below ``root``.

    ``layout`` is "camus" (original CAMUS release), "echonet" (EchoNet-Dynamic: FileList.csv,
    VolumeTracings.csv, Videos/) or "folder" (image/label pairs); ``samples`` are sorted by id,
    ``sequences`` (CAMUS cine loops, EchoNet videos) too; ``problems`` has one line per problem
    found (empty unless opened with strict=False); ``split_file`` is the splits.json or CAMUS
    subgroup folder found at the root (for EchoNet, FileList.csv's splits saved as JSON in the
    cache), or None; ``structures`` names the structures the label maps outline (EchoNet: LV
    only), so that scores of the others can be left out.
    """

    root: Path
    layout: str
    samples: list[Sample]
    sequences: list[SequenceFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    split_file: Path | None = None
    structures: tuple[str, ...] = ALL_STRUCTURES

    @property
    def patients(self) -> list[str]:
        """Sorted patient names of the samples."""
        return sorted({s.patient for s in self.samples})

    def select(self, patients: Iterable[str]) -> list[Sample]:
        """The samples of ``patients``, in dataset (id) order.

        Raises DataError when a patient has no sample in this dataset.
        """
        wanted = set(patients)
        missing = sorted(wanted - {s.patient for s in self.samples})
        if missing:
            raise DataError(f"{self.root}: patients not in the dataset: {join_some(missing)}")
        return [s for s in self.samples if s.patient in wanted]

    def __len__(self) -> int:
        return len(self.samples)


def open_dataset(root: Path | str, *, strict: bool = True, require_labels: bool = True,
                 workers: int | None = None) -> EchoDataset:
    """Detect the layout of ``root`` and list its samples, reading file headers only.

    With ``strict`` the first problem raises DataError (one line naming the file); otherwise
    every problem is collected in ``dataset.problems``. ``require_labels=False`` accepts images
    without label maps (their ``label_path`` is None). Pixel values are not decoded: see
    ``echoseg.data.check.check`` for that; an EchoNet folder is the exception, its traced
    frames are extracted once into the cache (see ``echoseg.data.echonet``). A missing,
    non-folder or image-less ``root`` always raises DataError.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root}: no such folder")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    if is_echonet_layout(root):
        scan, split_file = scan_echonet(root, workers=workers)
        return _finish(root, "echonet", scan, strict, split_file, ECHONET_STRUCTURES)
    files = list_files(root)
    if not files:
        raise DataError(f"{root}: empty folder")
    if not any(is_image_file(f) for f in files):
        raise DataError(f"{root}: no image files found")

    if is_camus_layout(files):
        layout, scan = "camus", scan_camus(files, require_labels=require_labels, workers=workers)
    else:
        layout = "folder"
        scan = scan_folder(files, root, require_labels=require_labels, workers=workers)
    return _finish(root, layout, scan, strict, find_split_file(root))


def _finish(root: Path, layout: str, scan: Scan, strict: bool, split_file: Path | None,
            structures: tuple[str, ...] = ALL_STRUCTURES) -> EchoDataset:
    """The dataset of a scan; with ``strict``, DataError on its first problem."""
    samples, sequences, problems = _unique(scan)
    if not samples and not problems:
        problems.append(f"{root}: no image/label pairs found")
    if strict and problems:
        more = len(problems) - 1
        tail = f" (and {more} more problem{'s' * (more > 1)}: run 'echoseg info {root}')"
        raise DataError(problems[0] + (tail if more else ""))
    return EchoDataset(root, layout, samples, sequences, problems, split_file, structures)


def list_files(root: Path) -> list[Path]:
    """Every non-hidden file below ``root`` (following folder links once), sorted."""
    found: list[Path] = []
    seen: set[str] = set()
    for folder, dirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back to a folder already walked
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(Path(folder, n) for n in names if not n.startswith("."))
    return sorted(found)


def _unique(scan: Scan) -> tuple[list[Sample], list[SequenceFile], list[str]]:
    """Sort samples and sequences by id, reporting (and dropping) repeated ids."""
    problems = list(scan.problems)
    out = []
    for items, attr in ((scan.samples, "image_path"), (scan.sequences, "path")):
        first: dict[str, object] = {}
        for item in sorted(items, key=lambda x: (x.id, str(getattr(x, attr)))):
            if item.id in first:
                problems.append(f"{getattr(item, attr)}: duplicate id '{item.id}' "
                                f"(also {getattr(first[item.id], attr)})")
            else:
                first[item.id] = item
        out.append(list(first.values()))
    return out[0], out[1], problems

