"""Run an ablation plan at the paper's settings on a GPU machine for at most a time budget.

    python scripts/gpu_study.py --data DATA --out OUT [--plan paper] [--minutes 12]
        [--executor ray --gpus-per-run 0.25 --cpus-per-run 4] [--device cuda] [-- ABLATE ARGS]

Runs ``echoseg ablate PLAN`` (full settings: 256x256, the plan's epochs, every training
patient) into OUT/study. When the budget runs out the study is interrupted; the steps it
finished are in OUT/study/report.md and results.json (ablate writes them after every step),
and ``--resume`` continues it later. Copies report.md, results.json and the figures (no
checkpoints) to OUT/report/ and writes OUT/gpu_study.json: budget, wall time, whether the plan
completed, the GPU (nvidia-smi) and the command. Exits 0 when a report was written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPORT_FILES = ("report.md", "results.json", "plan.yaml", "provenance.json")


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the study under the budget, collect the report; exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--plan", default="paper")
    parser.add_argument("--minutes", type=float, default=12.0)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--executor", default="ray")
    parser.add_argument("--gpus-per-run", default="0.25")
    parser.add_argument("--cpus-per-run", default="4")
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    out = Path(args.out)
    study = out / "study"
    command = [sys.executable, "-m", "echoseg", "ablate", args.plan, "--data", args.data,
               "--out", str(study), "--device", args.device, "--executor", args.executor,
               *(["--gpus-per-run", args.gpus_per_run, "--cpus-per-run", args.cpus_per_run]
                 if args.executor == "ray" else []), *extra]
    if (study / "plan.yaml").exists():
        command.append("--resume")
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    process = subprocess.Popen(command, start_new_session=True)
    timed_out = False
    try:
        code = process.wait(timeout=args.minutes * 60)
    except subprocess.TimeoutExpired:
        timed_out = True
        process.send_signal(signal.SIGINT)  # ablate stops; finished steps stay written
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
    seconds = time.monotonic() - start
    copied = _collect(study, out / "report")
    record = {"plan": args.plan, "budget_minutes": args.minutes, "wall_seconds": round(seconds),
              "exit_code": code, "timed_out": timed_out,
              "completed": code == 0 and not timed_out, "gpu": _gpu(), "command": command,
              "report_files": copied}
    (out / "gpu_study.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"gpu_study: exit {code} after {seconds / 60:.1f} min; report files: "
          f"{', '.join(copied) or 'none'}")
    return 0 if "report.md" in copied else 1


def _collect(study: Path, target: Path) -> list[str]:
    """Copy the study's report, results and figures (not its run folders) to ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in [*(study / n for n in REPORT_FILES), *sorted(study.glob("*.png"))]:
        if path.is_file():
            shutil.copy2(path, target / path.name)
            copied.append(path.name)
    return copied


def _gpu() -> str | None:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                               "--format=csv,noheader"], capture_output=True, text=True,
                              timeout=20).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    sys.exit(main())
