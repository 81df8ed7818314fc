"""Output folders: created and proved writable before a command does any work.

Every command that writes into a folder calls :func:`prepare_output_dir` before it reads data
or loads a model, so a ``--out`` that is a file, read-only or on a missing device fails at
once in one line instead of after the work. A command's ``run`` decorated with
:func:`removes_unused_output_dirs` does not leave behind an empty folder that it created and
then failed before writing anything into.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from echoseg.atomic import TMP_SUFFIX, failure_reason
from echoseg.errors import EchosegError

# folders prepare_output_dir created in this process, in creation order (outermost first)
_created: list[Path] = []


def prepare_output_dir(path: Path | str, option: str = "--out") -> list[Path]:
    """Create the folder ``path`` (and missing parents) if needed and prove it writable by
    creating and removing a probe file in it.

    ``option`` names the command-line option in messages. Returns the folders this call
    created, outermost first (empty when ``path`` existed). Raises EchosegError naming the
    folder and the reason (exists and is not a folder, cannot create, cannot write), having
    removed the folders it created.
    """
    path = Path(path)
    created: list[Path] = []
    try:
        if path.exists() and not path.is_dir():
            raise EchosegError(f"{path}: exists and is not a folder (given as {option})")
        missing = [p for p in (path, *path.parents) if not os.path.lexists(p)]
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            created = [p for p in reversed(missing) if p.is_dir()]
            raise EchosegError(f"{path}: cannot create the {option} folder "
                               f"({failure_reason(exc)})") from None
        created = list(reversed(missing))
        _probe(path, option)
    except OSError as exc:  # e.g. a stat on a device that went away
        remove_if_empty(created)
        raise EchosegError(f"{path}: cannot use as the {option} folder "
                           f"({failure_reason(exc)})") from None
    except EchosegError:
        remove_if_empty(created)
        raise
    _created.extend(created)
    return created


def _probe(folder: Path, option: str) -> None:
    """Create, write and remove a file in ``folder``; raises EchosegError when it cannot."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".echoseg-probe.", suffix=TMP_SUFFIX)
    except OSError as exc:
        raise EchosegError(f"{folder}: cannot write into the {option} folder "
                           f"({failure_reason(exc)})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b"echoseg")
    except OSError as exc:
        raise EchosegError(f"{folder}: cannot write into the {option} folder "
                           f"({failure_reason(exc)})") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


def remove_if_empty(folders: list[Path]) -> None:
    """Remove each of ``folders`` (given outermost first) that is empty, innermost first; a
    folder that holds anything, or cannot be removed, stays. Returns nothing."""
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


def removes_unused_output_dirs(run: Callable[..., int]) -> Callable[..., int]:
    """Decorate a command's ``run(args) -> exit code``: when it raises or returns 2, the
    folders :func:`prepare_output_dir` created during the call are removed if still empty."""

    @functools.wraps(run)
    def wrapper(*args, **kwargs) -> int:
        start = len(_created)
        try:
            code = run(*args, **kwargs)
        except BaseException:
            remove_if_empty(_created[start:])
            del _created[start:]
            raise
        if code == 2:
            remove_if_empty(_created[start:])
        del _created[start:]
        return code

    return wrapper
