"""What echoseg writes and prints: its own outputs never taken as inputs, any file name
survives every CSV/JSON/markdown writer, strict JSON on every --json, and no warning lines
in normal use."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import gray_image
from echoseg import native
from echoseg.evaluation.writers import json_text, jsonable, printable

CAFE = os.fsdecode(b"caf\xe9")  # a Latin-1 name: not UTF-8, so Python holds it as "caf\udce9"


def strict_json(text: str):
    """``json.loads`` that refuses NaN and Infinity (not JSON, whatever Python writes)."""
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def predictions(out: Path) -> list[dict]:
    with open(out / "predictions.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def assert_no_warning(result) -> None:
    assert result.rc == 0, result.err
    assert "warning" not in result.err.lower(), result.err


@pytest.fixture
def no_warning_raised():
    """Fails the test if a warning other than a library's deprecation notice was raised at
    all (printed or not) while it ran."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    raised = [f"{w.category.__name__}: {w.message}" for w in caught
              if not issubclass(w.category, DeprecationWarning | PendingDeprecationWarning)]
    assert not raised, raised


# --- predict and evaluate agree on names; predict skips what it wrote ----------------------

@pytest.fixture
def inputs(tmp_path) -> Path:
    """A folder of 3 PNG images and one 3-frame NIfTI sequence."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(gray_image(seed=i)).save(folder / f"img{i}.png")
    frames = np.stack([gray_image(seed=10 + t) for t in range(3)])
    sitk.WriteImage(sitk.GetImageFromArray(frames), str(folder / "seq.nii.gz"))
    return folder


def test_predict_into_its_inputs_segments_the_same_files_again(inputs, tiny_model, cli):
    expected = sorted([str(inputs / f"img{i}.png") for i in range(3)]
                      + [str(inputs / "seq.nii.gz")] * 3)  # one row per frame
    for out in (inputs / "run1", inputs / "run2", inputs, inputs):
        result = cli("predict", tiny_model, inputs, "--out", out, "--quiet")
        assert result.rc == 0, result.err
        assert sorted(row["input"] for row in predictions(out)) == expected, out
    assert (inputs / "seq_overlay" / "frame_002.png").is_file()  # overlays exist, not re-read


def test_predict_says_what_it_skipped(inputs, tiny_model, cli):
    assert cli("predict", tiny_model, inputs, "--out", inputs / "run1").rc == 0
    result = cli("predict", tiny_model, inputs, "--out", inputs / "run2")
    assert result.rc == 0
    assert result.err.splitlines()[0] == ("echoseg: note: skipped 1 earlier output of echoseg "
                                          "(*_overlay.png, *_curve.png, *_temporal.png, "
                                          "*_overlay/, folders with its predictions.csv)")
    only_outputs = cli("predict", tiny_model, inputs / "run1", inputs / "run2" / "img0_overlay.png",
                       "--out", inputs / "run3", "--quiet")
    # run1: 4 label maps, 4 overlays, the sequence's overlay folder and its curve and temporal
    # figures; 1 overlay given itself
    assert only_outputs.errors == ["echoseg: error: nothing to segment among the inputs (4 label "
                                   "maps and 8 outputs of echoseg skipped by name)"]


def test_evaluate_scores_predicts_output_folder(samples_root, tiny_model, tmp_path, cli):
    pred = tmp_path / "pred"
    assert cli("predict", tiny_model, samples_root, "--out", pred, "--quiet").rc == 0
    assert (pred / "patient0230" / "patient0230_2CH_ED_seg.png").is_file()
    ev = tmp_path / "ev"
    result = cli("evaluate", "--pred", pred, "--data", samples_root, "--split", "val",
                 "--out", ev, "--json")
    assert result.rc == 0, result.err
    assert strict_json(result.out)["n_images"] == 16
    val = json.loads((samples_root / "splits.json").read_text())["val"]
    ids = [row["id"] for row in csv.DictReader((ev / "per_image.csv").open())]
    assert ids == sorted(f"{p}_{v}_{f}" for p in val for v in ("2CH", "4CH") for f in ("ED", "ES"))


# --- any file name survives the writers ------------------------------------------------------

@pytest.fixture
def latin1_folder(tmp_path) -> Path:
    """A folder holding ``caf\\xe9.png`` (a name that is not UTF-8) and ``ok.png``."""
    folder = tmp_path / "in"
    folder.mkdir()
    try:
        Image.fromarray(gray_image(seed=1)).save(folder / f"{CAFE}.png")
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    Image.fromarray(gray_image(seed=2)).save(folder / "ok.png")
    return folder


def test_predict_writes_its_table_for_a_name_that_is_not_utf8(latin1_folder, tiny_model,
                                                              tmp_path, cli):
    out = tmp_path / "out"
    result = cli("predict", tiny_model, latin1_folder, "--out", out, "--quiet")
    assert result.rc == 0, result.err
    assert (out / f"{CAFE}_seg.png").is_file()  # the output keeps the input's own bytes
    rows = predictions(out)  # valid UTF-8: the byte 0xE9 shown as the escape \xe9
    assert [(r["input"], r["output"]) for r in rows] == [
        (f"{latin1_folder}/caf\\xe9.png", "caf\\xe9_seg.png"),
        (f"{latin1_folder}/ok.png", "ok_seg.png")]


def test_evaluate_and_compare_write_names_that_are_not_utf8(latin1_folder, tmp_path, cli):
    labels = np.zeros((50, 40), np.uint8)
    labels[10:30, 10:30] = 1
    for stem in (CAFE, "ok"):
        Image.fromarray(labels).save(latin1_folder / f"{stem}_gt.png")
    (latin1_folder / "splits.json").write_text(json.dumps({"test": [CAFE, "ok"]}))
    pred = tmp_path / "pred"  # perfect predictions, named by id
    pred.mkdir()
    for stem in (CAFE, "ok"):
        shutil.copy(latin1_folder / f"{stem}_gt.png", pred / f"{stem}.png")
    evaluations = []
    for name in ("a", CAFE):
        ev = tmp_path / name
        result = cli("evaluate", "--pred", pred, "--data", latin1_folder, "--out", ev)
        assert result.rc == 0, result.err
        evaluations.append(ev)
    table = (evaluations[0] / "per_image.csv").read_bytes().decode("utf-8")
    assert [line.split(",")[0] for line in table.splitlines()] == ["id", "caf\\xe9", "ok"]
    assert strict_json((evaluations[0] / "summary.json").read_text())["n_images"] == 2
    out = tmp_path / "cmp"
    result = cli("compare", *evaluations, "--out", out)  # the markdown on stdout names CAFE
    assert result.rc == 0, result.err
    assert "| a vs caf\\xe9 |" in (out / "report.md").read_bytes().decode("utf-8")
    report = strict_json((out / "compare.json").read_text())
    assert [m["name"] for m in report["models"]] == ["a", "caf\\xe9"]
    assert strict_json(cli("compare", *evaluations, "--json").out)["dirs"]["caf\\xe9"] == \
        f"{tmp_path}/caf\\xe9"


@pytest.mark.parametrize(
    ("text", "shown"),
    [("plain", "plain"), ("é ü 心", "é ü 心"), (CAFE, "caf\\xe9"),
     (os.fsdecode(b"a\xff\xfeb"), "a\\xff\\xfeb"), ("lone \ud800", "lone \\xed\\xa0\\x80")])
def test_printable_text(text, shown):
    assert printable(text) == shown
    printable(text).encode("utf-8")


# --- strict JSON on every --json -------------------------------------------------------------

def test_jsonable_values():
    value = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan, "f32": np.float32(0.5),
             "i64": np.int64(3), "bool": np.bool_(True), "array": np.array([1.5, np.inf]),
             "path": Path("/a") / CAFE, "tuple": (1, math.nan), np.int64(7): "numpy key",
             CAFE: [{"deep": -math.inf}]}
    assert jsonable(value) == {"inf": None, "-inf": None, "nan": None, "f32": 0.5, "i64": 3,
                               "bool": True, "array": [1.5, None], "path": "/a/caf\\xe9",
                               "tuple": [1, None], 7: "numpy key", "caf\\xe9": [{"deep": None}]}
    assert type(jsonable(np.int64(3))) is int and type(jsonable(np.float32(1))) is float
    assert strict_json(json_text(value))["caf\\xe9"] == [{"deep": None}]


TRAIN = ["--set", "model.encoder=[8, 8, 16]", "--set", "model.decoder=[8, 8]", "--set",
         "data.size=64", "--set", "train.batch_size=8", "--set", "train.epochs=1"]


def test_train_json_without_any_validation_improvement_is_strict(samples_root, tmp_path,
                                                                 monkeypatch, cli):
    from echoseg.training import loop

    undefined = {"val_loss": math.nan, "val_dice_LV": math.nan, "val_dice_MYO": math.nan,
                 "val_dice_LA": math.nan, "val_dice_mean": math.nan}
    monkeypatch.setattr(loop, "_validate", lambda *args: dict(undefined))
    result = cli("train", "lightweight", "--data", samples_root, "--out", tmp_path / "run",
                 "--json", *TRAIN)
    assert result.rc == 0, result.err
    summary = strict_json(result.out)  # Python's json would have written -Infinity and NaN
    assert summary["best_val_dice_mean"] is None and summary["val_dice_mean"] is None
    assert summary["epoch"] == 1 and summary["train_loss"] > 0


def test_normal_predict_evaluate_and_train_print_no_warning(samples_root, tiny_model, tmp_path,
                                                            no_warning_raised, cli):
    """On a CPU without AVX-512 the C kernels are not used: silently, the reason recorded."""
    assert_no_warning(cli("predict", tiny_model, samples_root / "patient0230", "--out",
                          tmp_path / "pred"))
    result = cli("evaluate", tiny_model, "--data", samples_root, "--split", "val", "--json")
    assert_no_warning(result)
    assert strict_json(result.out)["n_images"] == 16
    run = tmp_path / "run"
    result = cli("train", "lightweight", "--data", samples_root, "--out", run, "--json", *TRAIN)
    assert_no_warning(result)
    summary = strict_json(result.out)
    assert summary["run"] == str(run) and 0 <= summary["best_val_dice_mean"] <= 1
    kernels = json.loads((run / "provenance.json").read_text())["native_kernels"]
    for state in kernels.values():
        assert state["in_use"] or state["reason"], kernels


def test_info_bench_and_models_json_are_strict(samples_root, tiny_model, monkeypatch, cli):
    """Whatever a command's results hold (numpy numbers, infinities), its --json is strict."""
    import echoseg.bench.inference
    import echoseg.models

    assert strict_json(cli("info", samples_root, "--json").out)["problems"] == []
    monkeypatch.setattr(echoseg.bench.inference, "time_calls",
                        lambda call, device, repeats, warmup=3: [np.float64(math.inf)] * repeats)
    bench = strict_json(cli("bench", tiny_model, "--device", "cpu", "--runtime", "torch",
                            "--batch-sizes", "1", "--repeats", "2", "--json").out)
    (row,) = bench["results"]
    assert row["ms_per_frame_p50"] is None and row["ms_per_frame_p90"] is None
    assert row["runtime"] == "torch" and row["batch"] == 1
    monkeypatch.setattr(echoseg.models, "list_presets", lambda: ["unet0"])
    monkeypatch.setattr(echoseg.models, "model_stats",
                        lambda config: {"params": np.int64(118488), "gflops": math.nan})
    assert strict_json(cli("models", "--json").out) == {"unet0": {"params": 118488,
                                                                  "gflops": None}}


