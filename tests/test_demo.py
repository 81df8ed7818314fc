"""`echoseg demo` on the bundled samples with a tiny random model, and without any model."""

from __future__ import annotations

import json

import pytest
import torch

from echoseg.cli import main
from echoseg.config import from_dict
from echoseg.inference import loading
from echoseg.inference.bundle import save_bundled
from echoseg.models import build_model

STRUCTURES = ("LV", "MYO", "LA")


@pytest.fixture
def weights(tmp_path, monkeypatch):
    """An empty bundled-weights folder; tests add models to it."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setattr(loading, "WEIGHTS_DIR", folder)
    return folder


def save_tiny(folder, name: str, validation: dict | None = None) -> None:
    torch.manual_seed(0)
    config = from_dict({"data": {"size": 64}, "model": {"encoder": [8, 8, 16], "decoder": [8, 8]}})
    save_bundled(build_model(config.model), config, folder, name, validation)


def test_demo_writes_report_and_figures(weights, tmp_path, capsys):
    save_tiny(weights, "tiny", {"dice": {"LV": 0.93, "MYO": 0.87, "LA": 0.9}, "split": "val"})
    out = tmp_path / "demo"
    assert main(["demo", "--model", "tiny", "--out", str(out), "--device", "cpu"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == "tiny" and report["n_images"] == 16 and report["n_patients"] == 4
    assert len(report["images"]) == 16
    for image in report["images"]:
        assert all(0.0 <= image[f"dice_{s}"] <= 1.0 for s in STRUCTURES)
        assert (out / image["figure"]).stat().st_size > 1000
    for s in STRUCTURES:
        mean = sum(im[f"dice_{s}"] for im in report["images"]) / 16
        assert report["mean_dice"][s] == pytest.approx(mean)
    outliers = [im["id"] for im in report["images"] if im["anatomical_outlier"]]
    assert report["anatomical_outliers"] == outliers
    timing = report["inference"]
    assert timing["frames"] == 16 and timing["batch_size"] == 1 and timing["ms_per_frame"] > 0
    assert report["recorded_validation"]["dice"]["LV"] == 0.93
    assert len(list((out / "figures").glob("patient02*_*CH_E?.png"))) == 16
    markdown = (out / "report.md").read_text()
    assert "patient0232_4CH_ES" in markdown and "ms/frame" in markdown
    lines = capsys.readouterr().out.strip().splitlines()
    assert 5 <= len(lines) <= 10 and str(out) in lines[-1]
    assert any(line.startswith("Mean Dice: LV ") for line in lines)


def test_demo_without_the_bundled_model_says_so(weights, tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err
    assert "bundled model 'lightweight' is not available" in err and "lightweight.pt" in err
    assert not (tmp_path / "demo").exists()
