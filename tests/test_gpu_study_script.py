"""scripts/gpu_study.py on the CPU with the smoke plan: a complete run, and one cut by its
time budget."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_study.py"


def run(samples_root, out, minutes):
    return subprocess.run([sys.executable, str(SCRIPT), "--data", str(samples_root), "--out",
                           str(out), "--plan", "smoke", "--device", "cpu", "--executor", "local",
                           "--minutes", str(minutes), "--", "--quiet"],
                          capture_output=True, text=True, timeout=600)


def test_the_script_runs_a_plan_and_collects_its_report(samples_root, tmp_path):
    done = run(samples_root, tmp_path / "out", 5)
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "out" / "gpu_study.json").read_text())
    assert record["completed"] and record["exit_code"] == 0 and not record["timed_out"]
    assert set(record["report_files"]) >= {"report.md", "results.json", "fig3_boxplots.png"}
    assert not list((tmp_path / "out" / "report").glob("*.pt"))
    assert "## Table VI" in (tmp_path / "out" / "report" / "report.md").read_text()


def test_a_run_cut_by_its_budget_says_so(samples_root, tmp_path):
    run(samples_root, tmp_path / "out", 0.01)
    record = json.loads((tmp_path / "out" / "gpu_study.json").read_text())
    assert record["timed_out"] and not record["completed"]