# --- fallbacks that are normal on some machines are silent -----------------------------------

@pytest.fixture
def fresh_native(monkeypatch):
    """No C kernel loaded yet in this process, and no setting of the user's for them."""
    monkeypatch.setattr(native, "_loaded", {})
    for name in ("CC", "ECHOSEG_NATIVE", "ECHOSEG_NATIVE_FLAGS"):
        monkeypatch.delenv(name, raising=False)


def test_no_compiler_falls_back_silently_and_says_why(fresh_native, monkeypatch, tmp_path):
    from echoseg.models import bn_mish

    monkeypatch.setenv("PATH", str(tmp_path))  # no cc on it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert native.load("bn_mish", bn_mish._SIGNATURES) is None
    assert native.status() == {"bn_mish": {"in_use": False,
                                           "reason": "no C compiler 'cc' on PATH (set CC)"}}


def test_a_cpu_without_vectors_falls_back_silently(fresh_native, monkeypatch):
    from echoseg.models import bn_mish

    monkeypatch.setattr(native, "_build", lambda name: Path(f"{name}.so"))
    monkeypatch.setattr(native.ctypes, "CDLL",
                        lambda path: types.SimpleNamespace(echoseg_vector_lanes=lambda: 0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert native.load("bn_mish", bn_mish._SIGNATURES) is None
    assert native.status()["bn_mish"] == {"in_use": False, "reason": native.NO_VECTORS}


def test_a_compiler_the_user_chose_that_fails_is_said(fresh_native, monkeypatch, tmp_path):
    from echoseg.models import bn_mish

    monkeypatch.setenv("CC", str(tmp_path / "my-cc"))
    with pytest.warns(RuntimeWarning, match=re.escape(
            f"echoseg: C kernel 'bn_mish' unavailable (no C compiler '{tmp_path / 'my-cc'}' on "
            "PATH (set CC)); using PyTorch's operators instead")):
        assert native.load("bn_mish", bn_mish._SIGNATURES) is None


def test_fused_mish_without_a_cxx_compiler_falls_back_silently(monkeypatch, tmp_path):
    from echoseg.models import mish as mish_module

    def no_compiler(name, *tensors):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    monkeypatch.setenv("CXX", str(tmp_path / "no-c++"))
    monkeypatch.setattr(mish_module, "_kernel", no_compiler)
    monkeypatch.setattr(mish_module, "_fused_ok", True)
    x = torch.randn(2, 3, 4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = mish_module.mish(x)
    torch.testing.assert_close(y, F.mish(x))
    assert mish_module._fused_ok is False


def test_an_unwritable_cache_is_one_warning(samples_root, failing_fs, tmp_path):
    from echoseg.data.cache import load_arrays
    from echoseg.data.dataset import open_dataset

    samples = open_dataset(samples_root).samples[:2]
    folder = tmp_path / "cache"
    failing_fs(folder)
    message = (f"{folder}: cannot write the array cache (Read-only file system); set "
               "ECHOSEG_CACHE or data.cache_dir to a writable folder")
    with pytest.warns(UserWarning, match=f"^{re.escape(message)}$"):
        images, labels = load_arrays(samples, 32, cache_dir=folder)
    assert images.shape == labels.shape == (2, 32, 32)
