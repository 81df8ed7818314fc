"""`echoseg bench`: inference latency of models and presets, training throughput."""

import json

import pytest
import torch

from echoseg.cli import main


def test_bench_preset_with_random_weights_and_bundled_model(capsys):
    args = ["bench", "unet0", "lightweight", "--set", "data.size=64", "--json", "--device", "cpu"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["unet0"]["fp32"]["size"] == 64  # a preset: the override applies
    assert result["lightweight"]["fp32"]["size"] == 224  # the bundled model's own grid
    assert result["unet0"]["fp32"]["ms_per_frame"] > 0


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
