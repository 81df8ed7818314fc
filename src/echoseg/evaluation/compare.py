"""Compare evaluations image by image: Wilcoxon signed-rank tests, mean ± std, outliers."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import stats

from echoseg.atomic import failure_reason
from echoseg.errors import DataError
from echoseg.evaluation.writers import read_per_image_csv
from echoseg.labels import STRUCTURES
from echoseg.metrics import nan_stats

METRICS = {"dice": "dice", "hausdorff": "hd"}  # report name -> per_image.csv column prefix


def wilcoxon_p(a: Sequence[float], b: Sequence[float]) -> dict:
    """Two-sided Wilcoxon signed-rank test of paired values a vs b.

    Pairs where either value is NaN are left out and counted (``nan_pairs``). Uses
    ``scipy.stats.wilcoxon`` defaults (zero differences dropped; exact distribution for small
    samples without ties, normal approximation otherwise). Returns {"p", "n", "nan_pairs",
    "mean_difference" (a - b)}; p is 1.0 when every difference is zero and NaN with no pairs.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    result = {"n": int(x.size), "nan_pairs": int((~keep).sum())}
    if x.size == 0:
        return {"p": math.nan, **result, "mean_difference": math.nan}
    diff = x - y
    p = 1.0 if not diff.any() else float(stats.wilcoxon(x, y).pvalue)
    return {"p": p, **result, "mean_difference": float(diff.mean())}


def load_tables(dirs: Sequence[Path | str], names: Sequence[str]) -> dict[str, dict[str, dict]]:
    """Read DIR/per_image.csv for each evaluation folder; returns {name: {image id: row}}.

    Raises DataError when a table repeats an id or when the tables cover different images
    (naming the missing ids)."""
    tables: dict[str, dict[str, dict]] = {}
    for name, folder in zip(names, dirs, strict=True):
        rows = read_per_image_csv(Path(folder) / "per_image.csv")
        table = {row["id"]: row for row in rows}
        if len(table) != len(rows):
            raise DataError(f"{folder}/per_image.csv: an image id appears twice")
        tables[name] = table
    first, ids = names[0], set(tables[names[0]])
    for name in names[1:]:
        other = set(tables[name])
        for lacking, having, missing in ((name, first, ids - other), (first, name, other - ids)):
            if missing:
                shown = ", ".join(sorted(missing)[:5]) + (", ..." if len(missing) > 5 else "")
                raise DataError(f"evaluations cover different images: {lacking} lacks "
                                f"{len(missing)} of {having}'s images ({shown})")
    return tables


def scoring_grid(folder: Path | str) -> tuple[str | int, str]:
    """(grid, Hausdorff unit) an evaluation was scored with, from its DIR/summary.json.

    Raises DataError naming the file when it is missing, unreadable, or has no "grid" and
    "hausdorff_unit" (every ``echoseg evaluate --out`` writes them)."""
    path = Path(folder) / "summary.json"
    if not path.is_file():
        raise DataError(f"{path}: no such file (compare needs each evaluation's summary.json "
                        "to check that all were scored on the same grid)")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise DataError(f"{path}: not an evaluation's summary.json "
                        f"({failure_reason(exc)})") from None
    if not isinstance(summary, dict) or not {"grid", "hausdorff_unit"} <= set(summary):
        raise DataError(f"{path}: not an evaluation's summary.json (no 'grid' and "
                        "'hausdorff_unit')")
    return summary["grid"], str(summary["hausdorff_unit"])


def common_grid(dirs: Sequence[Path | str]) -> dict:
    """{"grid", "hausdorff_unit"} that every evaluation folder shares (see ``scoring_grid``).

    Evaluations on different grids have Dice and Hausdorff values of different resolutions
    (Hausdorff in different pixel units), so pairing them image by image would test the grid,
    not the models: raises DataError naming both folders and their grids."""
    first = Path(dirs[0])
    grid, unit = scoring_grid(first)
    for folder in dirs[1:]:
        other_grid, other_unit = scoring_grid(folder)
        if (str(other_grid), other_unit) != (str(grid), unit):
            raise DataError(
                f"{folder}: scored on grid {other_grid} (Hausdorff in {other_unit}) but {first} "
                f"on grid {grid} (Hausdorff in {unit}); compare needs evaluations on the same "
                "grid: run evaluate with the same --grid")
    return {"grid": grid, "hausdorff_unit": unit}


