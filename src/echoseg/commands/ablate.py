"""`echoseg ablate PLAN`: run an ablation study and write its tables (see echoseg.ablation)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from echoseg.console import ProgressBar, count, duration, summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `echoseg ablate`."""
    parser.add_argument("plan", help="plan YAML file or packaged plan (paper, nnunet, smoke)")
    parser.add_argument("--data", help="dataset folder (overrides data.root)")
    parser.add_argument("--out", help="study folder (default: ablation/<plan name>)")
    parser.add_argument("--executor", default="local", help="local | ray")
    parser.add_argument("--address", help="Ray cluster address (default: start Ray here)")
    parser.add_argument("--cpus-per-run", type=int, default=1, help="CPUs of each Ray task")
    parser.add_argument("--gpus-per-run", type=float, default=0, help="GPUs of each Ray task")
    parser.add_argument("--resume", action="store_true", help="continue the study in --out; "
                        "finished runs are reused, unfinished ones resume")
    parser.add_argument("--seeds", type=int, metavar="K", help="train every variant with "
                        "seeds 0..K-1 (default: the plan's seeds)")
    parser.add_argument("--epochs", type=int, metavar="N", help="train.epochs of every run")
    parser.add_argument("--train-fraction", type=float, metavar="F",
                        help="train on this share of the training patients (seeded)")
    parser.add_argument("--size", type=int, metavar="S", help="model grid S x S (data.size)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config value of every run")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors "
                        "(failed runs included) and, with --json, the JSON object")
    parser.add_argument("--json", action="store_true", help="print results.json's decisions "
                        "as one JSON object")


def command_overrides(args: argparse.Namespace) -> tuple[dict, list[str]]:
    """(config overrides of every run, the words describing a reduced study) from the
    options; raises ConfigError for a value out of range."""
    from echoseg.config import parse_override
    from echoseg.errors import ConfigError

    extra: dict = {}
    reduced: list[str] = []
    if args.epochs is not None:
        extra["train.epochs"] = args.epochs
        reduced.append(f"{args.epochs} epochs")
    if args.size is not None:
        extra["data.size"] = args.size
        reduced.append(f"{args.size}×{args.size} grid")
    if args.train_fraction is not None:
        if not 0 < args.train_fraction <= 1:
            raise ConfigError(f"--train-fraction must be in (0, 1], got {args.train_fraction}")
        extra["data.train_fraction"] = args.train_fraction
        reduced.append(f"{args.train_fraction:g} of the training patients")
    if args.seeds is not None and args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    for item in args.overrides:
        key, value = parse_override(item)
        extra[key] = value
        reduced.append(f"{key}={item.split('=', 1)[1]}")
    return extra, reduced


def run(args: argparse.Namespace) -> int:
    """Check the plan, run the study, write DIR/results.json, report.md and figures."""
    from echoseg.ablation.executors import make_executor
    from echoseg.ablation.plan import load_plan
    from echoseg.ablation.study import Study
    from echoseg.errors import EchosegError
    from echoseg.evaluation.writers import json_text
    from echoseg.outdir import prepare_output_dir
    from echoseg.runlock import folder_lock

    extra, reduced = command_overrides(args)
    data_extra = {**extra, **({"data.root": args.data} if args.data else {})}
    plan = load_plan(args.plan, data_extra)  # a bad plan fails before anything is written
    seeds = list(range(args.seeds)) if args.seeds else plan.seeds
    if args.seeds:
        reduced.append(f"{args.seeds} seed{'s' if args.seeds > 1 else ''}")
    out = Path(args.out) if args.out else Path("ablation") / plan.name
    if (out / "plan.yaml").exists() and not args.resume:
        raise EchosegError(f"{out}: a study is already there; pass --resume to continue it "
                           "(finished runs are reused) or choose another --out")
    executor = make_executor(args.executor, address=args.address,
                             cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run)
    prepare_output_dir(out)
    started = time.perf_counter()
    runs = RunCounter(expected_runs(plan, seeds), args.quiet)
    try:
        with folder_lock(out), runs.bar:
            _write_inputs(plan, out, args.device)
            def partial(results: dict) -> None:  # a killed study still leaves its tables
                results["settings"] = _settings(args, plan, study, results, reduced, out,
                                                time.perf_counter() - started)
                _write_outputs(results, out, figures=False)

            study = Study(plan, out, executor, data=args.data, extra=extra, seeds=seeds,
                          device=args.device, on_step=partial,
                          on_run_start=runs.started, on_run_end=runs.ended)
            results = study.run()
            results["settings"] = _settings(args, plan, study, results, reduced, out,
                                            time.perf_counter() - started)
            _write_outputs(results, out)
    finally:
        executor.close()
    if args.json:
        print(json_text(_decisions(results)))
    elif not args.quiet:  # --quiet: nothing but errors
        final = results["final"]
        print(f"study folder: {out} (report.md, results.json); final model: "
              f"{final['label']}, diff {final['config_diff'] or '{}'}")
        summary(runs.summary_text(results, out, args.resume), args.quiet)
    return 0


