"""Inference does not need training code: loading a model, predicting and the inference
commands import nothing from echoseg.training or echoseg.ablation."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
import numpy as np
from echoseg.commands import evaluate, predict  # noqa: F401
from echoseg.inference import load_model
load_model("lightweight", runtime="torch").predict(np.zeros((64, 64), np.uint8))
print(sorted(m for m in sys.modules if m.startswith(("echoseg.training", "echoseg.ablation"))))
"""


def test_inference_imports_no_training_code():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=300, check=True)
    assert out.stdout.strip() == "[]"
