"""Never lose or corrupt a result: verified atomic writes, full disks, bad --out folders.

A full disk is simulated by the writer failing (ENOSPC from /dev/full) or by a writer that
writes nothing and raises nothing (as SimpleITK does). Every case checks the exit code, the one
line naming the file, that files which existed before are byte-identical, and that no
temporary is left behind.
"""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK
import torch

from conftest import TINY_CONFIG, assert_one_error, gray_image, snapshot
from echoseg.atomic import WriteError, atomic_write, atomic_write_text
from echoseg.checkpoint import save_checkpoint, snapshot_checkpoint
from echoseg.data.readers import write_image
from echoseg.errors import EchosegError
from echoseg.outdir import prepare_output_dir

TRAIN_TINY = [f"--set={s}" for s in (
    "model.encoder=[8, 8, 16]", "model.decoder=[8, 8]", f"data.size={TINY_CONFIG['data']['size']}",
    "train.epochs=1", "train.batch_size=2", "train.max_batches_per_epoch=1")]


def leftovers(folder: Path) -> list[str]:
    """Temporaries of atomic writes (files or staging folders) anywhere below ``folder``."""
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


# --- the mechanisms -------------------------------------------------------------------------

def test_a_write_that_does_not_verify_leaves_the_old_file(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("good\n")

    def reject(written: Path) -> None:
        assert written.read_bytes() == b"new"  # the check sees the temporary, not the target
        raise ValueError("header is wrong")

    with pytest.raises(WriteError) as caught:
        atomic_write(path, lambda f: f.write(b"new"), verify=reject)
    assert str(caught.value) == (f"{path}: cannot write (the written file does not read back: "
                                 "header is wrong)")
    assert path.read_text() == "good\n" and leftovers(tmp_path) == []


def test_a_writer_that_writes_nothing_does_not_replace_the_file(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("{}")
    with pytest.raises(WriteError, match=r"summary.json: cannot write \(0 bytes were written"):
        atomic_write(path, lambda f: None)
    assert path.read_text() == "{}" and leftovers(tmp_path) == []


def test_enospc_while_writing_is_one_message_naming_the_target(tmp_path, full_disk):
    path = tmp_path / "report.md"
    path.write_text("old")
    full_disk("report.md")
    with pytest.raises(WriteError) as caught:
        atomic_write_text(path, "x" * 100_000)
    assert str(caught.value) == f"{path}: cannot write (No space left on device)"
    assert isinstance(caught.value, OSError) and isinstance(caught.value, EchosegError)
    assert path.read_text() == "old" and leftovers(tmp_path) == []


def test_checkpoint_saved_as_nothing_keeps_the_last_good_one(tmp_path, empty_writes):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(3)}, "epoch": 1})
    before = path.read_bytes()
    empty_writes("torch")
    with pytest.raises(WriteError, match=r"last.pt: cannot write \(0 bytes were written"):
        save_checkpoint(path, {"model": {"w": torch.zeros(3)}, "epoch": 2})
    assert path.read_bytes() == before and leftovers(tmp_path) == []


def test_truncated_checkpoint_archive_is_not_renamed_over_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(1000)}, "epoch": 1})
    before = path.read_bytes()
    real_save = torch.save

    def half_save(obj, f, *args, **kwargs):  # the disk filled up half way, silently
        buffer = io.BytesIO()
        real_save(obj, buffer)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])

    monkeypatch.setattr(torch, "save", half_save)
    with pytest.raises(WriteError, match=r"last.pt: cannot write \(the written file does not "
                                         r"read back: "):
        save_checkpoint(path, {"model": {"w": torch.zeros(1000)}, "epoch": 2})
    assert path.read_bytes() == before and leftovers(tmp_path) == []


