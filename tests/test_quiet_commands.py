"""The long commands (evaluate, export, ablate, ef) on stderr: one closing summary paragraph
naming the real numbers, nothing with --quiet, a bar only on a terminal (so none here); with
--json stdout is one JSON object. And echoseg.console on its own."""

from __future__ import annotations

import io
import json
import re
import shutil
import textwrap

import pytest
from rich.console import Console

from echoseg.cli import main
from echoseg.console import ProgressBar, count, duration, number, numbers, summary
from test_ablate import TINY

VAL_IDS = 16  # tests/data/camus224: 4 val patients x 2 views x ED/ES


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A folder holding a tiny bundled model 'tiny' (random weights, 32x32 grid)."""
    import torch

    from echoseg.config import from_dict
    from echoseg.inference.bundle import save_bundled
    from echoseg.models import build_model

    torch.manual_seed(0)
    config = from_dict({"data": {"size": 32}, "model": {"encoder": [4, 4, 8],
                                                        "decoder": [4, 4]}})
    folder = tmp_path_factory.mktemp("weights")
    save_bundled(build_model(config.model), config, folder, "tiny")
    return folder


@pytest.fixture
def tiny(tiny_weights, monkeypatch) -> str:
    """The name of the tiny bundled model, loadable by name during the test."""
    from echoseg.inference import loading

    monkeypatch.setattr(loading, "WEIGHTS_DIR", tiny_weights)
    return "tiny"


@pytest.fixture
def perfect(samples_root, tmp_path):
    """Predictions equal to the val ground truths (<id>.png)."""
    folder = tmp_path / "perfect"
    folder.mkdir()
    for gt in samples_root.glob("*/*_gt.png"):
        shutil.copy(gt, folder / gt.name.replace("_gt.png", ".png"))
    return folder


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def paragraph(err: str, start: str) -> str:
    """The one stderr line starting with ``start`` (the summary paragraph)."""
    lines = [line for line in err.splitlines() if line.startswith(start)]
    assert len(lines) == 1, err
    return lines[0]


def test_evaluate_predictions_summary_quiet_and_json(samples_root, perfect, tmp_path, capsys):
    base = ["evaluate", "--data", samples_root, "--split", "val", "--pred", perfect]
    code, out, err = run(capsys, *base, "--out", tmp_path / "ev")
    assert code == 0 and "| LV | 1.000 ± 0.000 |" in out
    assert err.count("\n") == 1 and err == paragraph(err, "Scored") + "\n"
    assert f"Scored {VAL_IDS} predictions from {perfect} on split val of {samples_root}" in err
    assert "mean Dice LV 1.000, MYO 1.000, LA 1.000" in err
    assert "mean Hausdorff LV 0.0, MYO 0.0, LA 0.0 px" in err
    outliers = json.loads((tmp_path / "ev" / "summary.json").read_text())["anatomical_outliers"]
    assert f"; {count(outliers, 'anatomical outlier')}; tables written to {tmp_path / 'ev'}." \
        in err

    code, out, err = run(capsys, *base, "--quiet")
    assert code == 0 and err == "" and "| LV |" in out  # the table is the result, still shown
    code, out, err = run(capsys, *base, "--json")
    assert code == 0 and err == "" and json.loads(out)["n_images"] == VAL_IDS


def test_evaluate_model_summary_names_its_numbers(samples_root, tiny, tmp_path, capsys):
    out_dir = tmp_path / "ev"
    code, _, err = run(capsys, "evaluate", tiny, "--data", samples_root, "--split", "val",
                       "--device", "cpu", "--runtime", "torch", "--out", out_dir)
    assert code == 0
    text = paragraph(err, "Scored")
    result = json.loads((out_dir / "summary.json").read_text())
    assert text.startswith(f"Scored {VAL_IDS} images with tiny (torch) on split val")
    assert f"mean Dice {numbers(result['dice'])};" in text
    code, _, err = run(capsys, "evaluate", tiny, "--data", samples_root, "--split", "val",
                       "--device", "cpu", "--runtime", "torch", "--quiet")
    assert code == 0 and err == ""


def test_ef_summary_agreement_quiet_and_json(samples_root, perfect, tmp_path, capsys):
    base = ["ef", samples_root, "--split", "val"]
    code, out, err = run(capsys, *base, "--pred", perfect, "--out", tmp_path / "ef")
    assert code == 0 and "| patient |" in out
    text = paragraph(err, "Measured")
    assert text.startswith(f"Measured LV volumes and EF of 4 patients of {samples_root} "
                           "(split val) from expert masks, prediction (files in ")
    assert "EF computed for 4 of 4 (expert), 4 of 4 (prediction)." in text
    assert "EF agreement: prediction vs expert r 1.000, MAE 0.0 points (n = 4)." in text
    assert text.endswith(f"Report written to {tmp_path / 'ef'}.")

    code, _, err = run(capsys, *base, "--quiet")
    assert code == 0 and err == ""
    code, out, err = run(capsys, *base, "--json", "--quiet")
    assert code == 0 and err == "" and list(json.loads(out)) == ["patients", "agreement"]


def test_ef_with_a_model_counts_its_patients(samples_root, tiny, capsys):
    code, _, err = run(capsys, "ef", samples_root, "--split", "val", "--model", tiny,
                       "--device", "cpu", "--runtime", "torch")
    text = paragraph(err, "Measured")
    assert "EF of 4 patients" in text and "prediction (model tiny, runtime torch)" in text
    computed = int(re.search(r"(\d) of 4 \(prediction\)", text).group(1))
    assert code == (0 if computed == 4 else 1)  # random weights: some EFs may fail
    assert text.endswith("Nothing written (no --out).")


def test_export_summary_quiet_and_a_failed_check(samples_root, tiny, tmp_path, monkeypatch,
                                                 capsys):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from echoseg.commands import export as command
    from echoseg.export import checks

    monkeypatch.setattr(command, "VERIFY_IMAGES", 4)
    model = tmp_path / "tiny.onnx"
    base = ["export", tiny, "--out", model, "--verify", samples_root]
    code, out, err = run(capsys, *base)
    assert code == 0 and out.startswith(f"wrote {model}")
    text = paragraph(err, "Exported")
    assert err == text + "\n"
    assert text.startswith(f"Exported tiny as ONNX opset 17 (fp32) to {model}")
    assert f"the check on 4 images of {samples_root} passed" in text

    code, out, err = run(capsys, *base, "--quiet", "--json")
    assert code == 0 and err == "" and json.loads(out)["verify"]["images"] == 4
    code, out, err = run(capsys, *base, "--quiet")
    assert (code, out, err) == (0, "", "")

    monkeypatch.setattr(checks, "MAX_LOGIT_DIFF", -1.0)  # no export can pass this
    code, out, err = run(capsys, *base, "--quiet")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith(f"echoseg: error: {model}: the export failed its check")


PLAN = TINY + """\
steps:
  - name: post-processing
    variants: {CCA: {postprocess: cca}}
