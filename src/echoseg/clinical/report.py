"""The files of ``echoseg ef``: ef.csv (one row per patient and source, with the per-view
lengths, areas and single-plane values), agreement.csv, report.md, a Bland-Altman and a scatter
plot per pair of sources (PNG: EF, plus EDV and ESV when in mL) and provenance.json; all
written atomically. ``results`` everywhere is source -> patient -> PatientMeasurement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from echoseg.clinical.agreement import SOURCES, Agreement
from echoseg.clinical.volumes import PHASES, VIEWS, PatientMeasurement
from echoseg.evaluation.writers import json_text, per_image_csv, write_text

Results = Mapping[str, Mapping[str, PatientMeasurement]]
LABELS = {"ef": "EF", "edv": "EDV", "esv": "ESV"}
VIEW_FIELDS = ("length", "area", "single_plane", "area_length", "base")
AGREEMENT_COLUMNS = ("a", "b", "quantity", "unit", "n", "r", "bias", "sd", "loa_low",
                     "loa_high", "mae")
METHOD = (
    "1. Each view: the LV long axis from the mitral annulus (ends of the LV-LA interface, else "
    "the flattest basal LV chord) to the apex, cut into 20 disks perpendicular to it.",
    "2. Volumes by the biplane method of disks (2CH + 4CH, V = pi/4 h sum a_i b_i, h = L/20 of "
    "the longer axis), single-plane (V = pi/4 h sum a_i^2) when only one view has both phases.",
    "3. EF = (EDV - ESV) / EDV in %; a vs b over patients with both: Pearson r, bias = "
    "mean(a - b), limits of agreement bias -/+ 1.96 SD, MAE = mean |a - b|.",
)


def ef_rows(results: Results) -> list[dict]:
    """One row per patient and source (patients sorted; expert, prediction, reference)."""
    rows = []
    patients = sorted({p for by_patient in results.values() for p in by_patient})
    for patient in patients:
        for source in SOURCES:
            m = results.get(source, {}).get(patient)
            if m is not None:
                rows.append(_row(patient, source, m))
    return rows


def _row(patient: str, source: str, m: PatientMeasurement) -> dict:
    row = {"patient": patient, "source": source, "method": m.method,
           "volume_unit": m.volume_unit, "edv": m.edv, "esv": m.esv, "ef": m.ef,
           "ef_tta_sd": m.ef_tta_sd}
    units = {v.geometry.unit for v in m.views.values()}
    row["length_unit"] = units.pop() if len(units) == 1 else None
    for view in VIEWS:
        for phase in PHASES:
            vm = m.views.get((view, phase))
            values = (None,) * len(VIEW_FIELDS) if vm is None else (
                vm.geometry.length, vm.geometry.area, vm.single_plane, vm.area_length,
                vm.geometry.base_method)
            row.update({f"{view}_{phase}_{f}": v for f, v in zip(VIEW_FIELDS, values,
                                                                 strict=True)})
    for view in VIEWS:
        ed, es = m.views.get((view, "ED")), m.views.get((view, "ES"))
        ok = ed is not None and es is not None and ed.single_plane > 0
        row[f"{view}_single_plane_ef"] = (
            100 * (ed.single_plane - es.single_plane) / ed.single_plane if ok else None)
    row["problems"] = " | ".join(m.problems)
    return row


def agreement_rows(agreements: Sequence[Agreement]) -> list[dict]:
    """agreement.csv rows: a, b, quantity, unit, n, r, bias, sd, loa_low, loa_high, mae."""
    return [{c: getattr(ag, c) for c in AGREEMENT_COLUMNS} for ag in agreements]


def _num(value, digits: int = 2) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def agreement_table(agreements: Sequence[Agreement]) -> list[str]:
    """The agreement table as markdown lines, with a note under it for each missing r."""
    lines = ["| a vs b | quantity | n | r | bias | limits of agreement | MAE |",
             "|---|---|---|---|---|---|---|"]
    notes = []
    for ag in agreements:
        loa = "n/a" if ag.loa_low is None else f"{ag.loa_low:.2f} to {ag.loa_high:.2f}"
        flag = " (pixel units)" if ag.unit == "px^3" else ""
        lines.append(f"| {ag.a} vs {ag.b} | {LABELS[ag.quantity]} ({ag.unit}){flag} | {ag.n} | "
                     f"{_num(ag.r, 3)} | {_num(ag.bias)} | {loa} | {_num(ag.mae)} |")
        if ag.note():
            notes.append(f"- {ag.a} vs {ag.b}, {LABELS[ag.quantity]}: {ag.note()}.")
    return lines + ([""] + notes if notes else [])


def unit_notes(results: Results) -> list[str]:
    """What the volume units mean for this run (px^3 volumes are not comparable to mL)."""
    units = {m.volume_unit for s, by in results.items() if s != "reference" for m in by.values()
             if m.edv is not None or m.esv is not None}
    if "px^3" not in units:
        return ["Volumes in mL (pixel spacing known)."]
    return ["Volumes in px^3: the pixel spacing is unknown, so they are NOT comparable to mL "
            "(nor to reference volumes); only EF (a ratio) is compared with the reference. EF "
            "does not depend on the pixel size, but it does on the pixel aspect: on images "
            "resized without keeping their aspect, it differs somewhat from the true EF."]


def problem_lines(results: Results) -> list[str]:
    """'- patient (source): problem' for every problem, patients sorted."""
    return [f"- {row['patient']} ({row['source']}): {p}"
            for row in ef_rows(results) if row["problems"]
            for p in row["problems"].split(" | ")]


def report_markdown(results: Results, agreements: Sequence[Agreement], context: Mapping,
                    provenance: Mapping | None = None) -> str:
    """report.md: what was measured, the agreement table, the method in 3 lines, the
    problems per patient and (when given) the provenance. ``context`` holds data, split,
    patients, sources (text), command, seconds and optional notes (lines)."""
    lines = [f"# Volumes and ejection fraction: {context.get('data')}", "",
             f"{context.get('patients')} patients (split: {context.get('split') or 'all'}); "
             f"sources: {context.get('sources')}.", *unit_notes(results),
             *context.get("notes", ()), "",
             "## Agreement", "", *agreement_table(agreements), "", *spread_lines(results),
             "## Method", "", *METHOD, "", "## Problems", ""]
    problems = problem_lines(results)
    lines += problems or ["None."]
    if provenance is not None:
        lines += ["", "## Provenance", "", f"- command: `{context.get('command')}`",
                  f"- wall time: {context.get('seconds', 0):.1f} s"]
        for key in ("git_commit", "python", "machine", "device", "device_name", "start_time",
                    "end_time"):
            lines.append(f"- {key}: {provenance.get(key)}")
        packages = provenance.get("packages") or {}
        lines.append("- packages: " + ", ".join(f"{k} {v}" for k, v in packages.items() if v))
    return "\n".join(lines) + "\n"


def spread_lines(results: Results) -> list[str]:
    """report.md's section on the EF spread over the TTA views (``ef_tta_sd``), with a blank
    line after it; no lines when no prediction has one."""
    spreads = sorted(((m.ef_tta_sd, p) for p, m in results.get("prediction", {}).items()
                      if m.ef_tta_sd is not None), reverse=True)
    if not spreads:
        return []
    values = [s for s, _ in spreads]
    largest = ", ".join(f"{p} ({s:.1f})" for s, p in spreads[:5])
    return ["## EF spread over the TTA views", "",
            f"SD of the EF that each of the test-time augmentation views gives alone, over "
            f"{len(values)} patients: median {float(np.median(values)):.2f} points, largest "
            f"{largest}. A large spread means that the EF depends on the image's exact "
            "position and scale: look at those patients first.", ""]


def _ef_cell(m: PatientMeasurement | None) -> str:
    """EF to 1 decimal, with '± SD' over the TTA views when known."""
    cell = _num(getattr(m, "ef", None), 1)
    sd = getattr(m, "ef_tta_sd", None)
    return cell if sd is None else f"{cell} ± {sd:.1f}"


def console_text(results: Results, agreements: Sequence[Agreement], context: Mapping) -> str:
    """What ``echoseg ef`` prints without --json: EF per patient and source, the agreement."""
    sources = [s for s in SOURCES if s in results]
    lines = ["| patient | " + " | ".join(f"EF {s}" for s in sources) + " |",
             "|---|" + "---|" * len(sources)]
    patients = sorted({p for by in results.values() for p in by})
    for p in patients:
        cells = [_ef_cell(results[s].get(p)) for s in sources]
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", *unit_notes(results), *context.get("notes", ()), "",
                      *agreement_table(agreements)]) + "\n"


def figure_panels(agreements: Sequence[Agreement], a: str, b: str) -> list[Agreement]:
    """The agreements of one pair drawn in its figures: EF, and EDV/ESV in mL; none without
    a patient."""
    return [ag for ag in agreements if ag.a == a and ag.b == b and ag.n > 0
            and (ag.quantity == "ef" or ag.unit == "mL")]


def bland_altman_figure(panels: Sequence[Agreement], path: Path | str) -> Path:
    """A Bland-Altman PNG with one panel per agreement: a - b against the mean of a and b,
    with the bias and the limits of agreement. Returns the path (written atomically)."""
    from echoseg.evaluation.figures import _save, plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
    for ax, ag in zip(axes[0], panels, strict=True):
        x, y = np.asarray(ag.a_values), np.asarray(ag.b_values)
        ax.scatter((x + y) / 2, x - y, s=14, alpha=0.7, color="tab:blue")
        ax.axhline(ag.bias, color="black", linewidth=1, label=f"bias {ag.bias:.2f}")
        if ag.loa_low is not None:
            for level in (ag.loa_low, ag.loa_high):
                ax.axhline(level, color="gray", linestyle="--", linewidth=1)
            ax.plot([], [], color="gray", linestyle="--",
                    label=f"LoA {ag.loa_low:.2f} to {ag.loa_high:.2f}")
        name = f"{LABELS[ag.quantity]} ({ag.unit})"
        ax.set_xlabel(f"mean of {ag.a} and {ag.b}, {name}", fontsize=9)
        ax.set_ylabel(f"{ag.a} - {ag.b}, {name}", fontsize=9)
        ax.set_title(f"{LABELS[ag.quantity]}: {ag.a} vs {ag.b} (n = {ag.n})", fontsize=10)
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _save(fig, path)


def scatter_figure(panels: Sequence[Agreement], path: Path | str) -> Path:
    """A scatter PNG with one panel per agreement: a against b with the identity line and r.
    Returns the path (written atomically)."""
    from echoseg.evaluation.figures import _save, plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
    for ax, ag in zip(axes[0], panels, strict=True):
        x, y = np.asarray(ag.a_values), np.asarray(ag.b_values)
        low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        pad = 0.05 * (high - low) or 1.0
        ax.plot([low - pad, high + pad], [low - pad, high + pad], color="gray",
                linestyle="--", linewidth=1)
        ax.scatter(y, x, s=14, alpha=0.7, color="tab:red")
        name = f"{LABELS[ag.quantity]} ({ag.unit})"
        ax.set_xlabel(f"{ag.b}, {name}", fontsize=9)
        ax.set_ylabel(f"{ag.a}, {name}", fontsize=9)
        ax.set_title(f"{LABELS[ag.quantity]}: r = {_num(ag.r, 3)}, n = {ag.n}", fontsize=10)
        ax.set_aspect("equal", adjustable="datalim")
    fig.tight_layout()
    return _save(fig, path)


def write_report(out_dir: Path | str, results: Results, agreements: Sequence[Agreement],
                 context: Mapping, provenance: Mapping) -> list[Path]:
    """Write every file of ``echoseg ef`` into ``out_dir``; returns the paths written."""
    out = Path(out_dir)
    rows = ef_rows(results)
    texts = {"ef.csv": per_image_csv(rows) if rows else "patient,source\n",
             "agreement.csv": (per_image_csv(agreement_rows(agreements)) if agreements
                               else ",".join(AGREEMENT_COLUMNS) + "\n"),
             "report.md": report_markdown(results, agreements, context, provenance),
             "provenance.json": json_text(provenance, indent=1) + "\n"}
    paths = [write_text(out / name, text) for name, text in texts.items()]
    for a, b in dict.fromkeys((ag.a, ag.b) for ag in agreements):
        panels = figure_panels(agreements, a, b)
        if panels:
            paths.append(bland_altman_figure(panels, out / f"bland_altman_{a}_vs_{b}.png"))
            paths.append(scatter_figure(panels, out / f"scatter_{a}_vs_{b}.png"))
    return paths
