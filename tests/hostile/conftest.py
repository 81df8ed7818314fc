"""Fixtures of the hostile-input suite: run a command in-process, snapshot folders, break disks.

Every test here builds one kind of broken input in a temporary folder and checks the contract
of every command: exit code 2 (1 when other inputs were processed), one line on stderr
``echoseg: error: <file>: <problem>`` naming the file, no traceback, and files that existed
before unchanged. Readers added later (DICOM, video) reuse these fixtures.
"""

from __future__ import annotations

import errno
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from echoseg.cli import main
from echoseg.config import from_dict
from echoseg.inference import loading
from echoseg.inference.bundle import save_bundled
from echoseg.models import build_model

TINY_CONFIG = {"data": {"size": 64}, "model": {"encoder": [8, 8, 16], "decoder": [8, 8]}}


@dataclass
class Result:
    """What one command printed and returned."""

    rc: int
    out: str
    err: str

    @property
    def errors(self) -> list[str]:
        """The ``echoseg: error:`` lines on stderr."""
        return [line for line in self.err.splitlines() if line.startswith("echoseg: error:")]


@pytest.fixture
def cli(capsys):
    """``cli(*args) -> Result``: run ``echoseg ARGS`` in this process.

    An exception escaping ``main`` is a traceback a user would see, so it fails the test. The
    result's stderr never holds a traceback or a raw Python warning line.
    """
    def run(*args) -> Result:
        capsys.readouterr()
        rc = main([str(a) for a in args])
        captured = capsys.readouterr()
        result = Result(rc, captured.out, captured.err)
        assert "Traceback" not in result.err, result.err
        assert "Warning:" not in result.err, result.err  # e.g. "UserWarning: ..." lines
        return result

    return run


def assert_one_error(result: Result, *names: str | Path, rc: int = 2) -> str:
    """Assert exit code ``rc`` and exactly one error line that names each of ``names``
    (a path or any text); returns that line."""
    assert result.rc == rc, (result.rc, result.err)
    assert len(result.errors) == 1, result.err
    line = result.errors[0]
    for name in names:
        assert str(name) in line, (name, line)
    assert "\x1b" not in line  # no terminal escape codes
    return line


def snapshot(root: Path) -> dict[str, str]:
    """Every file below ``root`` (relative path -> sha256 of its bytes), hidden ones included."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def tiny_model(tmp_path, monkeypatch) -> str:
    """A bundled model named "tiny" (a random 3-level U-Net on a 64x64 grid); returns its name."""
    torch.manual_seed(0)
    config = from_dict(TINY_CONFIG)
    save_bundled(build_model(config.model), config, tmp_path / "weights", "tiny")
    monkeypatch.setattr(loading, "WEIGHTS_DIR", tmp_path / "weights")
    return "tiny"


def enospc(path: str | Path = "") -> OSError:
    """The error a full disk gives."""
    return OSError(errno.ENOSPC, "No space left on device", str(path))


def gray_image(shape=(50, 40), seed: int = 0) -> np.ndarray:
    """A deterministic random uint8 image."""
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


class HostileFiles:
    """Builders of hostile input files below ``root``; each returns the path it wrote.

    Headers are written by hand (struct, zlib) or with nibabel so that they can declare what
    the data does not hold: huge sizes, zero frames, short payloads. Nothing large is ever
    allocated: the point is that a reader refuses from the header.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def png(self, name: str, width: int, height: int) -> Path:
        """An 8-bit gray PNG whose IHDR declares ``width`` x ``height`` pixels but whose IDAT
        holds one row (a few hundred bytes in all)."""
        import struct
        import zlib

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
        idat = zlib.compress(b"\0" * (width + 1), 9)
        path = self._path(name)
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                         + chunk(b"IEND", b""))
        return path

    def metaimage(self, name: str, size: tuple[int, ...], payload: bytes = b"\0" * 1000,
                  compressed: bool = True, element_type: str = "MET_UCHAR") -> Path:
        """A ``.mhd`` declaring ``size`` (ITK order: columns, rows[, frames]) with ``payload``
        in its data file (zlib-compressed when ``compressed``, CompressedDataSize matching)."""
        import zlib

        path = self._path(name)
        data = zlib.compress(payload, 9) if compressed else payload
        data_file = path.with_suffix(".zraw" if compressed else ".raw")
        data_file.write_bytes(data)
        lines = ["ObjectType = Image", f"NDims = {len(size)}", "BinaryData = True",
                 "BinaryDataByteOrderMSB = False", f"CompressedData = {compressed}"]
        if compressed:
            lines.append(f"CompressedDataSize = {len(data)}")
        lines += [f"DimSize = {' '.join(map(str, size))}", f"ElementType = {element_type}",
                  f"ElementDataFile = {data_file.name}"]
        path.write_text("\n".join(lines) + "\n")
        return path

    def nifti(self, name: str, size: tuple[int, ...], payload: bytes | None = None) -> Path:
        """A uint8 NIfTI-1 file (gzip-compressed for ``.nii.gz``) whose header declares
        ``size`` (ITK order: columns, rows[, frames]) followed by ``payload`` (default: all
        the bytes the header declares, zeros)."""
        import gzip
        import math

        import nibabel

        header = nibabel.Nifti1Header()
        header.set_data_dtype(np.uint8)
        header.set_data_shape(size)
        header["vox_offset"] = 352
        if payload is None:
            payload = bytes(math.prod(size))
        data = header.binaryblock + b"\0" * 4 + payload  # 4 bytes: no header extension
        path = self._path(name)
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        return path

    def fifo(self, name: str) -> Path:
        """A named pipe: opening it for reading blocks until a writer comes."""
        import os

        path = self._path(name)
        os.mkfifo(path)
        return path


