"""`echoseg bench`: inference latency of models and presets, training throughput."""

import json

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


def test_bench_unknown_name_is_one_line(capsys):
    assert main(["bench", "nope", "--device", "cpu"]) == 2
    assert "nope: no such model" in capsys.readouterr().err
