"""The keep rule of the study, on per-image tables (image id -> metric columns).

Default (the paper's procedure, made explicit): a candidate replaces the current best when its
mean Dice over the three structures is higher, at least one structure improves with a Wilcoxon
signed-rank p < alpha on per-image Dice or Hausdorff, and no structure gets significantly worse
on either metric. Among several such candidates, the best mean Dice is kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from echoseg.ablation.plan import Rule
from echoseg.evaluation.compare import wilcoxon_p
from echoseg.labels import STRUCTURES as _LABELS

Table = Mapping[str, Mapping[str, float]]
COLUMNS = {"dice": "dice", "hausdorff": "hd"}  # metric -> per-image column prefix
HIGHER_IS_BETTER = {"dice": True, "hausdorff": False}
STRUCTURES = tuple(_LABELS)
DEFAULT_RULE = Rule()


def mean_dice(table: Table, structures: tuple[str, ...] = STRUCTURES) -> float:
    """Mean over ``structures`` of the mean per-image Dice of ``table``."""
    return float(np.mean([np.nanmean([row[f"dice_{s}"] for row in table.values()])
                          for s in structures]))


def _scored(table: Table, structure: str) -> bool:
    return any(not math.isnan(row.get(f"dice_{structure}", math.nan)) for row in table.values())


def paired_tests(best: Table, candidate: Table, rule: Rule = DEFAULT_RULE,
                 structures: tuple[str, ...] = STRUCTURES) -> list[dict]:
    """Wilcoxon tests of ``candidate`` against ``best`` on their common images, per metric of
    ``rule`` and structure: {"metric", "structure", "p", "n", "mean_difference" (candidate -
    best), "effect": "better" | "worse" | "none"} (significant at ``rule.alpha``)."""
    ids = sorted(set(best) & set(candidate))
    tests = []
    for metric in rule.metrics:
        for s in structures:
            column = f"{COLUMNS[metric]}_{s}"
            result = wilcoxon_p([candidate[i][column] for i in ids], [best[i][column] for i in ids])
            effect = "none"
            if not math.isnan(result["p"]) and result["p"] < rule.alpha \
                    and result["mean_difference"] != 0:
                gain = result["mean_difference"] > 0
                effect = "better" if gain == HIGHER_IS_BETTER[metric] else "worse"
            tests.append({"metric": metric, "structure": s, **result, "effect": effect})
    return tests


def decide(best: Table, candidate: Table, rule: Rule = DEFAULT_RULE,
           structures: tuple[str, ...] = STRUCTURES) -> dict:
    """Whether ``candidate`` would replace ``best``: {"keep", "reason", "mean_dice",
    "best_mean_dice", "tests"}. A structure neither table scored (Dice NaN on every image,
    as for data that does not label it) is left out."""
    structures = tuple(s for s in structures if _scored(best, s) or _scored(candidate, s))
    tests = paired_tests(best, candidate, rule, structures)
    ours, theirs = mean_dice(candidate, structures), mean_dice(best, structures)
    better = [f"{t['metric']} {t['structure']}" for t in tests if t["effect"] == "better"]
    worse = [f"{t['metric']} {t['structure']}" for t in tests if t["effect"] == "worse"]
    if worse:
        keep, reason = False, f"significantly worse: {', '.join(worse)}"
    elif rule.require_mean_dice_gain and not ours > theirs:
        keep, reason = False, "mean Dice not higher"
    elif not better:
        keep, reason = False, "no significant improvement"
    else:
        keep, reason = True, f"significantly better: {', '.join(better)}"
    return {"keep": keep, "reason": reason, "mean_dice": ours, "best_mean_dice": theirs,
            "tests": tests}


def choose(best: Table, candidates: Mapping[str, Table], rule: Rule = DEFAULT_RULE,
           structures: tuple[str, ...] = STRUCTURES) -> tuple[str | None, dict[str, dict]]:
    """Apply :func:`decide` to every candidate; returns (the kept candidate's name, or None
    when none passes, {name: decision}). Among passing candidates the best mean Dice wins
    (the first in order on a tie)."""
    decisions = {name: decide(best, table, rule, structures)
                 for name, table in candidates.items()}
    passing = [name for name, d in decisions.items() if d["keep"]]
    kept = max(passing, key=lambda n: decisions[n]["mean_dice"]) if passing else None
    return kept, decisions
