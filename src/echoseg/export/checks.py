"""The numbers an export is checked by, and its pass/fail thresholds.

fp32: the exported model's logits against PyTorch's on the same grid images: max |Δlogit| and
label agreement (share of pixels with the same argmax). int8: mean Dice (LV, MYO, LA, every
image; no post-processing, on the model grid) of the int8 labels against the fp32 (PyTorch)
labels, and of both against the ground truth.
"""

from __future__ import annotations

import numpy as np

from echoseg.metrics.overlap import dice

MAX_LOGIT_DIFF = 1e-3  # fp32: largest allowed |exported - PyTorch| logit
MIN_AGREEMENT = 0.999  # fp32: smallest allowed share of equal argmax pixels
MIN_INT8_DICE = 0.95  # int8: smallest allowed mean Dice against fp32
FOREGROUND = (1, 2, 3)


def mean_dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean Dice over labels 1..3 and images of label maps ``pred`` and ``ref`` (N, S, S)."""
    return float(np.mean([dice(p, r, k) for p, r in zip(pred, ref, strict=True)
                          for k in FOREGROUND]))


def fp32_check(reference: np.ndarray, exported: np.ndarray) -> dict:
    """``reference`` and ``exported`` logits (N, 4, S, S) -> {"max_abs_logit_diff",
    "label_agreement" (0..1), "passed" (both within the thresholds)}."""
    diff = float(np.abs(reference.astype(np.float64) - exported).max())
    agreement = float(np.mean(reference.argmax(1) == exported.argmax(1)))
    return {"max_abs_logit_diff": diff, "label_agreement": agreement,
            "passed": diff <= MAX_LOGIT_DIFF and agreement >= MIN_AGREEMENT}


def int8_check(fp32_labels: np.ndarray, int8_labels: np.ndarray,
               truth: np.ndarray | None) -> dict:
    """Label maps (N, S, S) of the fp32 and int8 models and the ground truth (or None) ->
    {"dice_int8_vs_fp32", "dice_fp32_vs_truth", "dice_int8_vs_truth", "label_agreement",
    "passed" (Dice against fp32 at least MIN_INT8_DICE)}."""
    result = {"dice_int8_vs_fp32": mean_dice(int8_labels, fp32_labels),
              "label_agreement": float(np.mean(int8_labels == fp32_labels))}
    if truth is not None:
        result["dice_fp32_vs_truth"] = mean_dice(fp32_labels, truth)
        result["dice_int8_vs_truth"] = mean_dice(int8_labels, truth)
    result["passed"] = result["dice_int8_vs_fp32"] >= MIN_INT8_DICE
    return result


def failure_reason(result: dict) -> str | None:
    """Why a check result failed, in one line, or None when it passed."""
    if result["passed"]:
        return None
    if "max_abs_logit_diff" in result:
        return (f"max |Δlogit| {result['max_abs_logit_diff']:.2e} (limit {MAX_LOGIT_DIFF:g}), "
                f"label agreement {result['label_agreement']:.5f} (limit {MIN_AGREEMENT})")
    return (f"int8 mean Dice vs fp32 {result['dice_int8_vs_fp32']:.4f} "
            f"(limit {MIN_INT8_DICE})")
