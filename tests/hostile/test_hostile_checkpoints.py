"""Checkpoints that do not fit: one loader, one line saying what the file holds against what
the model or config expects, for every command that loads weights; never a traceback listing
hundreds of keys, and a pickle that would run code stays refused."""

from __future__ import annotations

import json
import os

import pytest
import torch

from conftest import TINY_CONFIG, assert_one_error, snapshot
from echoseg.config import dump_config, from_dict, load_config, to_dict
from echoseg.data import open_dataset, resolve_splits, save_splits
from echoseg.models import build_model
from echoseg.training.optim import EarlyStopping, build_optimizer

OTHER = {"data": {"size": 64}, "model": {"encoder": [4, 8, 16], "decoder": [8, 8]}}
DEEPER = {"data": {"size": 64}, "model": {"encoder": [8, 8, 16, 16], "decoder": [16, 8, 8]}}
NO_DS = {"data": {"size": 64}, "model": {"encoder": [8, 8, 16], "decoder": [8, 8],
                                         "deep_supervision": False}}
TINY_ARGS = ["--set", "model.encoder=[8, 8, 16]", "--set", "model.decoder=[8, 8]",
             "--set", "data.size=64", "--set", "train.epochs=2", "--set", "train.batch_size=2",
             "--set", "train.max_batches_per_epoch=1"]


def weights(raw: dict) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_model(from_dict(raw).model).state_dict()