def scored_structures(tables: dict[str, dict[str, dict]]) -> list[str]:
    """The structures every table scored: those with a Dice value (never NaN when scored) on
    some image of each; a structure its data does not label has an empty column (NaN)."""
    return [s for s in STRUCTURES
            if all(any(not math.isnan(r[f"dice_{s}"]) for r in t.values())
                   for t in tables.values())]


def _outliers(rows: list[dict]) -> int | None:
    """Images flagged as anatomical outliers; None when the criteria did not apply to any."""
    flags = [r.get("anatomical_outlier", 0) for r in rows]
    if flags and all(isinstance(f, float) and math.isnan(f) for f in flags):
        return None
    return int(sum(f == 1 for f in flags))


def compare_tables(tables: dict[str, dict[str, dict]], pairs: str = "all") -> dict:
    """Per-model mean ± std and outliers, and Wilcoxon tests per metric and structure between
    each pair of models (``pairs="all"``) or each model vs the first (``pairs="first"``), on the
    structures all of them scored (``structures``, see :func:`scored_structures`)."""
    names = list(tables)
    ids = sorted(tables[names[0]])
    structures = scored_structures(tables)
    models = []
    for name in names:
        rows = [tables[name][i] for i in ids]
        entry: dict = {"name": name, "n_images": len(rows)}
        for metric, prefix in METRICS.items():
            summary = {s: nan_stats(r[f"{prefix}_{s}"] for r in rows) for s in structures}
            entry[metric] = {s: {"mean": st.mean, "std": st.std, "nan": st.nan}
                             for s, st in summary.items()}
        entry["anatomical_outliers"] = _outliers(rows)
        models.append(entry)
    if pairs == "first":
        pairings = [(names[0], n) for n in names[1:]]
    elif pairs == "all":
        pairings = list(itertools.combinations(names, 2))
    else:
        raise ValueError(f"pairs must be 'all' or 'first', got {pairs!r}")
    tests = []
    for a, b in pairings:
        for metric, prefix in METRICS.items():
            for s in structures:
                col = f"{prefix}_{s}"
                result = wilcoxon_p([tables[a][i][col] for i in ids],
                                    [tables[b][i][col] for i in ids])
                tests.append({"a": a, "b": b, "metric": metric, "structure": s, **result})
    return {"n_images": len(ids), "structures": structures, "models": models, "tests": tests}


def _fmt_p(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.4f}"


def comparison_markdown(report: dict) -> str:
    """Markdown: a table of mean ± std per model, then a table of Wilcoxon p-values."""
    structures = report.get("structures", list(STRUCTURES))
    heads = [f"{m} {s}" for m in ("Dice", "HD") for s in structures]
    unit = report.get("hausdorff_unit", "?")
    grid = f", scored on grid {report['grid']}" if "grid" in report else ""
    lines = [f"Compared on {report['n_images']} images (paired by image id{grid}); Hausdorff "
             f"(HD) in {unit}.", "",
             "| Model | " + " | ".join(heads) + " | Outliers |",
             "|---" * (len(heads) + 2) + "|"]
    for m in report["models"]:
        cells = []
        for metric, digits in (("dice", 3), ("hausdorff", 2)):
            for s in structures:
                st = m[metric][s]
                cells.append("n/a" if math.isnan(st["mean"])
                             else f"{st['mean']:.{digits}f} ± {st['std']:.{digits}f}")
        outliers = "n/a" if m["anatomical_outliers"] is None else m["anatomical_outliers"]
        lines.append(f"| {m['name']} | " + " | ".join(cells) + f" | {outliers} |")
    lines += ["", "Wilcoxon signed-rank tests, two-sided p-values:", "",
              "| A vs B | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    by_pair: dict[tuple[str, str], list[str]] = {}
    for t in report["tests"]:
        by_pair.setdefault((t["a"], t["b"]), []).append(_fmt_p(t["p"]))
    for (a, b), cells in by_pair.items():
        lines.append(f"| {a} vs {b} | " + " | ".join(cells) + " |")
    dropped = [t for t in report["tests"] if t["nan_pairs"]]
    if dropped:
        lines.append("")
        lines += [f"- {t['a']} vs {t['b']} {t['metric']} {t['structure']}: {t['nan_pairs']} "
                  "image(s) with an undefined value left out" for t in dropped]
    return "\n".join(lines) + "\n"
