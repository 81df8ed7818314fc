"""Patient-level train/val/test splits: JSON files, official CAMUS subgroups, or seeded.

A split file is either JSON ``{"train": [...], "val": [...], "test": [...]}`` (any subset of the
keys) or a folder holding the official CAMUS ``subgroup_{training,validation,testing}.txt`` (one
patient per line). Without one, patients are shuffled with a seed and cut 80/10/10.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from echoseg.atomic import atomic_write
from echoseg.errors import DataError

if TYPE_CHECKING:
    from echoseg.data.dataset import EchoDataset

SPLIT_NAMES = ("train", "val", "test")
SUBGROUP_FILES = {"train": "subgroup_training.txt", "val": "subgroup_validation.txt",
                  "test": "subgroup_testing.txt"}
SPLITS_JSON = "splits.json"
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def find_split_file(root: Path) -> Path | None:
    """The split file of a dataset folder, or None.

    Looks for ``root/splits.json``, then subgroup files in ``root``, ``root/database_split`` and,
    when ``root`` is a CAMUS ``database_nifti`` folder, its sibling ``database_split``.
    """
    if (root / SPLITS_JSON).is_file():
        return root / SPLITS_JSON
    folders = [root, root / "database_split"]
    if root.name == "database_nifti":
        folders.append(root.parent / "database_split")
    for folder in folders:
        if any((folder / name).is_file() for name in SUBGROUP_FILES.values()):
            return folder
    return None


def read_split_file(path: Path | str) -> dict[str, list[str]]:
    """Read a JSON split file, or a folder (or one file) of CAMUS subgroup lists.

    Returns split name -> sorted patients. Raises DataError naming the file when it is missing,
    malformed, has keys other than train/val/test, or lists a patient twice or in two splits.
    """
    path = Path(path)
    if path.is_file() and path.name in SUBGROUP_FILES.values():
        path = path.parent
    if path.is_dir():
        splits = _read_subgroups(path)
    elif path.is_file():
        splits = _read_json(path)
    else:
        raise DataError(f"{path}: split file not found")
    seen: dict[str, str] = {}
    for name, patients in splits.items():
        for patient in patients:
            if patient in seen:
                where = "twice in" if seen[patient] == name else f"in both {seen[patient]} and"
                raise DataError(f"{path}: patient {patient} is listed {where} {name}")
            seen[patient] = name
    return {name: sorted(patients) for name, patients in splits.items()}


def random_split(patients: Iterable[str], seed: int = 0,
                 fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> dict[str, list[str]]:
    """Shuffle ``patients`` with ``seed`` and cut them into train/val/test by ``fractions``.

    Val and test get round(n * fraction) patients each, at least one each when n >= 3; train
    gets the rest. The same patients and seed always give the same split.
    """
    order = sorted(set(patients))
    random.Random(seed).shuffle(order)
    n = len(order)
    n_val, n_test = (math.floor(n * f + 0.5) for f in fractions[1:])
    if n >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}


def resolve_splits(dataset: EchoDataset, split_file: Path | str | None = None,
                   seed: int = 0) -> dict[str, list[str]]:
    """The splits to use for ``dataset``: name -> sorted patients.

    Uses ``split_file`` when given, else ``dataset.split_file``, else a seeded 80/10/10 split
    (:func:`random_split`). Raises DataError naming the split file when it names patients the
    dataset does not have.
    """
    path = Path(split_file).expanduser() if split_file else dataset.split_file
    if path is None:
        return random_split(dataset.patients, seed)
    splits = read_split_file(path)
    known = set(dataset.patients)
    missing = sorted({p for patients in splits.values() for p in patients} - known)
    if missing:
        raise DataError(f"{path}: patients not in the dataset {dataset.root}: {join_some(missing)}")
    return splits


def save_splits(splits: dict[str, list[str]], path: Path | str) -> Path:
    """Write ``splits`` (name -> patients) as JSON to ``path`` atomically; returns the path."""
    text = json.dumps({name: list(p) for name, p in splits.items()}, indent=1) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def join_some(names: list[str], limit: int = 10) -> str:
    """'a, b, c' listing at most ``limit`` names, then 'and N more'."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _read_json(path: Path) -> dict[str, list[str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read split file ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object like {{\"train\": [...], \"val\": [...]}}")
    unknown = sorted(set(data) - set(SPLIT_NAMES))
    if unknown:
        raise DataError(f"{path}: unknown split name(s) {', '.join(unknown)} "
                        f"(expected {', '.join(SPLIT_NAMES)})")
    for name, patients in data.items():
        if not isinstance(patients, list) or not all(isinstance(p, str) for p in patients):
            raise DataError(f"{path}: '{name}' must be a list of patient names")
    return {name: data[name] for name in SPLIT_NAMES if name in data}


def _read_subgroups(folder: Path) -> dict[str, list[str]]:
    splits = {}
    for name, file_name in SUBGROUP_FILES.items():
        path = folder / file_name
        if path.is_file():
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise DataError(f"{path}: cannot read split file ({exc.__class__.__name__})") \
                    from None
            splits[name] = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    if not splits:
        raise DataError(f"{folder}: no {', '.join(SUBGROUP_FILES.values())} found")
    return splits
