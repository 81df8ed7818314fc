"""Checkpoints: atomic saves and ``weights_only=True`` loads with a clear error on bad files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from echoseg.atomic import atomic_write
from echoseg.errors import EchosegError


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (tensors, numbers, strings, lists, dicts only) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def snapshot_checkpoint(source: str | Path, target: str | Path) -> Path:
    """Make ``target`` a copy of the checkpoint file ``source`` without serialising it again.

    A hard link (a byte copy where the file system has none) is made beside ``target`` and
    renamed over it. Safe because checkpoints are only ever replaced by rename, never written in
    place: the next save of ``source`` gets a new file and ``target`` keeps this one.
    Returns ``target`` as a Path.
    """
    target = Path(target)
    tmp = target.with_name(f".{target.name}.snapshot.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return target


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; raises EchosegError naming a bad file."""
    path = Path(path)
    if not path.is_file():
        raise EchosegError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EchosegError(f"{path}: not a readable checkpoint ({reason[:120]})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise EchosegError(f"{path}: not an echoseg checkpoint (no 'model' entry)")
    return state
