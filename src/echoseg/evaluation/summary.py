"""The summary of an evaluation (summary.json) and its short markdown form (summary.md).

Only the structures the dataset labels are scored (``structures``; EchoNet-Dynamic: LV only).
The summary lists them under ``"structures"``; its per-structure dicts (dice, hausdorff, hd95,
their _std and _nan) have keys for those structures only, so an absent key means "not
labelled", while null keeps meaning "undefined" (e.g. no finite Hausdorff). For 3-structure
data every key of DESIGN.md's summary.json is there as before. The CAMUS anatomical criteria
describe LV, MYO and LA together: without all three labelled, ``anatomical_outliers`` and
``anatomical_failures`` are null and ``anatomical_note`` says why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from echoseg.labels import STRUCTURES
from echoseg.metrics import CRITERIA, nan_stats

ALL_STRUCTURES: tuple[str, ...] = tuple(STRUCTURES)  # ("LV", "MYO", "LA")
ANATOMY_NEEDS = ALL_STRUCTURES  # the CAMUS criteria measure LV, MYO and LA together


def check_structures(structures: Iterable[str]) -> tuple[str, ...]:
    """``structures`` in label order (LV, MYO, LA); ValueError when one is unknown, repeated
    or none is given."""
    names = list(structures)
    unknown = [s for s in names if s not in STRUCTURES]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"structures must be distinct names among {', '.join(STRUCTURES)}, "
                         f"got {names}")
    return tuple(s for s in STRUCTURES if s in names)


def anatomy_applies(structures: Iterable[str]) -> bool:
    """Whether the CAMUS anatomical criteria make sense for data labelling ``structures``."""
    return set(ANATOMY_NEEDS) <= set(structures)


def anatomy_note(structures: Iterable[str]) -> str:
    """Why anatomical outliers are not reported for data labelling only ``structures``."""
    return (f"not applicable: the CAMUS anatomical criteria need {', '.join(ANATOMY_NEEDS)} "
            f"labelled; this data labels {', '.join(structures)} only")


def build_summary(
    rows: list[dict], *, postprocess: str, model: str, grid: str | int, hausdorff_unit: str,
    structures: Iterable[str] = ALL_STRUCTURES,
) -> dict:
    """Summary dict of per-image rows (as written by ``score_image`` plus ids).

    Means and population stds skip NaN values; ``hausdorff_nan`` / ``hd95_nan`` count the images
    where the distance is undefined (structure missing from prediction or ground truth), per
    structure. ``hausdorff_unit`` is "mm", "px" or "mixed". Only ``structures`` are summarized
    (see the module docstring).
    """
    scored = check_structures(structures)
    summary: dict = {"n_images": len(rows), "structures": list(scored)}
    for key, column in (("dice", "dice"), ("hausdorff", "hd"), ("hd95", "hd95")):
        stats = {s: nan_stats(row[f"{column}_{s}"] for row in rows) for s in scored}
        summary[key] = {s: st.mean for s, st in stats.items()}
        summary[f"{key}_std"] = {s: st.std for s, st in stats.items()}
        if key != "dice":  # Dice is never NaN (both empty -> 1.0)
            summary[f"{key}_nan"] = {s: st.nan for s, st in stats.items()}
    if anatomy_applies(scored):
        summary["anatomical_outliers"] = sum(bool(row["anatomical_outlier"]) for row in rows)
        summary["anatomical_failures"] = {
            c: sum(not row[f"{c}_ok"] for row in rows) for c in CRITERIA
        }
    else:
        summary["anatomical_outliers"] = summary["anatomical_failures"] = None
        summary["anatomical_note"] = anatomy_note(scored)
    summary["postprocess"] = postprocess
    summary["model"] = model
    summary["grid"] = grid
    summary["hausdorff_unit"] = hausdorff_unit
    return summary


def _pm(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None or math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_markdown(summary: dict) -> str:
    """A short markdown report: mean ± std per scored structure for Dice, HD and HD95, and
    anatomical outliers (or why they do not apply)."""
    unit = summary.get("hausdorff_unit", "px")
    n = summary["n_images"]
    lines = [
        f"Model: {summary.get('model') or '-'}; post-processing: {summary.get('postprocess')}; "
        f"grid: {summary.get('grid')}; {n} images",
        "",
        f"| Structure | Dice | HD ({unit}) | HD95 ({unit}) |",
        "|---|---|---|---|",
    ]
    for s in summary.get("structures") or ALL_STRUCTURES:
        lines.append(
            f"| {s} | {_pm(summary['dice'][s], summary['dice_std'][s], 3)} "
            f"| {_pm(summary['hausdorff'][s], summary['hausdorff_std'][s], 2)} "
            f"| {_pm(summary['hd95'][s], summary['hd95_std'][s], 2)} |"
        )
    outliers = summary["anatomical_outliers"]
    if outliers is None:
        lines += ["", f"Anatomical outliers: {summary.get('anatomical_note', 'not applicable')}"]
    else:
        lines += ["", f"Anatomical outliers: {outliers} / {n} "
                      f"({100 * outliers / max(n, 1):.1f}%)"]
    missing = {s: k for s, k in summary["hausdorff_nan"].items() if k}
    if missing:
        detail = ", ".join(f"{s} {k}" for s, k in missing.items())
        lines.append(f"Hausdorff undefined (structure missing in prediction or ground truth), "
                     f"excluded from HD means: {detail}")
    return "\n".join(lines) + "\n"
