"""Export a dataset and its patient split as an nnU-Net v2 raw dataset of 2D PNG images.

``OUT/DatasetNNN_Name/`` gets ``imagesTr/<case>_0000.png`` and ``labelsTr/<case>.png`` for the
train and val patients, ``imagesTs/<case>_0000.png`` for the test patients, ``dataset.json``,
``splits_final.json`` (one fold: our train/val split) and, only when some sample ids are not
nnU-Net-safe, ``case_map.json`` {case: sample id}. Cases are the echoseg sample ids, so the
PNGs nnU-Net predicts can be scored with ``echoseg evaluate --pred`` as they are (after
:func:`rename_predictions` when a case map exists). The folder is written beside the target
under a temporary name and renamed at the end: a failure never leaves half a dataset.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from echoseg.atomic import (
    TMP_SUFFIX,
    WriteError,
    atomic_write_bytes,
    atomic_write_text,
    failure_reason,
)
from echoseg.data.dataset import open_dataset
from echoseg.data.pairs import read_pair
from echoseg.data.preprocess import fill_non_finite, minmax_scale
from echoseg.data.readers import read_image
from echoseg.data.sample import Sample
from echoseg.data.splits import join_some, resolve_splits
from echoseg.data.threads import thread_map
from echoseg.errors import ConfigError, DataError, EchosegError
from echoseg.labels import STRUCTURES

LABELS = {"background": 0, **STRUCTURES}
CHANNEL = "_0000"
FILE_ENDING = ".png"
CASE_MAP = "case_map.json"
SPLITS_FINAL = "splits_final.json"
CAMUS_LICENSE = ("CC BY-NC-SA 4.0 (CAMUS data: non-commercial use, share alike; "
                 "https://www.creatis.insa-lyon.fr/Challenge/camus/)")
OTHER_LICENSE = "that of the source dataset"
REFERENCE = ("Leclerc S. et al., Deep Learning for Segmentation Using an Open Large-Scale "
             "Dataset in 2D Echocardiography, IEEE Trans. Med. Imaging 38(9):2198-2210, 2019, "
             "doi:10.1109/TMI.2019.2900516")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass
class NnunetExport:
    """What :func:`export_nnunet` wrote: the ``DatasetNNN_Name`` folder, the number of
    training (imagesTr) and test (imagesTs) cases, case -> sample id for renamed ids only,
    the patient splits used, and the patients in no split (left out)."""

    folder: Path
    cases: int
    test_cases: int
    case_map: dict[str, str] = field(default_factory=dict)
    splits: dict[str, list[str]] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """``DatasetNNN_<name>`` for an id in 1..999 and a name of letters and digits; raises
    ConfigError otherwise."""
    if not 1 <= dataset_id <= 999:
        raise ConfigError(f"--dataset-id must be in 1..999 (nnU-Net's DatasetNNN), "
                          f"got {dataset_id}")
    if not re.fullmatch(r"[A-Za-z0-9]+", name):
        raise ConfigError(f"--name must be letters and digits only, got {name!r}")
    return f"Dataset{dataset_id:03d}_{name}"


def case_names(ids: list[str]) -> dict[str, str]:
    """Sample id -> nnU-Net case name: the id itself when it is made of [A-Za-z0-9_-], else
    the id with other characters replaced by '_' (and '_2', '_3'... when that is taken)."""
    names = {i: i for i in ids if not _UNSAFE.search(i)}
    used = set(names)
    for sample_id in ids:
        if sample_id in names:
            continue
        base = _UNSAFE.sub("_", sample_id) or "case"
        case, n = base, 1
        while case in used:
            n += 1
            case = f"{base}_{n}"
        names[sample_id] = case
        used.add(case)
    return names


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A 2D image as 8-bit gray: uint8 as it is, integers within 0..255 as they are, anything
    else min-max scaled to 0..255 (non-finite pixels set to the minimum first)."""
    if image.dtype == np.uint8:
        return image
    if np.issubdtype(image.dtype, np.integer) and image.min() >= 0 and image.max() <= 255:
        return image.astype(np.uint8)
    return np.rint(minmax_scale(fill_non_finite(image)[0]) * 255).astype(np.uint8)