def test_best_snapshot_that_cannot_be_made_keeps_the_old_best(tmp_path, monkeypatch):
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    save_checkpoint(best, {"model": {"w": torch.ones(2)}, "epoch": 1})
    save_checkpoint(last, {"model": {"w": torch.zeros(2)}, "epoch": 2})
    before = best.read_bytes()

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "link", no_space)  # no hard links here, and the copy fails too
    monkeypatch.setattr("shutil.copyfile", no_space)
    with pytest.raises(WriteError) as caught:
        snapshot_checkpoint(last, best)
    assert str(caught.value) == f"{best}: cannot write (No space left on device)"
    assert best.read_bytes() == before and leftovers(tmp_path) == []


# --- predict --------------------------------------------------------------------------------

@pytest.fixture
def predicted(cli, tiny_model, tmp_path):
    """Inputs a.png and seq.<ext> (3 frames) predicted once into out/; returns a function
    ``(ext) -> (inputs, out)``."""
    def make(ext: str):
        inputs = tmp_path / "in"
        write_image(inputs / "a.png", gray_image())
        write_image(inputs / f"seq{ext}", np.stack([gray_image(seed=s) for s in range(3)]),
                    (0.3, 0.2))
        out = tmp_path / "out"
        assert cli("predict", tiny_model, inputs, "--out", out, "--device", "cpu").rc == 0
        return inputs, out
    return make


def test_label_map_written_as_nothing_keeps_the_good_one(cli, predicted, empty_writes):
    inputs, out = predicted(".nii.gz")
    before = snapshot(out)
    empty_writes("sitk")  # SimpleITK on a full disk: an empty file and no error
    result = cli("predict", "tiny", inputs, "--out", out, "--device", "cpu")
    line = assert_one_error(result, inputs / "seq.nii.gz", out / "seq_seg.nii.gz", rc=1)
    assert "cannot write" in line and "0 bytes were written" in line
    after = snapshot(out)
    assert after["seq_seg.nii.gz"] == before["seq_seg.nii.gz"]
    assert set(after) == set(before) and leftovers(out) == []
    assert after["a_seg.png"] == before["a_seg.png"]  # the other input was written again


def test_metaimage_without_its_data_file_is_not_moved_into_place(cli, predicted, monkeypatch):
    inputs, out = predicted(".mhd")
    before = snapshot(out)
    real_write = SimpleITK.WriteImage

    def lose_data_file(image, name, *args, **kwargs):
        real_write(image, name, *args, **kwargs)
        Path(name).with_suffix(".raw").unlink()  # the .raw never reached the disk

    monkeypatch.setattr(SimpleITK, "WriteImage", lose_data_file)
    result = cli("predict", "tiny", inputs, "--out", out, "--device", "cpu")
    line = assert_one_error(result, out / "seq_seg.mhd", rc=1)
    assert "cannot write" in line and "seq_seg.raw not found" in line
    after = snapshot(out)
    for name in ("seq_seg.mhd", "seq_seg.raw"):
        assert after[name] == before[name]
    assert leftovers(out) == []


def test_predictions_csv_on_a_full_disk_is_one_line_and_keeps_the_old_table(
        cli, predicted, full_disk):
    inputs, out = predicted(".nii.gz")
    before = snapshot(out)
    full_disk("predictions.csv")
    result = cli("predict", "tiny", inputs, "--out", out, "--device", "cpu", "--quiet")
    line = assert_one_error(result, out / "predictions.csv")
    assert line.endswith("cannot write (No space left on device)")
    assert snapshot(out)["predictions.csv"] == before["predictions.csv"]
    assert leftovers(out) == []


# --- --out folders that cannot be written, for every command --------------------------------

@pytest.fixture
def no_work(monkeypatch):
    """Reading data, loading a model or finding inputs fails the test: a bad --out must be
    refused before any of it."""
    def started(*args, **kwargs):
        raise AssertionError("the command started its work before checking --out")

    for target in ("echoseg.data.dataset.open_dataset", "echoseg.training.data.open_dataset",
                   "echoseg.training.loop.load_training_arrays", "echoseg.inference.load_model",
                   "echoseg.inference.files.find_inputs", "echoseg.evaluation.compare.load_tables"):
        monkeypatch.setattr(target, started)


