"""`echoseg train CONFIG`: train a model into a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `echoseg train`."""
    parser.add_argument("config", help="YAML config file or packaged name (e.g. lightweight)")
    parser.add_argument("--data", help="dataset folder (overrides data.root)")
    parser.add_argument("--out", help="run folder (default: runs/<config name>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config value, e.g. train.epochs=10")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar, epoch lines or closing summary")
    parser.add_argument("--json", action="store_true", help="print the final metrics as JSON")


def run(args: argparse.Namespace) -> int:
    """Resolve the config (a resumed run reuses RUN/config.yaml) and train; returns 0."""
    import time

    from echoseg.config import load_config
    from echoseg.console import summary
    from echoseg.training import train

    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.root={args.data}")
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    if args.resume and (out / "config.yaml").is_file():
        config = load_config(out / "config.yaml", overrides)
    else:
        config = load_config(args.config, overrides)
    started = time.perf_counter()
    result = train(config, out, resume=args.resume, device=args.device,
                   quiet=args.quiet or args.json)
    elapsed = time.perf_counter() - started
    if args.json:
        from echoseg.evaluation.writers import json_text  # strict: NaN and -inf become null

        print(json_text({"run": str(out), **result}))
    else:
        print(f"run folder: {out} (best epoch {result['best_epoch']}, "
              f"val Dice mean {result['best_val_dice_mean']:.4f})")
        summary(summary_text(args.config, config, out, result, elapsed), args.quiet)
    return 0


def summary_text(name: str, config, out: Path, result: dict, seconds: float) -> str:
    """The closing paragraph: what was trained on what, for how long, the last epoch's
    validation Dice per structure, the best epoch, and where the run folder is."""
    from echoseg.console import duration, number, numbers
    from echoseg.labels import STRUCTURES

    last = {k: result.get(f"val_dice_{k}") for k in STRUCTURES}
    epoch = result.get("epoch", "?")
    return (f"Trained {Path(name).stem} on {config.data.root} up to epoch {epoch} of "
            f"{config.train.epochs} in {duration(seconds)} ({config.data.size}² grid, batch "
            f"{config.train.batch_size}): last validation Dice {numbers(last)}; best mean "
            f"{number(result.get('best_val_dice_mean'))} at epoch {result.get('best_epoch')}; "
            f"weights, history and provenance in {out}.")
