"""`echoseg quality calibrate DATA --size N --split train --out FILE`: learn the thresholds of
the calibrated quality flag from a dataset's expert masks, resampled to the model's grid.

Store the file with the weights (``<name>.quality.json`` beside bundled ``<name>.pt``, or
``quality.json`` in a run folder) and ``echoseg predict`` fills the ``quality_ok`` and
``quality_failed`` columns. See ``echoseg.metrics.quality`` for how each bound is learned.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from echoseg.outdir import prepare_output_dir, removes_unused_output_dirs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `echoseg quality calibrate`."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    cal = sub.add_parser("calibrate", help="learn quality thresholds from expert masks",
                         description="Learn the bounds that COVERAGE of the expert masks of "
                         "a split pass, per anatomical criterion, on the model's grid.")
    cal.add_argument("data", metavar="DATA", help="dataset folder with label maps")
    cal.add_argument("--size", type=int, required=True, metavar="N",
                     help="the model's grid (data.size of its config), e.g. 224")
    cal.add_argument("--split", default="train", metavar="NAME",
                     help="the split the model was trained on (default train)")
    cal.add_argument("--split-file", metavar="F", help="JSON split file or CAMUS subgroup "
                     "folder (default: found in DATA, else a seeded 80/10/10 split)")
    cal.add_argument("--coverage", type=float, default=0.995, metavar="C",
                     help="share of masks each criterion's bounds pass (default 0.995)")
    cal.add_argument("--out", required=True, metavar="FILE", help="the JSON file to write")
    cal.add_argument("--json", action="store_true", help="print the thresholds as JSON only")


@removes_unused_output_dirs
def run(args: argparse.Namespace) -> int:
    """Calibrate and write the thresholds; returns 0 (errors raise EchosegError)."""
    from echoseg.data.dataset import open_dataset
    from echoseg.data.preprocess import label_to_grid
    from echoseg.data.readers import read_label_map
    from echoseg.data.splits import resolve_splits
    from echoseg.errors import ConfigError, DataError
    from echoseg.evaluation.writers import json_text
    from echoseg.metrics.quality import calibrate, save_thresholds

    if args.size < 8:
        raise ConfigError("--size must be >= 8")
    if not 0 < args.coverage <= 1:
        raise ConfigError("--coverage must be in (0, 1]")
    if Path(args.out).is_dir():
        raise ConfigError(f"{args.out}: is a folder; --out names the JSON file to write")
    prepare_output_dir(Path(args.out).parent)
    dataset = open_dataset(args.data)
    splits = resolve_splits(dataset, args.split_file)
    if args.split not in splits:
        raise DataError(f"{args.data}: no split named '{args.split}' (available: "
                        f"{', '.join(splits) or 'none'})")
    samples = dataset.select(splits[args.split])
    masks = (label_to_grid(read_label_map(s.label_path)[0], args.size) for s in samples)
    command = ["echoseg", "quality", "calibrate", args.data, "--size", str(args.size),
               "--split", args.split, "--coverage", f"{args.coverage:g}", "--out", args.out]
    source = {"data": str(args.data), "split": args.split, "n_patients": len(splits[args.split]),
              "grid": args.size, "command": shlex.join(command)}
    try:
        thresholds = calibrate(masks, args.coverage, source=source)
    except ValueError as exc:
        raise DataError(f"{args.data}: cannot calibrate ({exc})") from None
    path = save_thresholds(thresholds, args.out)
    if args.json:
        print(json_text(thresholds.to_dict()))
        return 0
    print(f"Calibrated on {thresholds.n} expert masks of split '{args.split}' at "
          f"{args.size}x{args.size}: {100 * thresholds.flagged_any:.1f}% of them flagged by "
          f"some criterion; wrote {path}")
    for name, bounds in thresholds.bounds.items():
        shown = ", ".join(f"{k} {v:g}" for k, v in bounds.items())
        print(f"  {name:<26}{shown:<22}flags {100 * thresholds.flagged[name]:.2f}%")
    return 0
