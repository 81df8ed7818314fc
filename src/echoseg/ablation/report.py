"""The study's report: report.md with the paper's tables, and its figures.

Table IV: baselines against the final model. Table VI: every step, every variant, the decision.
Steps that name a table (e.g. ``table: V`` for augmentation) get a detailed table with
Hausdorff p-values too. Table VIII: the cross-dataset matrix. Fig. 3: boxplots of the final
model against the baseline; Fig. 2: the decoder outputs of a deep-supervision model.
"""

from __future__ import annotations

import math
from pathlib import Path

from echoseg.labels import STRUCTURES


def _pm(stat: dict | None, digits: int = 3) -> str:
    if not stat or stat.get("mean") is None or math.isnan(stat["mean"]):
        return "n/a"
    std = stat.get("std")
    if std is None or math.isnan(std) or std == 0:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {std:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return "<0.001" if value < 1e-3 else f"{value:.3f}"


def _metric_cells(entry: dict, structures=tuple(STRUCTURES)) -> list[str]:
    m = entry.get("metrics") or {}
    if entry.get("error") or not m:
        return ["failed"] * (2 * len(structures) + 2)
    dice = [_pm(m["dice"].get(s)) if s in m["dice"] else "—" for s in structures]
    hd = [_pm(m["hausdorff"].get(s), 1) if s in m["hausdorff"] else "—" for s in structures]
    return [*dice, _pm(m["dice_mean"]), *hd, _pm(m["anatomical_outliers"], 1)]


def _tests(decision: dict | None, metric: str) -> str:
    if not decision or "tests" not in decision:
        return "n/a"
    cells = []
    for t in decision["tests"]:
        if t["metric"] == metric:
            mark = {"better": "↑", "worse": "↓"}.get(t["effect"], "")
            cells.append(f"{_p(t['p'])}{mark}")
    return " / ".join(cells) or "n/a"


def _header(first: str, extra: list[str]) -> list[str]:
    cols = [first, *(f"Dice {s}" for s in STRUCTURES), "Dice mean",
            *(f"HD {s}" for s in STRUCTURES), "outliers", *extra]
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def render(results: dict) -> str:
    """The report.md text of a study's ``results`` (as written to results.json)."""
    s = results["settings"]
    lines = [f"# Ablation study: {results['plan']} ({results['strategy']})", ""]
    if results.get("status", "complete") != "complete":
        lines += [f"**Incomplete**: {results['status']}; `--resume` continues it.", ""]
    if s.get("reduced"):
        lines.append(f"**Reduced study**: {s['reduced']}. Its figures are not the paper's "
                     "settings; read them as a cheap rehearsal of the procedure.")
        lines.append("")
    lines += [f"- Command: `{s['command']}`",
              f"- Data: {s['data']}; variants chosen on split '{s['split']}', metrics on the "
              f"{s['grid']} grid (Hausdorff in {s.get('hausdorff_unit') or 'px'}); seeds "
              f"{', '.join(map(str, s['seeds']))}",
              f"- Rule: {s['rule']}",
              f"- Machine: {s['machine']}; executor {s['executor']}; wall time "
              f"{s['wall_seconds'] / 60:.1f} min; {s['trainings']} trainings",
              f"- echoseg {s['version']}, git {s.get('git_commit') or 'unknown'}, {s['date']}", ""]
    lines += _table_iv(results)
    lines += _table_vi(results)
    for step in results["steps"]:
        if step.get("table"):
            lines += _step_table(step)
    lines += _final_split(results)
    lines += _table_viii(results.get("cross"))
    figures = results.get("figures") or {}
    if figures:
        lines += ["## Figures", ""]
        for title, name in figures.items():
            lines += [f"**{title}**", "", f"![{title}]({name})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _table_iv(results: dict) -> list[str]:
    rows = results.get("baselines") or []
    lines = ["## Table IV: baselines against the final model", ""]
    lines += _header("model", ["p Dice vs final (LV / MYO / LA)"])
    for entry in rows:
        lines.append(_row([entry["name"], *_metric_cells(entry),
                           _tests(entry.get("against_final"), "dice")]))
    final = results["final"]
    lines.append(_row([f"final ({final.get('label', 'final')})", *_metric_cells(final), ""]))
    return [*lines, ""]


def _table_vi(results: dict) -> list[str]:
    loo = results["strategy"] == "leave-one-out"
    title = ("Leave-one-out: each component removed from the full model" if loo else
             "Table VI: the incremental study, step by step")
    lines = [f"## {title}", ""]
    lines += _header("step / variant", ["p Dice (LV / MYO / LA)", "decision"])
    for step in results["steps"]:
        ref = step["reference"]
        lines.append(_row([f"**{step['name']}** (reference: current best)",
                           *_metric_cells(ref), "", ""]))
        for v in step["variants"]:
            d = v.get("decision") or {}
            verdict = d.get("conclusion") or (
                "**kept**" if v["name"] == step["kept"] else
                f"passes, but {step['kept']} has the higher mean Dice" if d.get("keep") else
                "discarded")
            reason = d.get("reason", "")
            lines.append(_row([f"{step['name']}: {v['name']}", *_metric_cells(v),
                               _tests(d, "dice"), f"{verdict} ({reason})" if reason else verdict]))
        if not loo:
            kept = step["kept"]
            lines.append(_row([f"→ {step['name']}: " + (f"keep {kept}" if kept else "no change"),
                               *[""] * (2 * len(STRUCTURES) + 4)]))
    return [*lines, ""]


def _step_table(step: dict) -> list[str]:
    lines = [f"## Table {step['table']}: {step['name']}", ""]
    lines += _header("variant", ["p Dice", "p Hausdorff", "decision"])
    lines.append(_row(["reference", *_metric_cells(step["reference"]), "", "", ""]))
    for v in step["variants"]:
        d = v.get("decision") or {}
        lines.append(_row([v["name"], *_metric_cells(v), _tests(d, "dice"),
                           _tests(d, "hausdorff"), d.get("conclusion") or d.get("reason", "")]))
    return [*lines, ""]


def _final_split(results: dict) -> list[str]:
    fs = results.get("final_split")
    if not fs:
        return []
    lines = [f"## Baseline and final model on the held-out split '{fs['split']}'", ""]
    lines += _header("model", ["p Dice", "p Hausdorff"])
    lines.append(_row(["baseline", *_metric_cells(fs["baseline"]), "", ""]))
    lines.append(_row(["final", *_metric_cells(fs["final"]), _tests(fs.get("test"), "dice"),
                       _tests(fs.get("test"), "hausdorff")]))
    return [*lines, ""]


def _table_viii(cross: dict | None) -> list[str]:
    if not cross:
        return []
    names = [d["name"] for d in cross["datasets"]]
    lines = [f"## Table VIII: cross-dataset mean Dice ({cross['model']} model; rows: trained "
             "on, columns: tested on)", "", "| trained on | " + " | ".join(names) + " |",
             "|" + "---|" * (len(names) + 1)]
    for train in names:
        cells = []
        for test in names:
            entry = cross["matrix"][train][test]
            m = entry.get("metrics") or {}
            cells.append("failed" if entry.get("error") or not m else _pm(m["dice_mean"]))
        lines.append(_row([train, *cells]))
    lines += ["", "Per structure (only the structures each test dataset has):", ""]
    lines += _header("trained on → tested on", [])
    for train in names:
        for test in names:
            entry = cross["matrix"][train][test]
            lines.append(_row([f"{train} → {test}", *_metric_cells(entry)]))
    return [*lines, ""]


def write_figures(results: dict, out: Path) -> dict[str, str]:
    """Fig. 3 (boxplots, final vs baseline) and Fig. 2 (decoder outputs of the final model,
    when it has deep supervision) into ``out``; returns {title: file name}."""
    from echoseg.ablation.study import read_table
    from echoseg.evaluation.figures import boxplots

    figures: dict[str, str] = {}
    fs = results.get("final_split")
    pair = ((fs["baseline"], fs["final"]) if fs and not (fs["baseline"]["error"] or
                                                         fs["final"]["error"])
            else (results["start"], results["final"]))
    if not any(e.get("error") for e in pair):
        values = {}
        for label, entry in zip(("baseline", "final"), pair, strict=True):
            table = read_table(entry["evaluations"])
            values[label] = {c: [row[c] for row in table.values()]
                             for c in next(iter(table.values()))}
        split = fs["split"] if fs else results["settings"]["split"]
        boxplots(values, out / "fig3_boxplots.png",
                 hausdorff_unit=results["settings"].get("hausdorff_unit") or "px")
        figures[f"Fig. 3: final model vs baseline, split '{split}'"] = "fig3_boxplots.png"
    name = _deep_supervision_figure(results, out)
    if name:
        figures["Fig. 2: decoder outputs of the final model (deep supervision)"] = name
    return figures


def _deep_supervision_figure(results: dict, out: Path) -> str | None:
    from echoseg.ablation.runs import evaluation_samples
    from echoseg.data.readers import read_image
    from echoseg.evaluation.figures import deep_supervision_figure
    from echoseg.inference import load_model

    final = results["final"]
    if final.get("error") or not final.get("runs"):
        return None
    run = Path(results["settings"]["out"]) / "runs" / final["runs"][0]
    model = load_model(run, device="cpu", postprocess="none")
    if not model.config.model.deep_supervision:
        return None
    settings = results["settings"]
    samples = evaluation_samples(settings["data"], [], settings["split"],
                                 {"data": {"root": settings["data"]}})
    image, _ = read_image(Path(samples[0].image_path))
    logits = model.decoder_outputs(image)
    titles = ["final"] + [f"auxiliary {i}" for i in range(1, len(logits))]
    deep_supervision_figure(logits, out / "fig2_deep_supervision.png", image=image,
                            titles=titles)
    return "fig2_deep_supervision.png"
