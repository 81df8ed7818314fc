"""`echoseg info DATA`: describe a dataset and list every problem found in it.

Exit code 0 when the dataset has no problem, 2 when it has (the report is still printed).
"""

from __future__ import annotations

import argparse
from collections import Counter

from echoseg.data.check import CheckReport, check
from echoseg.data.dataset import EchoDataset, open_dataset
from echoseg.data.pairs import format_size
from echoseg.data.splits import resolve_splits
from echoseg.errors import DataError

LAYOUTS = {"camus": "original CAMUS release: NIfTI/MetaImage files, Info cfg",
           "echonet": "EchoNet-Dynamic: FileList.csv, VolumeTracings.csv, Videos/*.avi",
           "folder": "image/label pairs matched by name"}
WITH_SEQUENCES = ("camus", "echonet")  # layouts whose report counts the cine loops / videos
SEEDED = "seeded 80/10/10 split"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `echoseg info`."""
    parser.add_argument("data", metavar="DATA", nargs="?", help="dataset folder")
    parser.add_argument("--system", action="store_true",
                        help="describe this machine instead: CPU and flags, GPU, versions, "
                        "runtimes and the fast paths in use")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--split-file", metavar="F", default=None,
                        help="JSON split file or CAMUS subgroup folder (default: found in DATA)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the 80/10/10 split used without a split file (default 0)")


def run(args: argparse.Namespace) -> int:
    """Print the report; returns 0 without problems, 2 with."""
    if args.system:
        return _system(args)
    if args.data is None:
        from echoseg.errors import ConfigError

        raise ConfigError("give a dataset folder DATA, or --system")
    dataset = open_dataset(args.data, strict=False)
    summary = summarize(dataset, check(dataset), args.split_file, args.seed)
    if args.json:
        from echoseg.evaluation.writers import json_text  # here: it imports numpy and scipy

        print(json_text(summary, indent=1))
    else:
        print(render(summary))
    return 2 if summary["problems"] else 0


def summarize(dataset: EchoDataset, report: CheckReport, split_file: str | None = None,
              seed: int = 0) -> dict:
    """Everything `echoseg info` reports, as a JSON-ready dict."""
    samples = dataset.samples
    problems = dataset.problems + report.problems
    try:
        splits = resolve_splits(dataset, split_file, seed)
        source = str(split_file or dataset.split_file or f"{SEEDED}, seed {seed}")
    except DataError as exc:
        splits, source = {}, None
        problems.append(str(exc))
    sizes = [s.native_size for s in samples]
    spacings = [s.spacing for s in samples if s.spacing is not None]
    frames = [q.n_frames for q in dataset.sequences]
    return {
        "root": str(dataset.root),
        "layout": dataset.layout,
        "n_patients": len(dataset.patients),
        "n_images": len(samples),
        "views": dict(sorted(Counter(s.view for s in samples if s.view).items())),
        "phases": dict(sorted(Counter(s.phase for s in samples if s.phase).items())),
        "structures": list(dataset.structures),
        "labels": report.labels,
        "n_sizes": len(set(sizes)),
        "size_min": [min(h for h, _ in sizes), min(w for _, w in sizes)] if sizes else None,
        "size_max": [max(h for h, _ in sizes), max(w for _, w in sizes)] if sizes else None,
        "n_with_spacing": len(spacings),
        "spacing_min_mm": [min(r for r, _ in spacings), min(c for _, c in spacings)]
        if spacings else None,
        "spacing_max_mm": [max(r for r, _ in spacings), max(c for _, c in spacings)]
        if spacings else None,
        "splits": {name: len(patients) for name, patients in splits.items()},
        "split_source": source,
        "n_unassigned": len(set(dataset.patients).difference(*splits.values())),
        "info_fields": sorted({key for s in samples for key in s.info}),
        "n_with_info": sum(1 for s in samples if s.info),
        "n_sequences": len(frames),
        "sequence_frames": [min(frames), max(frames)] if frames else None,
        "problems": problems,
    }


def render(summary: dict) -> str:
    """The human-readable report: one 'Field  value' line each, then the problems."""
    s = summary
    counts = "; ".join(", ".join(f"{k} {v}" for k, v in s[key].items())
                       for key in ("views", "phases") if s[key])
    rows = [
        ("Dataset", s["root"]),
        ("Layout", f"{s['layout']} ({LAYOUTS.get(s['layout'], 'unknown layout')})"),
        ("Patients", s["n_patients"]),
        ("Images", f"{s['n_images']}" + (f" ({counts})" if counts else "")),
        ("Structures", ", ".join(s["structures"]) or "none"),
        ("Labels", ", ".join(str(v) for v in s["labels"]) or "none"),
        ("Size (HxW)", _range(s["size_min"], s["size_max"], "px", s["n_sizes"])),
        ("Spacing", _range(s["spacing_min_mm"], s["spacing_max_mm"], "mm (row x column)")
         + (f", known for {s['n_with_spacing']} images" if s["n_with_spacing"] else "")),
        ("Splits", (", ".join(f"{k} {v}" for k, v in s["splits"].items()) or "none")
         + _source(s["split_source"])
         + (f"; {s['n_unassigned']} patients in no split" if s["n_unassigned"] else "")),
    ]
    if s["layout"] == "camus":
        rows.append(("Info fields", (", ".join(s["info_fields"]) or "none")
                     + f" ({s['n_with_info']} images with an Info cfg)"))
    if s["layout"] in WITH_SEQUENCES:
        frames = s["sequence_frames"]
        rows.append(("Sequences", f"{s['n_sequences']}"
                     + (f" ({frames[0]}-{frames[1]} frames)" if frames else "")))
    rows.append(("Problems", len(s["problems"]) or "none"))
    lines = [f"{k:<13}{v}" for k, v in rows]
    lines.extend(f"  {p}" for p in s["problems"])
    return "\n".join(lines)


def _range(low: list | None, high: list | None, unit: str, n_distinct: int | None = None) -> str:
    if low is None or high is None:
        return "unknown"
    if low == high:
        return f"{format_size(tuple(low))} {unit}"
    distinct = f", {n_distinct} distinct" if n_distinct else ""
    return f"{format_size(tuple(low))} to {format_size(tuple(high))} {unit}{distinct}"


def _source(source: str | None) -> str:
    if not source:
        return ""
    return f" ({source})" if source.startswith(SEEDED) else f" (from {source})"


def _system(args: argparse.Namespace) -> int:
    """``echoseg info --system``: the machine report; returns 0."""
    from echoseg.system_info import render_system, system_report

    report = system_report()
    if args.json:
        import json

        print(json.dumps(report, indent=1))
    else:
        print(render_system(report))
    return 0
