"""`echoseg models`: JSON for scripts, a table for people."""

from __future__ import annotations

import json

from echoseg.cli import main

PARAMS = {"unet0": 118_488, "unet1": 1_976_644, "lightweight": 1_979_828, "unet2": 10_858_836,
          "unet3": 31_387_472, "nnunet2d": 33_467_800}  # as in test_models.py


def test_models_json(capsys):
    assert main(["models", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted(out) == sorted(PARAMS)
    for name, stats in out.items():
        assert set(stats) == {"params", "gflops"}
        assert stats["params"] == PARAMS[name]
    assert abs(out["lightweight"]["gflops"] - 8.011) < 1e-3
    assert out["unet0"]["gflops"] < out["unet1"]["gflops"] < out["unet2"]["gflops"]


def test_models_table(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "1,979,828" in out and "33,467,800" in out
    assert "batch/mish" in out and "instance/leaky_relu(0.01)" in out
