"""Overlap metrics on integer label maps."""

from __future__ import annotations

import numpy as np


def dice(pred: np.ndarray, gt: np.ndarray, label: int) -> float:
    """Dice coefficient 2|P∩G| / (|P| + |G|) of one label in two label maps of the same shape.

    Takes two 2D integer label maps and the label to score; returns a float in [0, 1].
    Convention (as in the CAMUS evaluation code): when the label is absent from both maps the
    score is 1.0 (nothing to find, nothing found), so Dice is never NaN.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"shape mismatch: prediction {pred.shape} vs ground truth {gt.shape}")
    p = pred == label
    g = gt == label
    total = int(p.sum()) + int(g.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(p, g).sum()) / total