def export_nnunet(data: Path | str, out: Path | str, dataset_id: int, *,
                  name: str | None = None, split_file: Path | str | None = None,
                  seed: int = 0, force: bool = False,
                  workers: int | None = None) -> NnunetExport:
    """Write the dataset below ``data`` as ``out/DatasetNNN_<name>`` (see the module doc).

    ``name`` defaults to "CAMUS" for a CAMUS release, else the letters and digits of the data
    folder's name. Splits come from :func:`~echoseg.data.splits.resolve_splits` (``split_file``,
    else the dataset's own, else seeded 80/10/10 with ``seed``). Any ``out/DatasetNNN_*``
    already there that is not an empty folder raises EchosegError unless ``force`` (then it
    is replaced). Raises ConfigError for a bad id or name, DataError when no train/val
    sample has a label map or a file cannot be read; nothing is left in ``out`` on error.
    """
    dataset_folder_name(dataset_id, name or "CAMUS")
    out = Path(out).expanduser()
    old = _same_id(out, dataset_id)
    blocking = [p for p in old if not (p.is_dir() and not any(p.iterdir()))]
    if blocking and not force:
        raise EchosegError(f"{blocking[0]}: nnU-Net dataset {dataset_id} already exists; "
                           "choose another --dataset-id or pass --force to replace it")
    dataset = open_dataset(data, require_labels=False, workers=workers)
    if not any(s.label_path for s in dataset.samples):
        raise DataError(f"{dataset.root}: no labelled samples (image with label map)")
    splits = resolve_splits(dataset, split_file, seed)
    train = dataset.select(splits.get("train", []) + splits.get("val", []))
    test = dataset.select(splits.get("test", []))
    if not train:
        raise DataError(f"{dataset.root}: the train and val splits have no samples")
    unlabelled = [s.id for s in train if s.label_path is None]
    if unlabelled:
        raise DataError(f"{dataset.root}: train/val samples without a label map: "
                        f"{join_some(unlabelled)}")
    if not splits.get("train"):
        warnings.warn(f"{dataset.root}: the split has no train patients, so nnU-Net fold 0 "
                      "has nothing to train on; give a --split-file with \"train\"",
                      stacklevel=2)
    names = case_names([s.id for s in dataset.samples])
    folder = out / dataset_folder_name(dataset_id, name or _default_name(dataset))
    camus = dataset.layout == "camus" or all(re.fullmatch(r"patient\d+", s.patient)
                                            for s in dataset.samples)
    in_split = {p for patients in splits.values() for p in patients}
    result = NnunetExport(folder, len(train), len(test),
                          {names[s.id]: s.id for s in train + test if names[s.id] != s.id},
                          splits,
                          [p for p in dataset.patients if p not in in_split])

    out.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(dir=out, prefix=f".{folder.name}.", suffix=TMP_SUFFIX))
    try:
        jobs = [(s, names[s.id], True) for s in train] + [(s, names[s.id], False) for s in test]
        thread_map(lambda job: _write_case(staged, *job), jobs, workers)
        atomic_write_text(staged / "dataset.json", _json(_dataset_json(
            folder.name, len(train), dataset.root.name, camus)))
        atomic_write_text(staged / SPLITS_FINAL, _json([{
            "train": [names[s.id] for s in dataset.select(splits.get("train", []))],
            "val": [names[s.id] for s in dataset.select(splits.get("val", []))]}]))
        if result.case_map:
            atomic_write_text(staged / CASE_MAP, _json(result.case_map))
        with contextlib.suppress(OSError):
            os.chmod(staged, 0o755)
        _replace(staged, folder, old)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return result


def rename_predictions(pred_dir: Path | str, case_map: dict[str, str] | Path | str) -> int:
    """Rename nnU-Net's ``<case>.png`` predictions in ``pred_dir`` (not below it) to
    ``<sample id>.png``, so that ``echoseg evaluate --pred`` finds them.

    ``case_map`` is {case: sample id} or the path of an exported ``case_map.json``. Cases
    without a file are skipped. Returns the number of files renamed.
    """
    if not isinstance(case_map, dict):
        try:
            case_map = json.loads(Path(case_map).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{case_map}: cannot read the case map ({exc.__class__.__name__})") \
                from None
    root = Path(pred_dir)
    if not root.is_dir():
        raise DataError(f"{root}: prediction folder not found")
    renamed = 0
    for case, sample_id in case_map.items():
        source = root / f"{case}{FILE_ENDING}"
        if source.is_file():
            os.replace(source, root / f"{sample_id}{FILE_ENDING}")
            renamed += 1
    return renamed


def _write_case(folder: Path, sample: Sample, case: str, labelled: bool) -> None:
    if labelled:
        image, label = read_pair(sample)
        atomic_write_bytes(folder / "labelsTr" / f"{case}{FILE_ENDING}", _png(label))
    else:
        image, _ = read_image(sample.image_path)
        if image.ndim != 2:
            raise DataError(f"{sample.image_path}: image must be 2D, got shape {image.shape}")
    subfolder = "imagesTr" if labelled else "imagesTs"
    atomic_write_bytes(folder / subfolder / f"{case}{CHANNEL}{FILE_ENDING}",
                       _png(to_uint8(image)))


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()


def _json(value: object) -> str:
    return json.dumps(value, indent=1) + "\n"


def _dataset_json(name: str, num_training: int, source: str, camus: bool) -> dict:
    from echoseg import __version__

    return {"channel_names": {"0": "echo"}, "labels": LABELS, "numTraining": num_training,
            "file_ending": FILE_ENDING, "name": name,
            "description": f"2D echocardiography (LV, MYO, LA) from {source}, exported by "
                           f"echoseg {__version__}; fold 0 of {SPLITS_FINAL} is echoseg's "
                           "train/val patient split",
            "license": CAMUS_LICENSE if camus else OTHER_LICENSE, "reference": REFERENCE}


def _default_name(dataset) -> str:
    if dataset.layout == "camus":
        return "CAMUS"
    return re.sub(r"[^A-Za-z0-9]", "", dataset.root.resolve().name) or "CAMUS"


def _same_id(out: Path, dataset_id: int) -> list[Path]:
    """Entries of ``out`` named ``DatasetNNN_*`` (nnU-Net finds a dataset by its id alone and
    refuses two with one id)."""
    prefix = f"Dataset{dataset_id:03d}_"
    return sorted(p for p in out.iterdir() if p.name.startswith(prefix)) if out.is_dir() else []


def _replace(staged: Path, target: Path, old: list[Path]) -> None:
    """Move ``old`` aside, ``staged`` to ``target``, then delete ``old``; on failure put
    ``old`` back."""
    trash = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old.",
                                  suffix=TMP_SUFFIX))
    moved: list[Path] = []
    try:
        for path in old:
            os.replace(path, trash / path.name)
            moved.append(path)
        os.replace(staged, target)
    except OSError as exc:
        for path in moved:
            with contextlib.suppress(OSError):
                os.replace(trash / path.name, path)
        raise WriteError(target, failure_reason(exc)) from exc
    finally:
        shutil.rmtree(trash, ignore_errors=True)
