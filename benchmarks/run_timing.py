"""Where a training run's time went, from its run folder(s).

    python benchmarks/run_timing.py runs/x [runs/y ...]

Prints, per run: the epochs done, the seconds inside the epochs (training + validation, the
``seconds`` column of history.csv), the seconds between epochs (checkpoints, history and
bookkeeping: the provenance's start-to-end span minus the epochs) and that span. Start-up and
data loading come before ``start_time`` and are not in it: compare with the command's wall time.
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import datetime
from pathlib import Path


def run_timing(run: Path) -> str:
    """One line on ``run``'s time (see the module docstring); says so when it never ended."""
    prov = json.loads((run / "provenance.json").read_text())
    with open(run / "history.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["epoch"] != "swa"]
    epochs = sum(float(r["seconds"]) for r in rows)
    line = f"{run.name}: {len(rows)} epochs, {epochs:.1f} s in epochs"
    if not prov.get("end_time"):
        return f"{line} (the run did not finish: no end_time)"
    span = (datetime.fromisoformat(prov["end_time"])
            - datetime.fromisoformat(prov["start_time"])).total_seconds()
    between = span - epochs
    return (f"{line} ({epochs / max(len(rows), 1):.3f} s each), {between:.1f} s between them "
            f"({between / max(len(rows), 1):.3f} s each), {span:.0f} s from start to end")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(run_timing(Path(arg)))