def command(name: str, out: Path, tmp_path: Path, samples_root: Path) -> list:
    """Arguments of a valid ``name`` call writing into ``out``."""
    image = tmp_path / "a.png"
    write_image(image, gray_image())
    args = {
        "evaluate": ["evaluate", "tiny", "--data", samples_root, "--split", "val"],
        "compare": ["compare", tmp_path / "eval_a", tmp_path / "eval_b"],
        "demo": ["demo", "--model", "tiny"],
        "predict": ["predict", "tiny", image],
        "train": ["train", "lightweight", "--data", samples_root, *TRAIN_TINY],
    }[name]
    return [*args, "--out", out, *([] if name == "compare" else ["--device", "cpu"])]


COMMANDS = ["evaluate", "compare", "demo", "predict", "train"]


@pytest.mark.parametrize("name", COMMANDS)
def test_out_that_is_a_file_fails_before_any_work(cli, tiny_model, no_work, samples_root,
                                                  tmp_path, name):
    out = tmp_path / "results.txt"
    out.write_text("keep me")
    line = assert_one_error(cli(*command(name, out, tmp_path, samples_root)), out)
    assert line == f"echoseg: error: {out}: exists and is not a folder (given as --out)"
    assert out.read_text() == "keep me"


@pytest.mark.parametrize("name", COMMANDS)
def test_read_only_out_fails_before_any_work(cli, tiny_model, no_work, failing_fs, samples_root,
                                             tmp_path, name):
    out = tmp_path / "readonly"
    out.mkdir()
    (out / "old.txt").write_text("old")
    before = snapshot(out)
    args = command(name, out, tmp_path, samples_root)
    failing_fs(out, errno.EROFS)
    line = assert_one_error(cli(*args), out)
    assert line == (f"echoseg: error: {out}: cannot write into the --out folder "
                    "(Read-only file system)")
    assert snapshot(out) == before


@pytest.mark.parametrize("name", COMMANDS)
def test_out_on_a_missing_device_fails_before_any_work(cli, tiny_model, no_work, failing_fs,
                                                       samples_root, tmp_path, name):
    mount = tmp_path / "usb"
    out = mount / "results"
    args = command(name, out, tmp_path, samples_root)
    failing_fs(mount, errno.ENODEV, stat=True)
    line = assert_one_error(cli(*args), out)
    assert line == f"echoseg: error: {out}: cannot use as the --out folder (No such device)"


def test_prepared_out_folder_is_created_and_left_without_a_probe(tmp_path):
    out = tmp_path / "a" / "b"
    assert prepare_output_dir(out) == [tmp_path / "a", out]
    assert out.is_dir() and list(out.iterdir()) == []
    assert prepare_output_dir(out) == []


# --- disk errors during the work ------------------------------------------------------------

def test_evaluate_on_a_full_disk_is_one_line_naming_the_file(cli, tiny_model, samples_root,
                                                              tmp_path, full_disk):
    out = tmp_path / "eval"
    full_disk("summary.md")
    result = cli("evaluate", "tiny", "--data", samples_root, "--split", "val", "--out", out,
                 "--device", "cpu")
    line = assert_one_error(result, out / "summary.md")
    assert line.endswith("cannot write (No space left on device)")
    assert leftovers(out) == []


@pytest.mark.parametrize("name", ["evaluate", "predict"])
def test_out_on_a_full_disk_is_refused_at_once_and_not_left_behind(
        cli, tiny_model, no_work, samples_root, tmp_path, full_disk, name):
    out = tmp_path / "new" / "results"
    args = command(name, out, tmp_path, samples_root)
    full_disk()
    line = assert_one_error(cli(*args), out)
    assert line == (f"echoseg: error: {out}: cannot write into the --out folder "
                    "(No space left on device)")
    assert not (tmp_path / "new").exists()  # the folders it created are removed again
