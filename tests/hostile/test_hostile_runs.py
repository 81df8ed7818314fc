"""Run folders: one process at a time, no leftovers, and a resume that stays the same run.

Runs are tiny (3-level U-Net, 64x64 grid, one batch of two images per epoch); one 2-epoch run
is trained per module and copied into each test that needs it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import assert_one_error, snapshot
from echoseg.cli import main
from echoseg.runlock import LOCK_NAME, FolderInUse, folder_lock

TINY = ["model.encoder=[8, 8, 16]", "model.decoder=[8, 8]", "data.size=64",
        "train.batch_size=2", "train.max_batches_per_epoch=1"]


def train_args(run: Path, data: Path, *overrides: str, cache: Path | None = None) -> list:
    """``echoseg train`` of the tiny config into ``run``."""
    sets = [*TINY, *([f"data.cache_dir={cache}"] if cache else []), *overrides]
    return ["train", "lightweight", "--data", data, "--out", run, "--device", "cpu", "--quiet",
            *sum((["--set", s] for s in sets), [])]


SAMPLES = Path(__file__).resolve().parents[1] / "data" / "camus224"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, _kernel_cache) -> Path:
    """A finished 2-epoch tiny run on the bundled samples (never modified: tests copy it)."""
    base = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ECHOSEG_CACHE", str(base / "cache"))
        patch.setenv("ECHOSEG_KERNEL_CACHE", str(_kernel_cache))
        run = base / "run"
        args = train_args(run, SAMPLES, "train.epochs=2", cache=base / "cache")
        assert main([str(a) for a in args]) == 0
    return run


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A copy of the 2-epoch run in this test's folder."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


# --- one process at a time ------------------------------------------------------------------

def test_second_train_into_a_folder_in_use_fails_at_once_naming_the_holder(
        cli, samples_root, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from echoseg.runlock import folder_lock
            with folder_lock({str(out)!r}):
                print("held", flush=True)
                sys.stdin.read()
            """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(out)
        result = cli(*train_args(out, samples_root, "train.epochs=1"))
        line = assert_one_error(result, out)
        assert line.startswith(f"echoseg: error: {out}: in use by another echoseg process "
                               f"(pid {holder.pid} on {socket.gethostname()} since ")
        assert snapshot(out) == before  # only the holder's lock file, untouched
    finally:
        holder.communicate("", timeout=30)
    assert holder.returncode == 0 and not (out / LOCK_NAME).exists()


def test_folder_lock_is_exclusive_records_its_holder_and_is_released(tmp_path):
    with folder_lock(tmp_path) as lock:
        record = yaml.safe_load(lock.read_text())  # JSON is YAML
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        with pytest.raises(FolderInUse, match=rf"in use by another echoseg process \(pid "
                                              rf"{os.getpid()} on "), folder_lock(tmp_path):
            pass
    assert not lock.exists()
    with folder_lock(tmp_path):  # free again
        pass


# --- leftovers ------------------------------------------------------------------------------

def test_resume_removes_temporaries_a_killed_process_left(cli, run, samples_root):
    stale = [run / ".last.pt.k3j2h1g0.tmp", run / ".best.pt.snapshot.tmp",
             run / ".history.csv.a_b9c8d7.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    staging = run / ".x_seg.nii.gz.0a1b2c3d.tmp"
    staging.mkdir()
    (staging / "x_seg.nii.gz").write_bytes(b"")
    keep = run / "notes.tmp"
    keep.write_text("mine")
    result = cli(*train_args(run, samples_root, "train.epochs=3"), "--resume")
    assert result.rc == 0, result.err
    assert not any(p.exists() for p in [*stale, staging])
    assert keep.read_text() == "mine"
    assert sorted(p.name for p in run.iterdir()) == [  # and no lock file once it is done
        "best.pt", "config.yaml", "history.csv", "last.pt", "notes.tmp", "provenance.json",
        "splits.json"]
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 3


@pytest.mark.parametrize("problem", ["init_from", "data"])
def test_a_failed_start_leaves_no_folder_behind(cli, samples_root, tmp_path, problem):
    out = tmp_path / "runs" / "new"
    if problem == "init_from":
        args = train_args(out, samples_root, "train.epochs=1",
                          f"train.init_from={tmp_path / 'missing.pt'}")
        named = tmp_path / "missing.pt"
    else:  # a whole header, cut pixel data: found after the splits were saved in the run
        data = Path(shutil.copytree(samples_root, tmp_path / "data"))
        named = data / "patient0001" / "patient0001_2CH_ED.png"
        named.write_bytes(named.read_bytes()[:400])
        args = train_args(out, data, "train.epochs=1")
    assert_one_error(cli(*args), named)
    assert not (tmp_path / "runs").exists()


def test_a_failed_start_in_an_existing_folder_removes_only_what_it_added(cli, samples_root,
                                                                        tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "README").write_text("my notes")
    args = train_args(out, samples_root, "train.epochs=1", f"train.init_from={tmp_path / 'x.pt'}")
    assert_one_error(cli(*args), tmp_path / "x.pt")
    assert sorted(p.name for p in out.iterdir()) == ["README"]
    assert (out / "README").read_text() == "my notes"


# --- a resume is the same run ---------------------------------------------------------------

def test_resume_cannot_lower_the_epochs_below_those_done(cli, run, samples_root):
    before = snapshot(run)
    result = cli(*train_args(run, samples_root, "train.epochs=1"), "--resume")
    line = assert_one_error(result, run, "2 epochs are done", "train.epochs=1")
    assert "--resume" in line
    assert snapshot(run) == before
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 2


@pytest.mark.parametrize("override, key", [
    ("model.encoder=[4, 8, 16]", "model.encoder"), ("loss.name=ce", "loss.name"),
    ("augment.preset=none", "augment.preset"), ("data.size=32", "data.size"),
])
def test_resume_refuses_a_change_to_what_was_trained(cli, run, samples_root, override, key):
    before = snapshot(run)
    result = cli(*train_args(run, samples_root, "train.epochs=3", override), "--resume")
    line = assert_one_error(result, run, f"cannot change {key}")
    assert "start a new run" in line
    assert snapshot(run) == before


def test_full_disk_during_a_resumed_run_keeps_the_last_good_checkpoint(cli, run, samples_root,
                                                                       full_disk):
    before = snapshot(run)
    full_disk("last.pt")
    result = cli(*train_args(run, samples_root, "train.epochs=3"), "--resume")
    line = assert_one_error(result, run / "last.pt")
    assert line.endswith("cannot write (No space left on device)")
    after = snapshot(run)
    for name in ("last.pt", "best.pt", "history.csv"):
        assert after[name] == before[name], name
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp") or p.name == LOCK_NAME]
