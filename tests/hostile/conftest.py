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
