"""`echoseg evaluate MODEL`: a real (tiny, briefly trained) run folder scored end to end."""

import csv
import json

import pytest

from echoseg.cli import main
from echoseg.config import load_config
from echoseg.training import train

TINY = ["model.encoder=[8, 8, 16]", "model.decoder=[8, 8]", "data.size=64",
        "train.batch_size=4", "train.lr=0.01", "train.epochs=2"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from pathlib import Path

    samples = Path(__file__).parent / "data" / "camus224"
    run = tmp_path_factory.mktemp("run") / "tiny"
    train(load_config("lightweight", [*TINY, f"data.root={samples}"]), run, quiet=True)
    return run


def test_evaluate_run_folder_writes_tables_worst_cases_and_decoder_figures(
        tiny_run, samples_root, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(["evaluate", str(tiny_run), "--data", str(samples_root), "--split", "val",
                 "--out", str(out), "--worst", "2", "--device", "cpu"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == 16  # 4 validation patients x 4 images
    assert summary["postprocess"] == "cca"  # the run's config decides
    assert all(0.0 <= summary["dice"][s] <= 1.0 for s in ("LV", "MYO", "LA"))
    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16 and {r["patient"] for r in rows} == {
        "patient0200", "patient0206", "patient0230", "patient0232"}
    worst = sorted(p.name for p in (out / "worst").iterdir())
    assert len([w for w in worst if w.endswith("_decoder.png")]) == 2  # deep supervision: Fig. 2
    assert len([w for w in worst if not w.endswith("_decoder.png")]) == 2
    assert "LV" in capsys.readouterr().out


def test_evaluate_model_grid_option_uses_the_model_grid(tiny_run, samples_root, capsys):
    assert main(["evaluate", str(tiny_run), "--data", str(samples_root), "--split", "val",
                 "--grid", "model", "--json", "--device", "cpu"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["grid"] == 64 and summary["hausdorff_unit"] == "px"
