"""`echoseg bench`: inference latency of models and presets, training throughput."""

import json

import pytest
import torch

from echoseg.cli import main

TINY = ["bench", "unet0", "--set", "data.size=64", "--runtime", "all", "--batch-sizes", "1,2",
        "--repeats", "2", "--json", "--device", "cpu"]
ROW_KEYS = {"model", "runtime", "precision", "batch", "ms_per_frame_p50", "ms_per_frame_p90",
            "frames_per_s", "params", "gflops", "gflops_per_s"}


def test_bench_preset_with_random_weights_and_bundled_model(capsys):
    args = ["bench", "unet0", "lightweight", "--set", "data.size=64", "--runtime", "torch",
            "--batch-sizes", "1", "--repeats", "2", "--json", "--device", "cpu"]
    assert main(args) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    assert rows["unet0"]["size"] == 64  # a preset: the override applies
    assert rows["lightweight"]["size"] == 224  # the bundled model's own grid
    assert rows["unet0"]["ms_per_frame_p50"] > 0
    assert rows["unet0"]["calibration"] is None


def _installed_runtimes():
    from echoseg.inference.runtimes import installed

    return ["torch"] + [r for r in ("onnxruntime", "openvino")
                        if installed(r) and installed("onnx")]


def test_bench_all_runtimes_tiny_run_is_well_formed(capsys):
    from echoseg.config import load_config
    from echoseg.models import build_model, count_parameters

    assert main(TINY) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"machine", "results"}
    assert set(result["machine"]) == {"cpu", "flags", "threads", "gpu"}
    assert isinstance(result["machine"]["flags"], list) and result["machine"]["threads"] >= 1
    rows = result["results"]
    expected = {(rt, b) for rt in _installed_runtimes() for b in (1, 2)}
    assert sorted((r["runtime"], r["batch"]) for r in rows) == sorted(expected)
    params = count_parameters(build_model(load_config("unet0", ["data.size=64"]).model))
    for row in rows:
        assert set(row) >= ROW_KEYS and row["model"] == "unet0" and row["precision"] == "fp32"
        assert row["params"] == params
        for key in ("ms_per_frame_p50", "ms_per_frame_p90", "frames_per_s", "gflops",
                    "gflops_per_s"):
            assert row[key] > 0, key
        assert row["ms_per_frame_p90"] >= row["ms_per_frame_p50"]


def test_bench_all_skips_a_missing_runtime_with_one_line(capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)
    assert main(TINY) == 0
    captured = capsys.readouterr()
    runtimes = {r["runtime"] for r in json.loads(captured.out)["results"]}
    assert "openvino" not in runtimes and "torch" in runtimes
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "skipping openvino" in lines[0]


def test_bench_named_missing_runtime_is_one_line(capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)
    assert main(["bench", "unet0", "--runtime", "openvino", "--device", "cpu"]) == 2
    assert "--runtime openvino needs OpenVINO" in capsys.readouterr().err


def test_bench_int8_reports_its_calibration(capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    args = ["bench", "unet0", "--set", "data.size=32", "--runtime", "onnxruntime",
            "--precision", "all", "--batch-sizes", "1", "--repeats", "1", "--json",
            "--device", "cpu"]
    assert main(args) == 0
    rows = {r["precision"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    assert set(rows) == {"fp32", "int8"}
    assert "random images" in rows["int8"]["calibration"] and rows["fp32"]["calibration"] is None


def test_bench_text_has_rows_and_ratio_line(capsys):
    args = ["bench", "unet0", "--set", "data.size=32", "--runtime", "torch", "--batch-sizes",
            "1,2", "--repeats", "1", "--device", "cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert sum(line.startswith("unet0 ") for line in out.splitlines()) == 2
    assert "x the frames/s of torch fp32 batch 1" in out


def test_bench_train_reports_images_per_second(capsys):
    args = ["bench", "--train", "unet0", "--set", "data.size=32", "--set", "train.batch_size=2",
            "--steps", "1", "--json", "--device", "cpu"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)["unet0"]
    assert result["images_per_s"] > 0 and result["batch_size"] == 2 and result["size"] == 32
    assert result["warmup_s"] > 0 and result["compile"] == "none" and result["steps"] == 1
    assert 0.05 < result["peak_memory_gb"] < 1000  # the process's peak resident set, in GB


def test_peak_memory_units(monkeypatch):
    """ru_maxrss is KiB on Linux and bytes on macOS; the bench reports 1e9-byte GB."""
    import resource
    import types

    from echoseg.bench import timing

    usage = types.SimpleNamespace(ru_maxrss=2_000_000)
    monkeypatch.setattr(resource, "getrusage", lambda who: usage)
    monkeypatch.setattr(timing.sys, "platform", "linux")
    assert timing.peak_memory_gb(torch.device("cpu")) == pytest.approx(2.048)
    monkeypatch.setattr(timing.sys, "platform", "darwin")
    assert timing.peak_memory_gb(torch.device("cpu")) == pytest.approx(0.002)


def test_bench_unknown_name_is_one_line(capsys):
    assert main(["bench", "nope", "--device", "cpu"]) == 2
    assert "nope: no such model" in capsys.readouterr().err
