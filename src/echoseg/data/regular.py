"""Opening input files safely: a regular file or one clear line, never a blocked read."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from echoseg.atomic import failure_reason
from echoseg.errors import DataError


def require_regular_file(path: Path | str, what: str) -> None:
    """Raise DataError ``<path>: cannot read <what> (<why>)`` unless ``path`` is a regular file:
    missing, unreadable, a folder, or a FIFO/device (whose read could block forever)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DataError(f"{path}: cannot read {what} (file not found)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise DataError(f"{path}: cannot read {what} (a folder, not a file)")
    if not stat.S_ISREG(mode):
        raise DataError(f"{path}: cannot read {what} (not a regular file)")


def read_text_file(path: Path | str, what: str, encoding: str = "utf-8") -> str:
    """The text of a small regular file; DataError naming the file when it is not one or
    cannot be decoded with ``encoding``."""
    require_regular_file(path, what)
    try:
        return Path(path).read_text(encoding=encoding)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read {what} ({failure_reason(exc)})") from None
