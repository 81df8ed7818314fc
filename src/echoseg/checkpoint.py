"""Checkpoints: atomic saves and ``weights_only=True`` loads with a clear error on bad files."""

from __future__ import annotations

import contextlib
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch

from echoseg.atomic import WriteError, atomic_write, check_written, failure_reason
from echoseg.errors import EchosegError
from echoseg.restore import entry_names, load_failure


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (tensors, numbers, strings, lists, dicts only) to ``path`` atomically,
    checked to be a complete checkpoint archive before it replaces the old file; returns the
    path. Raises WriteError naming ``path`` (the old file kept) when it cannot be written."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp), verify=check_archive)


def check_archive(path: Path) -> None:
    """Raise ValueError unless ``path`` is a whole torch.save archive: a zip file whose
    directory (written last) lists the pickled object; returns None."""
    with zipfile.ZipFile(path) as archive:
        if not any(name.endswith("data.pkl") for name in archive.namelist()):
            raise ValueError("not a torch checkpoint archive (no data.pkl)")


def snapshot_checkpoint(source: str | Path, target: str | Path) -> Path:
    """Make ``target`` a copy of the checkpoint file ``source`` without serialising it again.

    A hard link (a byte copy where the file system has none) is made beside ``target``,
    checked to hold all of ``source``'s bytes, and renamed over it. Safe because checkpoints
    are only ever replaced by rename, never written in place: the next save of ``source`` gets
    a new file and ``target`` keeps this one. Returns ``target`` as a Path; raises WriteError
    naming ``target`` (the old one kept, no temporary left) when it cannot be made.
    """
    target = Path(target)
    tmp = target.with_name(f".{target.name}.snapshot.tmp")
    try:
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        check_written(tmp, size=os.stat(source).st_size)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise WriteError(target, failure_reason(exc)) from exc
    return target


# what --resume reads from last.pt, with the type each entry must have
RESUME_ENTRIES: dict[str, type] = {"model": dict, "optimizer": dict, "early_stopping": dict,
                                   "epoch": int, "history": list, "provenance": dict}
_KINDS = {dict: "a mapping", list: "a list", int: "an integer"}


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *,
                    resume: bool = False) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (a pickle that would run code is refused);
    returns its dict. Raises EchosegError naming ``path`` for a missing, unreadable or foreign
    file, or one without a ``model`` mapping (with ``resume``: without every entry of
    :data:`RESUME_ENTRIES`), saying what it holds instead."""
    path = Path(path)
    if not path.exists():
        raise EchosegError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise EchosegError(f"{path}: not a checkpoint file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise EchosegError(f"{path}: {load_failure(exc)}") from None
    if not isinstance(state, dict):
        raise EchosegError(f"{path}: not an echoseg checkpoint (it holds a "
                           f"{type(state).__name__}, not a mapping of entries)")
    lead = "cannot resume from this checkpoint" if resume else "not an echoseg checkpoint"
    for name, kind in (RESUME_ENTRIES if resume else {"model": dict}).items():
        if name not in state:
            raise EchosegError(f"{path}: {lead} (no {name!r} entry; it holds "
                               f"{entry_names(state)})")
        value = state[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise EchosegError(f"{path}: {lead} ({name!r} is a {type(value).__name__}, not "
                               f"{_KINDS[kind]})")
    return state
