"""`echoseg compare`: paired comparison of evaluations (Wilcoxon tests, boxplots, report)."""

from __future__ import annotations

import argparse
from pathlib import Path

from echoseg.outdir import prepare_output_dir, removes_unused_output_dirs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `echoseg compare`."""
    parser.add_argument("dirs", nargs="+", metavar="DIR",
                        help="evaluation folders written by `echoseg evaluate --out` "
                        "(per_image.csv and summary.json), all scored on the same --grid; "
                        "at least two")
    parser.add_argument("--out", metavar="DIR",
                        help="write report.md, compare.json and boxplots.png here")
    parser.add_argument("--names", help="comma-separated model names (default: folder names)")
    parser.add_argument("--pairs", choices=("all", "first"), default="all",
                        help="test every pair of models (all) or each against the first")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON only")


def _names(args: argparse.Namespace) -> list[str]:
    """The model names, as printable text (they label tables, JSON keys and figures)."""
    from echoseg.errors import ConfigError
    from echoseg.evaluation.writers import printable

    if args.names:
        names = [printable(n.strip()) for n in args.names.split(",")]
        if len(names) != len(args.dirs):
            raise ConfigError(f"--names has {len(names)} names for {len(args.dirs)} folders")
    else:
        names = [printable(Path(d).resolve().name) for d in args.dirs]
    if len(set(names)) != len(names) or not all(names):
        raise ConfigError(f"model names must be distinct and non-empty, got {', '.join(names)}; "
                          "set them with --names A,B,...")
    return names


@removes_unused_output_dirs
def run(args: argparse.Namespace) -> int:
    """Read, pair and test; print the report; write files only when everything succeeded."""
    from echoseg.errors import ConfigError
    from echoseg.evaluation.compare import (
        common_grid,
        compare_tables,
        comparison_markdown,
        load_tables,
    )
    from echoseg.evaluation.figures import boxplots
    from echoseg.evaluation.writers import json_text, summary_json, write_text

    if len(args.dirs) < 2:
        raise ConfigError("compare needs at least two evaluation folders")
    names = _names(args)
    if args.out:
        prepare_output_dir(args.out)  # a bad --out fails before the work, not after it
    tables = load_tables(args.dirs, names)
    grid = common_grid(args.dirs)  # p-values of evaluations on different grids mean nothing
    report = compare_tables(tables, pairs=args.pairs)
    report["dirs"] = {n: str(d) for n, d in zip(names, args.dirs, strict=True)}
    report.update(grid)
    markdown = comparison_markdown(report)
    if args.out:
        ids = sorted(tables[names[0]])
        values = {n: {c: [tables[n][i][c] for i in ids] for c in tables[n][ids[0]]
                      if c.startswith(("dice_", "hd_"))} for n in names}
        out = Path(args.out)
        boxplots(values, out / "boxplots.png", report["hausdorff_unit"])
        write_text(out / "compare.json", summary_json(report))
        write_text(out / "report.md", markdown)
    if args.json:
        print(json_text(report))
    else:
        print(markdown, end="")
    return 0
