"""Verified atomic file writes: write a temporary beside the target, check it, then rename.

A failed write never replaces a good file. The temporary is checked before the rename: it is
not empty (SimpleITK and others can write nothing on a full disk without raising), it has the
size of the bytes given when they are known, and it passes the caller's ``verify`` (e.g. the
file reads back). Any failure removes the temporary and raises :class:`WriteError`
``<file>: cannot write (<reason>)``.

Temporaries are hidden names beside the target, ``.<name>.<random>.tmp`` (files, or folders
for writers that need the final file name); a process killed mid-write can leave one, which
:func:`remove_stale_temporaries` deletes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from echoseg.errors import EchosegError, plain_reason

TMP_SUFFIX = ".tmp"
# mkstemp/mkdtemp add 8 characters of [a-z0-9_]; ".<name>.snapshot.tmp" has the same shape
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")

Verify = Callable[[Path], None]


class WriteError(EchosegError, OSError):
    """A file could not be written: ``<path>: cannot write (<reason>)``.

    An EchosegError (one line on the command line) and an OSError, so that callers which
    tolerate disk errors (e.g. the array cache) keep doing so.
    """

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: cannot write ({reason})")
        self.path = Path(path)
        self.reason = reason

    def __reduce__(self):
        return type(self), (self.path, self.reason)


def failure_reason(exc: BaseException) -> str:
    """A short one-line reason for ``exc``: an OSError's strerror, else
    :func:`~echoseg.errors.plain_reason` of it."""
    if isinstance(exc, WriteError):
        return exc.reason
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return plain_reason(exc)


def atomic_write(path: Path | str, write: Callable[[BinaryIO], None],
                 verify: Verify | None = None, size: int | None = None) -> Path:
    """Call ``write(file)`` on a temporary binary file beside ``path``, check it, rename it.

    The check: the temporary is not empty, holds exactly ``size`` bytes when ``size`` is given,
    and ``verify(temporary_path)`` (optional) returns without raising. Readers see the old
    file or the complete new one, never a partial one. Creates parent folders; returns
    ``path`` as a Path. Raises WriteError naming ``path`` (the old file, if any, unchanged and
    no temporary left) when writing, the check or the rename fails.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
        tmp = Path(name)
        with contextlib.suppress(OSError):  # some file systems have no modes
            os.chmod(tmp, 0o644)  # mkstemp makes it private; a split or cache file need not be
        with os.fdopen(fd, "wb") as f:
            write(f)
        check_written(tmp, verify, size)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        error = _as_write_error(path, exc)
        if error is exc:
            raise
        raise error from exc
    return path


def atomic_write_bytes(path: Path | str, data: bytes, verify: Verify | None = None) -> Path:
    """Write ``data`` to ``path`` atomically and check that all of it arrived; returns the path.
    Raises WriteError as :func:`atomic_write` does."""
    return atomic_write(path, lambda f: f.write(data), verify, size=len(data))


def atomic_write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, checked as :func:`atomic_write_bytes`;
    returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_named(path: Path | str, write: Callable[[Path], None],
                       verify: Verify | None = None) -> Path:
    """Atomic write for writers that need the final file name or add companion files.

    ``write(staged_path)`` writes into a temporary folder beside ``path`` under ``path``'s
    name (a format chosen by extension; a MetaImage ``.mhd`` with its ``.raw``). Every file
    written there must be non-empty and ``verify(staged_path)`` must pass; then the files are
    moved beside ``path``, companions first and the named file last. Returns ``path``; raises
    WriteError naming ``path``, leaving old files and no temporary folder, on any failure.
    """
    path = Path(path)
    staging: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.",
                                        suffix=TMP_SUFFIX))
        staged = staging / path.name
        write(staged)
        if not staged.is_file():
            raise WriteError(path, "no file was written")
        written = sorted(staging.iterdir(), key=lambda p: p.name == path.name)  # named last
        for file in written:
            check_written(file)
        if verify is not None:
            _verified(staged, verify)
        for file in written:
            os.replace(file, path.parent / file.name)
    except Exception as exc:
        error = _as_write_error(path, exc)
        if error is exc:
            raise
        raise error from exc
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return path


def check_written(path: Path, verify: Verify | None = None, size: int | None = None) -> None:
    """Raise WriteError unless the file at ``path`` is non-empty, holds ``size`` bytes when
    given, and passes ``verify(path)``; returns nothing."""
    actual = path.stat().st_size
    if actual == 0 and size != 0:
        raise WriteError(path, "0 bytes were written; is the disk full?")
    if size is not None and actual != size:
        raise WriteError(path, f"{actual} of {size} bytes were written; is the disk full?")
    if verify is not None:
        _verified(path, verify)


def _as_write_error(path: Path, exc: BaseException) -> BaseException:
    """What to raise for ``exc`` while writing ``path``: a WriteError naming ``path`` for a
    disk or writer error (SimpleITK and torch raise RuntimeError), ``exc`` itself otherwise."""
    if isinstance(exc, WriteError):
        return exc if exc.path == path else WriteError(path, exc.reason)
    if isinstance(exc, (OSError, RuntimeError)):
        return WriteError(path, failure_reason(exc))
    return exc


def _verified(path: Path, verify: Verify) -> None:
    try:
        verify(path)
    except Exception as exc:  # a check that fails in any way means the file is not usable
        # a reader's message names the temporary: keep only its problem
        reason = failure_reason(exc).removeprefix(f"{path}: ").replace(str(path), path.name)
        raise WriteError(path, f"the written file does not read back: {reason}") from exc


def remove_stale_temporaries(folder: Path | str) -> list[Path]:
    """Delete the temporaries that atomic writes left in ``folder`` (not below it) when their
    process was killed: hidden names ending in ``.<8 characters>.tmp``. Call it only while no
    other process writes there (e.g. holding the folder's lock). Returns what was removed."""
    removed = []
    for entry in Path(folder).iterdir():
        if not _TEMPORARY.match(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed
