"""`echoseg ablate` end to end on real samples: smoke plan, resume, kill, seeds, leave-one-out,
cross-dataset matrix, the Ray executor."""

import json
import re
import shutil
import textwrap

import numpy as np
import pytest
from PIL import Image

from echoseg.ablation import executors
from echoseg.cli import main

TINY = """\
base: unet1
set:
  model.encoder: [8, 8, 16]
  model.decoder: [8, 8]
  data.size: 64
  data.train_split: val
  train.epochs: 1
  train.batch_size: 4
  train.lr: 0.01
"""


def ablate(out, *args, plan="smoke", data=None):
    return main(["ablate", str(plan), "--data", str(data), "--out", str(out), *args])


def trainings(err: str) -> int:
    """The models trained, as the closing summary paragraph on stderr counts them."""
    (found,) = re.findall(r"\((\d+) trained, ", err)
    return int(found)


def checkpoints(out):
    return {p.relative_to(out): p.stat().st_mtime_ns for p in out.glob("runs/*/*.pt")}


def test_smoke_plan_writes_the_study_and_resume_trains_nothing(samples_root, tmp_path, capsys):
    out = tmp_path / "study"
    assert ablate(out, data=samples_root) == 0
    err = capsys.readouterr().err
    # start (= norm none), BN; post-processing and the U-Net 1 baseline reuse those models
    assert trainings(err) == 2 and len(list(out.glob("runs/*/done.json"))) == 2
    results = json.loads((out / "results.json").read_text())
    assert [s["name"] for s in results["steps"]] == ["normalization", "post-processing"]
    pp = results["steps"][1]
    assert [v["name"] for v in pp["variants"]] == ["none", "CCA"]
    assert all(v["reuses_trained_model"] for v in pp["variants"])
    for step in results["steps"]:
        for v in step["variants"]:
            assert v["decision"]["reason"] and len(v["decision"]["tests"]) == 6
            assert 0 <= v["metrics"]["dice_mean"]["mean"] <= 1
    assert results["settings"]["seeds"] == [0] and results["settings"]["trainings"] == 2
    report = (out / "report.md").read_text()
    for heading in ("## Table IV", "## Table VI", "| post-processing: CCA |", "Fig. 3"):
        assert heading in report
    assert (out / "fig3_boxplots.png").is_file() and (out / "plan.yaml").is_file()
    assert json.loads((out / "provenance.json").read_text())["packages"]["torch"]

    before = checkpoints(out)
    assert ablate(out, "--resume", "--json", data=samples_root) == 0
    printed = capsys.readouterr()
    assert checkpoints(out) == before and printed.err == ""
    decisions = json.loads(printed.out)
    assert [s["name"] for s in decisions["steps"]] == ["normalization", "post-processing"]
    assert decisions["steps"][0]["variants"][0]["decision"] == \
        results["steps"][0]["variants"][0]["decision"]["reason"]
    assert decisions["final"]["config_diff"] == results["final"]["config_diff"]

    assert ablate(out, data=samples_root) == 2
    assert "a study is already there; pass --resume" in capsys.readouterr().err


@pytest.mark.parametrize(("killed_in_job", "left_to_train"), [(2, 1), (3, 0)])
def test_a_killed_study_resumes_only_its_unfinished_runs(samples_root, tmp_path, capsys,
                                                         monkeypatch, killed_in_job,
                                                         left_to_train):
    out = tmp_path / "study"
    calls = []
    real = executors.execute_job

    def dies(job, threads=0):
        calls.append(job.key)
        if len(calls) == killed_in_job:
            raise KeyboardInterrupt
        return real(job, threads)

    monkeypatch.setattr(executors, "execute_job", dies)
    assert ablate(out, data=samples_root) == 130
    if killed_in_job == 3:  # in step 2: step 1's tables are written already
        partial = json.loads((out / "results.json").read_text())
        assert partial["status"] == "stopped after step 1 of 2"
        assert [s["name"] for s in partial["steps"]] == ["normalization"]
        assert "**Incomplete**: stopped after step 1 of 2" in (out / "report.md").read_text()
    monkeypatch.setattr(executors, "execute_job", real)
    capsys.readouterr()
    assert ablate(out, "--resume", data=samples_root) == 0
    assert trainings(capsys.readouterr().err) == left_to_train
    assert json.loads((out / "results.json").read_text())["status"] == "complete"


def test_cheap_options_and_a_bad_plan(samples_root, tmp_path, capsys):
    plan = tmp_path / "bad.yaml"
    plan.write_text(TINY + "steps:\n  - name: act\n    variants: {x: {model.actv: relu}}\n")
    assert ablate(tmp_path / "s", plan=plan, data=samples_root) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "step 'act', variant 'x': unknown key 'model.actv'" in err
    assert not (tmp_path / "s").exists()
    assert ablate(tmp_path / "s", "--train-fraction", "0", data=samples_root) == 2
    assert "--train-fraction must be in (0, 1]" in capsys.readouterr().err


