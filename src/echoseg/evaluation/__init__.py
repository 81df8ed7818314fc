"""Evaluation: score predictions (files or a model) on a dataset split, summarize, compare."""

from echoseg.evaluation.evaluate import evaluate_model
from echoseg.evaluation.scoring import (
    Case,
    EvalItem,
    Evaluation,
    evaluate_predictions,
    score_image,
)
from echoseg.evaluation.summary import build_summary, summary_markdown

__all__ = [
    "Case",
    "EvalItem",
    "Evaluation",
    "build_summary",
    "evaluate_model",
    "evaluate_predictions",
    "score_image",
    "summary_markdown",
]
