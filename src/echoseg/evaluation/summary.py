"""The summary of an evaluation (summary.json) and its short markdown form (summary.md)."""

from __future__ import annotations

import math

from echoseg.labels import STRUCTURES
from echoseg.metrics import CRITERIA, nan_stats


def build_summary(
    rows: list[dict], *, postprocess: str, model: str, grid: str | int, hausdorff_unit: str
) -> dict:
    """Summary dict of per-image rows (as written by ``score_image`` plus ids).

    Means and population stds skip NaN values; ``hausdorff_nan`` / ``hd95_nan`` count the images
    where the distance is undefined (structure missing from prediction or ground truth), per
    structure. ``hausdorff_unit`` is "mm", "px" or "mixed".
    """
    summary: dict = {"n_images": len(rows)}
    for key, column in (("dice", "dice"), ("hausdorff", "hd"), ("hd95", "hd95")):
        stats = {s: nan_stats(row[f"{column}_{s}"] for row in rows) for s in STRUCTURES}
        summary[key] = {s: st.mean for s, st in stats.items()}
        summary[f"{key}_std"] = {s: st.std for s, st in stats.items()}
        if key != "dice":  # Dice is never NaN (both empty -> 1.0)
            summary[f"{key}_nan"] = {s: st.nan for s, st in stats.items()}
    summary["anatomical_outliers"] = sum(bool(row["anatomical_outlier"]) for row in rows)
    summary["anatomical_failures"] = {
        c: sum(not row[f"{c}_ok"] for row in rows) for c in CRITERIA
    }
    summary["postprocess"] = postprocess
    summary["model"] = model
    summary["grid"] = grid
    summary["hausdorff_unit"] = hausdorff_unit
    return summary


def _pm(mean: float, std: float, digits: int) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_markdown(summary: dict) -> str:
    """A short markdown report: mean ± std per structure for Dice, HD and HD95, and outliers."""
    unit = summary.get("hausdorff_unit", "px")
    n = summary["n_images"]
    lines = [
        f"Model: {summary.get('model') or '-'}; post-processing: {summary.get('postprocess')}; "
        f"grid: {summary.get('grid')}; {n} images",
        "",
        f"| Structure | Dice | HD ({unit}) | HD95 ({unit}) |",
        "|---|---|---|---|",
    ]
    for s in STRUCTURES:
        lines.append(
            f"| {s} | {_pm(summary['dice'][s], summary['dice_std'][s], 3)} "
            f"| {_pm(summary['hausdorff'][s], summary['hausdorff_std'][s], 2)} "
            f"| {_pm(summary['hd95'][s], summary['hd95_std'][s], 2)} |"
        )
    outliers = summary["anatomical_outliers"]
    lines += ["", f"Anatomical outliers: {outliers} / {n} ({100 * outliers / max(n, 1):.1f}%)"]
    missing = {s: k for s, k in summary["hausdorff_nan"].items() if k}
    if missing:
        detail = ", ".join(f"{s} {k}" for s, k in missing.items())
        lines.append(f"Hausdorff undefined (structure missing in prediction or ground truth), "
                     f"excluded from HD means: {detail}")
    return "\n".join(lines) + "\n"