def test_seeds_and_leave_one_out(samples_root, tmp_path, capsys):
    plan = tmp_path / "loo.yaml"
    plan.write_text(TINY + textwrap.dedent("""\
        strategy: leave-one-out
        start: {model.norm: batch, postprocess: cca, model.deep_supervision: true}
        steps:
          - name: components
            table: X
            variants:
              without BN: {model.norm: none}
              without CCA: {postprocess: none}
        """))
    out = tmp_path / "study"
    assert ablate(out, "--seeds", "2", "--epochs", "2", plan=plan, data=samples_root) == 0
    assert trainings(capsys.readouterr().err) == 4  # (full, without BN) x 2 seeds
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["seeds"] == [0, 1]
    assert results["settings"]["reduced"] == "2 epochs, 2 seeds"
    step = results["steps"][0]
    assert step["kept"] is None and results["final"]["config_diff"] == {
        "model.norm": "batch", "postprocess": "cca", "model.deep_supervision": True}
    for v in step["variants"]:
        assert v["metrics"]["seeds"] == 2 and len(v["runs"]) == 2
        assert v["decision"]["conclusion"] in ("removing it helps", "the component helps",
                                               "no significant effect")
    with_seeds = step["variants"][0]["metrics"]["dice"]["LV"]
    assert with_seeds["std"] >= 0 and with_seeds["mean"] == pytest.approx(with_seeds["mean"])
    report = (out / "report.md").read_text()
    assert report.startswith("# Ablation study: loo (leave-one-out)\n\n**Reduced study**: "
                             "2 epochs, 2 seeds.")
    assert "## Table X: components" in report and "Leave-one-out" in report
    assert (out / "fig2_deep_supervision.png").is_file()  # the full model has deep supervision
    assert "Fig. 2: decoder outputs" in report


def without_la(source, target):
    """A copy of the folder dataset ``source`` whose label maps have no LA (LV-only style)."""
    shutil.copytree(source, target)
    for path in target.glob("*/*_gt.png"):
        labels = np.array(Image.open(path))
        labels[labels == 3] = 0
        Image.fromarray(labels).save(path)
    return target


def test_cross_dataset_matrix_scores_only_the_structures_each_dataset_has(samples_root,
                                                                          tmp_path, capsys):
    other = without_la(samples_root, tmp_path / "no_la")
    plan = tmp_path / "cross.yaml"
    plan.write_text(TINY + textwrap.dedent(f"""\
        steps:
          - name: normalization
            variants: {{BN: {{model.norm: batch}}}}
        cross:
          model: final
          datasets:
            camus: {{}}
            no LA: {{root: {other}}}
            camus 2CH: {{views: [2CH]}}
        """))
    out = tmp_path / "study"
    assert ablate(out, plan=plan, data=samples_root) == 0
    cross = json.loads((out / "results.json").read_text())["cross"]
    names = ["camus", "no LA", "camus 2CH"]
    assert [d["name"] for d in cross["datasets"]] == names
    for train in names:
        assert cross["matrix"][train]["no LA"]["structures"] == ["LV", "MYO"]
        assert cross["matrix"][train]["camus"]["structures"] == ["LV", "MYO", "LA"]
        assert "LA" not in cross["matrix"][train]["no LA"]["metrics"]["dice"]
        assert cross["matrix"][train]["camus 2CH"]["metrics"]["n_images"] == 8
        assert cross["matrix"][train]["camus"]["metrics"]["n_images"] == 16
    report = (out / "report.md").read_text()
    assert "## Table VIII" in report
    row = next(line for line in report.splitlines() if line.startswith("| camus → no LA |"))
    assert row.split(" | ")[3] == "—" and row.split(" | ")[7] == "—"  # Dice LA, HD LA


def test_ray_is_an_optional_extra_that_says_how_to_install_it(samples_root, tmp_path, capsys,
                                                              monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "ray", None)
    assert ablate(tmp_path / "s", "--executor", "ray", data=samples_root) == 2
    assert "pip install 'echoseg[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_ray_executor_writes_the_same_study_and_local_resume_reuses_it(samples_root,
                                                                       tmp_path, capsys):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = tmp_path / "ray"
        assert ablate(out, "--executor", "ray", data=samples_root) == 0
        assert trainings(capsys.readouterr().err) == 2
    finally:
        ray.shutdown()
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["executor"] == "ray"
    assert len(list(out.glob("runs/*/done.json"))) == 2
    before = checkpoints(out)
    assert ablate(out, "--resume", data=samples_root) == 0
    assert trainings(capsys.readouterr().err) == 0 and checkpoints(out) == before