def expected_runs(plan, seeds: list[int]) -> int:
    """A rough count of the runs the plan needs (the bar's total; it grows when short)."""
    entries = 1 + sum(len(s.variants) for s in plan.steps) + len(plan.baselines) \
        + len(plan.cross)
    return max(entries * len(seeds), 1)


class RunCounter:
    """The bar over the study's runs, the counts for the closing paragraph, and one error
    line per failed run (printed also with --quiet)."""

    def __init__(self, expected: int, quiet: bool) -> None:
        self.bar = ProgressBar(expected, "ablate", quiet)
        self.trained = self.scored = self.failed = 0

    def started(self, label: str, training: bool) -> None:
        """A run starts (the Study's ``on_run_start``)."""
        self.bar.update(label=f"{'training' if training else 'scoring'} {label}")

    def ended(self, label: str, result: dict) -> None:
        """A run ends with execute_job's ``result`` (the Study's ``on_run_end``)."""
        if result["error"]:
            self.failed += 1
            self.bar.line(f"echoseg: error: ablate: {label}: run failed: {result['error']}")
        elif result["trained"] is not None:
            self.trained += 1
        else:
            self.scored += 1
        self.bar.advance()

    def summary_text(self, results: dict, out: Path, resumed: bool) -> str:
        """The closing paragraph: the study, what this command ran (after the finished runs
        of an earlier command when ``resumed``), the final model."""
        settings, final = results["settings"], results["final"]
        done = self.trained + self.scored + self.failed
        steps = count(len(results["steps"]), "step")
        seeds = count(len(settings["seeds"]), "seed")
        return (f"Ablation study {results['plan']} ({results['strategy']}, {steps}, {seeds}) "
                f"on {settings['data']}: ran {count(done, 'run')} ({self.trained} trained, "
                f"{self.scored} only scored, {self.failed} failed) in "
                f"{duration(settings['wall_seconds'])}"
                f"{', reusing the runs finished before' if resumed else ''}; final model: "
                f"{final['label']}, diff {final['config_diff'] or '{}'}; tables in {out} "
                "(report.md, results.json).")


def _write_inputs(plan, out: Path, device: str) -> None:
    """DIR/plan.yaml (the plan as given) and DIR/provenance.json."""
    from echoseg import provenance
    from echoseg.atomic import atomic_write_text
    from echoseg.evaluation.writers import json_text

    atomic_write_text(out / "plan.yaml", plan.path.read_text(encoding="utf-8"))
    record = {**provenance.collect(device, 0), "machine": provenance.machine_description()}
    atomic_write_text(out / "provenance.json", json_text(record, indent=1) + "\n")


def _settings(args, plan, study, results: dict, reduced: list[str], out: Path,
              seconds: float) -> dict:
    from echoseg import __version__, provenance

    rule = plan.rule
    return {
        "command": "echoseg ablate " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["ablate"]
                                                 else [args.plan]),
        "reduced": ", ".join(reduced), "data": study.data, "out": str(out),
        "split": plan.evaluation.split, "grid": plan.evaluation.grid, "seeds": study.seeds,
        "rule": (f"keep when mean Dice is higher, at least one structure improves with "
                 f"Wilcoxon p < {rule.alpha} on {' or '.join(rule.metrics)}, none gets "
                 "significantly worse; the best mean Dice among those"),
        "executor": args.executor, "machine": provenance.machine_description(),
        "wall_seconds": seconds, "trainings": len(study.trained_seconds),
        "version": __version__, "git_commit": provenance.git_commit(),
        "date": provenance.now()[:10],
        "hausdorff_unit": results["start"]["metrics"].get("hausdorff_unit") or "px",
    }


def _write_outputs(results: dict, out: Path, figures: bool = True) -> None:
    from echoseg.ablation.report import render, write_figures
    from echoseg.atomic import atomic_write_text
    from echoseg.evaluation.writers import json_text

    results["figures"] = write_figures(results, out) if figures else {}
    atomic_write_text(out / "results.json", json_text(results, indent=1) + "\n")
    atomic_write_text(out / "report.md", render(results))


def _decisions(results: dict) -> dict:
    """The compact form --json prints: per step the variants' mean Dice and decisions."""
    steps = [{"name": s["name"], "kept": s["kept"],
              "variants": [{"name": v["name"], "dice_mean": (v["metrics"] or {}).get(
                  "dice_mean", {}).get("mean"), "decision": v["decision"].get(
                  "conclusion") or v["decision"]["reason"]} for v in s["variants"]]}
             for s in results["steps"]]
    return {"plan": results["plan"], "strategy": results["strategy"], "steps": steps,
            "final": {"label": results["final"]["label"],
                      "config_diff": results["final"]["config_diff"]},
            "settings": results["settings"]}