class RunsCode:
    """Unpickling this would call os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _save(path, obj) -> None:
    torch.save(obj, path)


def _truncated(path) -> None:
    torch.save({"model": weights(TINY_CONFIG), "config": TINY_CONFIG}, path)
    path.write_bytes(path.read_bytes()[:300])


CHECKPOINTS = {
    # name: (writes the file at path, expected message after "<path>: ")
    "other_architecture": (
        lambda p: _save(p, {"model": weights(OTHER), "config": TINY_CONFIG}),
        "its weights do not fit this model (checkpoint: 64 tensors, model: 64; first "
        "difference: encoder.0.conv1.0.weight is [4, 1, 3, 3] in the checkpoint, [8, 1, 3, 3] "
        "in the model)"),
    "deeper_weights": (
        lambda p: _save(p, {"model": weights(DEEPER), "config": TINY_CONFIG}),
        "its weights do not fit this model (checkpoint: 90 tensors, model: 64; 26 not in the "
        "model, first encoder.3.conv1.0.weight)"),
    "no_deep_supervision_heads": (
        lambda p: _save(p, {"model": weights(NO_DS), "config": TINY_CONFIG}),
        "its weights do not fit this model (checkpoint: 62 tensors, model: 64; 2 missing from "
        "the checkpoint, first aux_heads.0.weight)"),
    "hostile_tensor_name": (
        lambda p: _save(p, {"model": {"x" * 500: torch.zeros(1)}, "config": TINY_CONFIG}),
        "its weights do not fit this model (checkpoint: 1 tensors, model: 64; 64 missing from "
        "the checkpoint, first encoder.0.conv1.0.weight; 1 not in the model, first a "
        "500-character name)"),
    "model_not_a_dict": (
        lambda p: _save(p, {"model": [1, 2], "config": TINY_CONFIG}),
        "not an echoseg checkpoint ('model' is a list, not a mapping)"),
    "model_holds_a_number": (
        lambda p: _save(p, {"model": {"encoder.0.conv1.0.weight": 1}, "config": TINY_CONFIG}),
        "not an echoseg checkpoint ('model' holds int at encoder.0.conv1.0.weight, not a "
        "tensor)"),
    "no_model_entry": (
        lambda p: _save(p, {"weights": {}, "epoch": 3}),
        "not an echoseg checkpoint (no 'model' entry; it holds weights, epoch)"),
    "a_list": (lambda p: _save(p, [1, 2]),
               "not an echoseg checkpoint (it holds a list, not a mapping of entries)"),
    "truncated": (_truncated, "not a readable checkpoint (PytorchStreamReader failed reading "
                              "zip archive: failed finding central directory)"),
    "text": (lambda p: p.write_text("hello world\n"),
             "not a readable checkpoint (not a PyTorch file)"),
    "empty": (lambda p: p.write_bytes(b""), "not a readable checkpoint (not a PyTorch file)"),
    "runs_code": (
        lambda p: _save(p, {"model": RunsCode(p.with_name("pwned"))}),
        f"refused: it asks to run code or build objects other than tensors and plain data "
        f"({os.system.__module__}.system)"),
    "config_invalid": (
        lambda p: _save(p, {"model": weights(TINY_CONFIG),
                            "config": {**TINY_CONFIG, "train": {"precision": "fp16"}}}),
        "train.precision: unknown value 'fp16'; valid: auto, bf16, fp32"),
    "config_not_a_mapping": (
        lambda p: _save(p, {"model": weights(TINY_CONFIG), "config": [1]}),
        "a config must be a mapping of sections, got list"),
}


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_broken_checkpoint_is_one_line(cli, samples_root, tmp_path, name):
    write, expected = CHECKPOINTS[name]
    path = tmp_path / f"{name}.pt"
    write(path)
    image = next(samples_root.glob("patient0001/*_ED.png"))
    out = tmp_path / "out"
    line = assert_one_error(cli("predict", path, image, "--out", out))
    assert line == f"echoseg: error: {path}: {expected}"
    assert not out.exists()
    assert not (tmp_path / "pwned").exists()  # the refused pickle ran nothing


@pytest.fixture
def foreign(tmp_path):
    """A checkpoint whose weights (encoder [4, 8, 16]) do not fit its config (the tiny one)."""
    path = tmp_path / "foreign.pt"
    CHECKPOINTS["other_architecture"][0](path)
    return path


MISFIT = ("its weights do not fit this model (checkpoint: 64 tensors, model: 64; first "
          "difference: encoder.0.conv1.0.weight is [4, 1, 3, 3] in the checkpoint, [8, 1, 3, 3] "
          "in the model)")


@pytest.mark.parametrize("command", [
    ["predict", "{ckpt}", "{image}", "--out", "{out}"],
    ["evaluate", "{ckpt}", "--data", "{data}", "--split", "val", "--out", "{out}"],
    ["bench", "{ckpt}", "--device", "cpu"],
    ["demo", "--model", "{ckpt}", "--out", "{out}"],
    ["train", "lightweight", "--data", "{data}", "--out", "{out}", *TINY_ARGS,
     "--set", "train.teachers=[{ckpt}]"],
])
def test_every_command_gives_the_same_line(cli, foreign, samples_root, tmp_path, command):
    image = next(samples_root.glob("patient0001/*_ED.png"))
    out = tmp_path / "out"
    args = [a.format(ckpt=foreign, image=image, out=out, data=samples_root) for a in command]
    line = assert_one_error(cli(*args))
    assert line == f"echoseg: error: {foreign}: {MISFIT}"
    assert not out.exists()


def test_init_from_names_the_first_difference_and_the_config(cli, samples_root, tmp_path):
    source = tmp_path / "source.pt"
    torch.save({"model": weights(TINY_CONFIG), "config": to_dict(from_dict(TINY_CONFIG))},
               source)
    out = tmp_path / "out"
    result = cli("train", "lightweight", "--data", samples_root, "--out", out, *TINY_ARGS,
                 "--set", "model.encoder=[4, 8, 16]", "--set", f"train.init_from={source}")
    line = assert_one_error(result)
    assert line == (
        f"echoseg: error: {source}: its weights do not fit this model (checkpoint: 64 tensors, "
        "model: 64; first difference: encoder.0.conv1.0.weight is [8, 1, 3, 3] in the "
        "checkpoint, [4, 1, 3, 3] in the model; the checkpoint's config has "
        "model.encoder=[8, 8, 16], this one [4, 8, 16])")
    assert not out.exists()


SIDECARS = {
    # tiny.json content: expected message
    "not_json": (b"{", "tiny.json: not valid JSON (Expecting property name enclosed in double "
                       "quotes at line 1, column 2)"),
    "not_utf8": (b"\xff\xfe{}", "tiny.json: not valid JSON (not UTF-8 text)"),
    "no_config": (b'{"validation": {}}', "tiny.json: no 'config' entry (the model's resolved "
                                         "config)"),
    "a_list": (b"[1, 2]", "tiny.json: no 'config' entry (the model's resolved config)"),
    "config_a_string": (b'{"config": "tiny"}', "tiny.json: 'config' must be a mapping of "
                                               "sections, got str"),
    "config_invalid": (json.dumps({"config": {**TINY_CONFIG, "train": {"epochs": 0}}}).encode(),
                       "tiny.json: train.epochs=0 must be at least 1"),
    "config_of_another_model": (json.dumps({"config": OTHER}).encode(),
                                "tiny.pt: its weights do not fit this model (checkpoint: 64 "
                                "tensors, model: 64; first difference: encoder.0.conv1.0.weight "
                                "is [8, 1, 3, 3] in the checkpoint, [4, 1, 3, 3] in the model)"),
    "missing": (None, "tiny.pt: no config inside and no tiny.json beside it"),
}


@pytest.mark.parametrize("name", SIDECARS)
def test_broken_sidecar_of_bundled_weights(cli, tiny_model, samples_root, tmp_path, name):
    content, expected = SIDECARS[name]
    meta = tmp_path / "weights" / "tiny.json"
    if content is None:
        meta.unlink()
    else:
        meta.write_bytes(content)
    out = tmp_path / "out"
    image = next(samples_root.glob("patient0001/*_ED.png"))
    line = assert_one_error(cli("predict", "tiny", image, "--out", out))
    assert line == f"echoseg: error: {tmp_path / 'weights'}/{expected}"
    assert not out.exists()


def _resumable(samples_root, tmp_path):
    """A run folder that --resume accepts (one epoch done, by hand); returns (run, state)."""
    config = load_config("lightweight", [
        "model.encoder=[8, 8, 16]", "model.decoder=[8, 8]", "data.size=64", "train.epochs=2",
        "train.batch_size=2", "train.max_batches_per_epoch=1", f"data.root={samples_root}",
        f"data.cache_dir={tmp_path / 'cache'}"])
    model = build_model(config.model)
    state = {"model": model.state_dict(),
             "optimizer": build_optimizer(model.parameters(), config.train).state_dict(),
             "scheduler": None, "early_stopping": vars(EarlyStopping(50)), "epoch": 1,
             "history": [], "config": to_dict(config), "provenance": {}, "swa": None}
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(dump_config(config))
    save_splits(resolve_splits(open_dataset(samples_root)), run / "splits.json")
    return run, state


RESUMES = {
    # name: (change to last.pt's entries, extra --set, expected message after "<last.pt>: ")
    "no_optimizer": ({"optimizer": None}, [],
                     "cannot resume from this checkpoint (no 'optimizer' entry; it holds model, "
                     "scheduler, early_stopping, epoch, history, config, provenance, swa)"),
    "epoch_not_a_number": ({"epoch": "one"}, [],
                           "cannot resume from this checkpoint ('epoch' is a str, not an "
                           "integer)"),
    "history_not_a_list": ({"history": {}}, [],
                           "cannot resume from this checkpoint ('history' is a dict, not a "
                           "list)"),
    "other_weights": ({"model": weights(OTHER)}, [],
                      "its weights do not fit this model (checkpoint: 64 tensors, model: 64; "
                      "first difference: encoder.0.conv1.0.weight is [4, 1, 3, 3] in the "
                      "checkpoint, [8, 1, 3, 3] in the model)"),
    "other_optimizer": ({}, ["train.optimizer=sgd"],
                        "cannot resume: its optimizer state does not fit (saved by another "
                        "optimizer: no 'dampening' setting)"),
    "early_stopping_keys": ({"early_stopping": {"patience": 5, "foo": 1}}, [],
                            "cannot resume: its early-stopping state does not fit "
                            "(EarlyStopping.__init__() got an unexpected keyword argument "
                            "'foo')"),
}


@pytest.mark.parametrize("name", RESUMES)
def test_resume_from_a_checkpoint_that_does_not_fit(cli, samples_root, tmp_path, name):
    change, extra, expected = RESUMES[name]
    run, state = _resumable(samples_root, tmp_path)
    state.update(change)
    state = {k: v for k, v in state.items() if v is not None or k in ("scheduler", "swa")}
    torch.save(state, run / "last.pt")
    before = snapshot(run)
    sets = [a for item in extra for a in ("--set", item)]
    line = assert_one_error(cli("train", run / "config.yaml", "--resume", "--out", run, *sets))
    assert line == f"echoseg: error: {run / 'last.pt'}: {expected}"
    assert snapshot(run) == before


@pytest.mark.parametrize("message, expected", [
    ("Error(s) in loading state_dict for UNet:\n\tsize mismatch for head.weight: copying a "
     "param", "Error(s) in loading state_dict for UNet: size mismatch for head.weight: "
              "copying a param"),
    ("\x1b[1mWeights only load failed\x1b[0m.\nmore", "Weights only load failed"),
    ("PytorchStreamReader failed: no central directory. This is an internal error. If you",
     "PytorchStreamReader failed: no central directory"),
    ("word " * 60, ("word " * 40).strip() + "..."),
    ("word " * 39 + "abcdefgh" * 3, ("word " * 39).strip() + "..."),
    ("a" * 250, "a" * 200 + "..."),
    ("", "RuntimeError"),
])
def test_foreign_messages_become_one_plain_line(message, expected):
    from echoseg.errors import plain_reason

    assert plain_reason(RuntimeError(message)) == expected
