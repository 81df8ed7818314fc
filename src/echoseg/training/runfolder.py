"""A run folder for the lifetime of one training process: prepared, locked, left clean.

``with run_folder(out):`` creates ``out`` if needed and proves it writable, takes its exclusive
lock (a second ``echoseg train --out`` on it fails at once, naming the holder), and removes the
temporaries a killed process left there. When the run fails before its first checkpoint, what
this process added to the folder is removed again (and the folder itself when this process
created it), so a failed start never leaves a folder holding only config files.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from echoseg.atomic import remove_stale_temporaries
from echoseg.outdir import prepare_output_dir, remove_if_empty
from echoseg.runlock import folder_lock

CHECKPOINT = "last.pt"


@contextlib.contextmanager
def run_folder(out: Path | str, option: str = "--out") -> Iterator[Path]:
    """Hold the run folder ``out`` for the ``with`` block (see the module docstring).

    Yields ``out`` as a Path. Raises EchosegError naming the folder when it cannot be created
    or written, or when another process holds it.
    """
    out = Path(out)
    created = prepare_output_dir(out, option)
    try:
        with folder_lock(out):
            before = set(os.listdir(out))
            remove_stale_temporaries(out)
            try:
                yield out
            except BaseException:
                if not (out / CHECKPOINT).exists():
                    _remove_added(out, before)
                raise
    except BaseException:
        remove_if_empty(created)
        raise


def _remove_added(out: Path, before: set[str]) -> None:
    """Remove the files (and empty folders) in ``out`` whose names were not there before."""
    for name in set(os.listdir(out)) - before:
        entry = out / name
        with contextlib.suppress(OSError):
            if entry.is_dir() and not entry.is_symlink():
                entry.rmdir()
            else:
                entry.unlink()