"""


def test_ablate_summary_resume_quiet_and_json(samples_root, tmp_path, capsys):
    plan = tmp_path / "tiny.yaml"
    plan.write_text(textwrap.dedent(PLAN))
    study = tmp_path / "study"
    base = ["ablate", plan, "--data", samples_root, "--out", study]
    code, out, err = run(capsys, *base)
    assert code == 0 and out.startswith(f"study folder: {study}")
    text = paragraph(err, "Ablation study")
    assert err == text + "\n"  # no progress lines any more
    assert text.startswith(f"Ablation study tiny (greedy, 1 step, 1 seed) on {samples_root}: "
                           "ran 2 runs (1 trained, 1 only scored, 0 failed) in ")
    assert json.loads((study / "results.json").read_text())["settings"]["trainings"] == 1
    assert text.endswith(f"tables in {study} (report.md, results.json).")

    code, out, err = run(capsys, *base, "--resume", "--quiet")
    assert (code, out, err) == (0, "", "")
    code, out, err = run(capsys, *base, "--resume", "--json")
    assert code == 0 and err == "" and json.loads(out)["plan"] == "tiny"


def test_progress_bar_draws_only_on_a_terminal(capsys):
    with ProgressBar(3, "work") as bar:  # stderr captured: not a terminal
        assert not bar.shown
        assert list(bar.track("abc")) == ["a", "b", "c"]
        bar.line("a note")
    assert capsys.readouterr().err == "a note\n"
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=80)
    with ProgressBar(2, "work", console=terminal) as bar:
        assert bar.shown
        bar.advance(3)  # more than the estimate: the total grows
        assert bar.total == 3
        bar.line("above the bar")
    assert "above the bar" in screen.getvalue() and "work" in screen.getvalue()
    assert not ProgressBar(5, "work", quiet=True, console=terminal).shown
    assert not ProgressBar(1, "work", console=terminal).shown  # one step: no bar


def test_summary_and_formatting_helpers(capsys):
    summary("two\nlines")
    summary("hidden", quiet=True)
    assert capsys.readouterr().err == "two lines\n"
    assert (count(1, "image"), count(2, "patient"), count(0, "run")) == (
        "1 image", "2 patients", "0 runs")
    assert numbers({"LV": 0.9412, "LA": None}) == "LV 0.941, LA n/a"
    assert number(float("nan")) == "n/a"
    assert (duration(42.4), duration(185), duration(7500)) == ("42 s", "3 min 5 s",
                                                              "2 h 5 min")


def test_train_summary_and_quiet(samples_root, tmp_path, capsys):
    base = ["train", "lightweight", "--data", samples_root, "--set", "train.epochs=1",
            "--set", "data.train_split=val", "--set", "data.size=64",
            "--set", "train.batch_size=4", "--set", "model.encoder=[8,8,16]",
            "--set", "model.decoder=[8,8]"]
    code, out, err = run(capsys, *base, "--out", tmp_path / "a")
    assert code == 0 and out.startswith(f"run folder: {tmp_path / 'a'} (best epoch 1")
    text = paragraph(err, "Trained")
    assert text.startswith(f"Trained lightweight on {samples_root} up to epoch 1 of 1 in ")
    assert "(64² grid, batch 4): last validation Dice LV " in text
    assert text.endswith(f"at epoch 1; weights, history and provenance in {tmp_path / 'a'}.")
    code, out, err = run(capsys, *base, "--out", tmp_path / "b", "--quiet")
    assert code == 0 and err == "" and out.startswith("run folder:")
