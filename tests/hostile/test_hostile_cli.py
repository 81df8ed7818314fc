"""The CLI's last resort: errors no command reported itself still give one line, never a
traceback; warnings print as one line each, once."""

from __future__ import annotations

import types
import warnings

from conftest import assert_one_error, enospc


def _command(run):
    return types.SimpleNamespace(add_arguments=lambda parser: None, run=run)


def test_an_unreported_disk_error_is_one_line(cli, monkeypatch, tmp_path):
    def run(args):
        raise enospc(tmp_path / "out" / "x.csv")

    monkeypatch.setattr("echoseg.cli._load", lambda name: _command(run))
    line = assert_one_error(cli("models"), tmp_path / "out" / "x.csv")
    assert line.endswith(": No space left on device")


def test_out_of_memory_is_one_line(cli, monkeypatch):
    def run(args):
        raise MemoryError

    monkeypatch.setattr("echoseg.cli._load", lambda name: _command(run))
    assert assert_one_error(cli("models")) == "echoseg: error: out of memory"


def test_warnings_are_one_line_each_and_once(cli, monkeypatch):
    def run(args):
        for _ in range(3):
            warnings.warn("torch says\n  something on two lines", UserWarning, stacklevel=1)
        warnings.warn("echoseg: the cache is read-only", RuntimeWarning, stacklevel=1)
        return 0

    monkeypatch.setattr("echoseg.cli._load", lambda name: _command(run))
    monkeypatch.setattr("echoseg.cli._shown_warnings", set())
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        result = cli("models")
    assert result.rc == 0
    assert result.err.splitlines() == ["echoseg: warning: torch says something on two lines",
                                       "echoseg: the cache is read-only"]
