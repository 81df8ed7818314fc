"""The README's tour runs as written: every ```sh block of README.md, in a fresh folder, with
this Python's echoseg first on PATH and an empty cache."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def shell_blocks(text: str) -> list[str]:
    """The bodies of the fenced blocks whose info string is ``sh``."""
    return re.findall(r"^```sh\n(.*?)^```$", text, flags=re.M | re.S)


def test_the_readme_has_a_tour():
    blocks = shell_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) == 1 and "echoseg predict" in blocks[0]


@pytest.mark.slow
def test_readme_shell_blocks_run(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "ECHOSEG_CACHE": str(tmp_path / "cache")}
    for block in shell_blocks(README.read_text(encoding="utf-8")):
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{block}\n{done.stderr[-2000:]}"
    for output in ("predict/predictions.csv", "dicom/patient0200_4CH_seg.nii.gz",
                   "eval/summary.json", "run/best.pt", "eval_run/summary.json",
                   "compare/report.md", "ef/ef.csv", "lightweight.onnx", "onnx/predictions.csv",
                   "study/report.md"):
        assert (tmp_path / "tour" / output).is_file(), output