@pytest.fixture
def hostile(tmp_path) -> HostileFiles:
    """Builders of hostile files below ``tmp_path`` (see :class:`HostileFiles`)."""
    return HostileFiles(tmp_path)


@pytest.fixture
def deadline():
    """Fail the test (instead of hanging) when it runs longer than 20 s, e.g. blocked on a
    FIFO."""
    import signal

    def expired(signum, frame):
        raise TimeoutError("blocked for 20 s (a FIFO opened?)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def full_disk(monkeypatch):
    """``full_disk(*names)``: from then on, the temporary file of every atomic write whose
    target is named one of ``names`` (every one when none are given, the --out probe too) is
    opened on /dev/full, so its writes fail with a real ENOSPC as on a full disk."""
    import os
    import tempfile

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    real = tempfile.mkstemp
    armed: dict[str, set[str] | None] = {}

    def mkstemp(suffix=None, prefix=None, dir=None, text=False):
        fd, name = real(suffix, prefix, dir, text)
        names = armed.get("names", set())
        if "names" in armed and (names is None or any(prefix == f".{n}." for n in names)):
            os.close(fd)
            fd = os.open("/dev/full", os.O_WRONLY)
        return fd, name

    def fill(*names: str) -> None:
        armed["names"] = set(names) or None

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    return fill


@pytest.fixture
def empty_writes(monkeypatch):
    """``empty_writes(*writers)``: the named writers -- "sitk" (SimpleITK.WriteImage), "pil"
    (PIL's Image.save), "torch" (torch.save) -- then leave an empty file and raise nothing, as
    SimpleITK does on a full disk."""
    import SimpleITK
    from PIL import Image

    def touch(target) -> None:
        if hasattr(target, "write"):
            return  # a file object: nothing written into it
        Path(target).write_bytes(b"")

    patches = {
        "sitk": (SimpleITK, "WriteImage", lambda image, name, *a, **k: touch(name)),
        "pil": (Image.Image, "save", lambda self, fp, *a, **k: touch(fp)),
        "torch": (torch, "save", lambda obj, f, *a, **k: touch(f)),
    }

    def break_writers(*writers: str) -> None:
        for writer in writers:
            monkeypatch.setattr(*patches[writer])

    return break_writers


@pytest.fixture
def failing_fs(monkeypatch):
    """``failing_fs(folder, code=errno.EROFS, stat=False)``: creating, opening for writing,
    renaming or removing anything at or below ``folder`` then fails with OSError ``code``
    (EROFS: a read-only file system); with ``stat=True`` looking at it fails too (ENODEV: a
    device that went away). File modes do not stop root, so tests use this instead."""
    import os

    def fail(folder: Path, code: int = errno.EROFS, stat: bool = False) -> None:
        root = os.path.abspath(folder)

        def inside(path) -> bool:
            if isinstance(path, int):
                return False
            target = os.path.abspath(os.fsdecode(os.fspath(path)))
            return target == root or target.startswith(root + os.sep)

        def guard(name: str, real, writes=lambda *a: True):
            def guarded(path, *args, **kwargs):
                if inside(path) and writes(*args):
                    raise OSError(code, os.strerror(code), os.fspath(path))
                return real(path, *args, **kwargs)
            monkeypatch.setattr(os, name, guarded)

        write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
        guard("open", os.open, lambda flags=0, *a: bool(flags & write_flags))
        for name in ("mkdir", "replace", "rename", "link", "unlink", "rmdir"):
            guard(name, getattr(os, name))
        if stat:
            guard("stat", os.stat)
            guard("lstat", os.lstat)

    return fail
