"""One process at a time in a folder: an exclusive lock held for the whole of its work.

``with folder_lock(folder):`` takes a non-blocking exclusive ``fcntl.flock`` on
``folder/.lock`` and writes the holder's pid, host and start time into it. A second process (or
a second lock taken in the same process) fails at once with
``<folder>: in use by another echoseg process (pid N on HOST since T)``. The lock file is
removed on exit; the operating system drops the lock when its holder dies, so a killed run
never blocks the next one (the file it leaves is reused).

Where fcntl is missing (Windows) the lock file is created with ``O_EXCL`` instead: a second
process fails the same way, but a killed run leaves the file behind, and the message then says
to delete it once no such process runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from echoseg.errors import EchosegError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_NAME = ".lock"


class FolderInUse(EchosegError):
    """Another process holds the folder's lock."""


@contextlib.contextmanager
def folder_lock(folder: Path | str) -> Iterator[Path]:
    """Hold the exclusive lock of the existing folder ``folder`` for the ``with`` block.

    Yields the lock file's path. Raises FolderInUse naming the folder and the holder when
    another process (or another ``folder_lock`` in this one) holds it, EchosegError when the
    lock file cannot be created.
    """
    folder = Path(folder)
    lock = folder / LOCK_NAME
    fd = _acquire(folder, lock) if fcntl is not None else _acquire_exclusive(folder, lock)
    try:
        with contextlib.suppress(OSError):  # the lock holds without the record (a full disk)
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(_holder_record()).encode("utf-8"))
        yield lock
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()  # before closing: a waiting process then sees a new file, not this one
        os.close(fd)


def _holder_record() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "since": dt.datetime.now().astimezone().isoformat(timespec="seconds")}


def _acquire(folder: Path, lock: Path) -> int:
    """A descriptor of ``lock`` holding its flock; retries when the file was replaced while
    waiting (its holder removed it between our open and our lock)."""
    while True:
        fd = _open(folder, lock, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(_read(fd))
            os.close(fd)
            raise FolderInUse(f"{folder}: in use by another echoseg process ({holder})") from None
        except OSError as exc:  # no locking on this file system (e.g. some network mounts)
            os.close(fd)
            raise EchosegError(f"{lock}: cannot lock ({exc.strerror or exc})") from None
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _acquire_exclusive(folder: Path, lock: Path) -> int:
    """The fallback without fcntl: create ``lock`` only if it does not exist."""
    try:
        return _open(folder, lock, os.O_RDWR | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        try:
            text = lock.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        raise FolderInUse(f"{folder}: in use by another echoseg process ({_describe(text)}; "
                          f"if it no longer runs, delete {lock})") from None


def _open(folder: Path, lock: Path, flags: int) -> int:
    try:
        return os.open(lock, flags, 0o644)
    except FileExistsError:
        raise
    except OSError as exc:
        raise EchosegError(f"{folder}: cannot create its lock file {LOCK_NAME} "
                           f"({exc.strerror or exc})") from None


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _describe(text: str) -> str:
    """``pid N on HOST since T`` from a lock file's text, or what is known of it."""
    try:
        record = json.loads(text)
        return f"pid {record['pid']} on {record['host']} since {record['since']}"
    except (ValueError, TypeError, KeyError):
        return "holder not recorded yet"
