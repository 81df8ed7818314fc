"""The study driver: greedy or leave-one-out over a plan's steps, baselines, cross-datasets.

:class:`Study` turns variants into jobs (one per distinct run and seed), hands them to an
executor, reads the evaluations back and applies the keep rule. It returns the study's results
as plain data (what results.json holds); report.py renders them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from echoseg.ablation.plan import CrossDataset, Plan
from echoseg.ablation.rule import decide
from echoseg.ablation.runs import EvalSpec, Job, run_key
from echoseg.config import to_dict
from echoseg.errors import EchosegError
from echoseg.labels import STRUCTURES

ROW_COLUMNS = (*(f"dice_{s}" for s in STRUCTURES), *(f"hd_{s}" for s in STRUCTURES),
               "anatomical_outlier")


@dataclass(frozen=True)
class Target:
    """Where an outcome is scored: a dataset root, its views and split."""

    name: str
    root: str
    split: str
    views: tuple[str, ...] | None = None  # None: the run's own data.views


@dataclass
class Outcome:
    """A variant trained with every seed and scored on one target."""

    name: str
    diff: dict[str, Any]
    full: dict[str, Any]
    runs: list[str] = field(default_factory=list)
    eval_dirs: list[str] = field(default_factory=list)
    table: dict[str, dict[str, float]] = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    structures: list[str] = field(default_factory=lambda: list(STRUCTURES))
    error: str | None = None
    trained_again: bool = True

    def record(self) -> dict:
        """The outcome as results.json stores it."""
        return {"name": self.name, "diff": self.diff, "config_diff": self.full,
                "runs": self.runs, "evaluations": self.eval_dirs, "metrics": self.metrics,
                "structures": self.structures, "error": self.error,
                "reuses_trained_model": not self.trained_again}


class Study:
    """Runs ``plan`` on ``data`` into ``out`` with ``executor``; ``extra`` holds the command
    line's config overrides. ``on_run_start(label, training)`` is called as each run starts
    (training: it trains a model, else it only scores) and ``on_run_end(label, result)`` as
    it ends (result: execute_job's dict)."""

    def __init__(self, plan: Plan, out: Path, executor, *, data: str | None,
                 extra: dict[str, Any], seeds: list[int], device: str = "auto",
                 on_step: Callable[[dict], None] | None = None,
                 on_run_start: Callable[[str, bool], None] | None = None,
                 on_run_end: Callable[[str, dict], None] | None = None) -> None:
        self.plan, self.out, self.executor = plan, Path(out), executor
        self.extra = {**extra, **({"data.root": data} if data else {})}
        self.seeds, self.device, self.on_step = seeds, device, on_step
        self.on_run_start, self.on_run_end = on_run_start, on_run_end
        base = plan.resolve(plan.start, "start", self.extra)
        if not base.data.root:
            raise EchosegError("no dataset: pass --data DATA (or set data.root in the plan)")
        self.data = str(base.data.root)
        self.trained_seconds: list[float] = []

    def selection(self) -> Target:
        """The target variants are chosen on: the study's data, the plan's selection split."""
        return Target("selection", self.data, self.plan.evaluation.split)

    # -- evaluating variants -------------------------------------------------------------

    def evaluate(self, entries: list[tuple[str, dict, dict, str]], targets: list[Target],
                 ) -> list[dict[str, Outcome]]:
        """Train and score every entry (name, own diff, full diff, origin) with every seed on
        every target; returns per entry {target name: Outcome}."""
        jobs: dict[str, Job] = {}
        outcomes: list[dict[str, Outcome]] = []
        for name, diff, full, origin in entries:
            per_target = {t.name: Outcome(name, diff, full) for t in targets}
            for seed in self.seeds:
                config = self.plan.resolve(full, origin, self.extra, seed)
                key = run_key(config)
                job = jobs.get(key)
                if job is None:
                    job = jobs[key] = Job(key, str(self.out / "runs" / key), to_dict(config),
                                          [], self.device, f"{name} · seed {seed}")
                for t in targets:
                    views = list(config.data.views if t.views is None else t.views)
                    spec = EvalSpec(t.root, t.split, self.plan.evaluation.grid,
                                    config.postprocess, views)
                    if all(s.key() != spec.key() for s in job.evals):
                        job.evals.append(spec)
                    outcome = per_target[t.name]
                    outcome.runs.append(key)
                    outcome.eval_dirs.append(str(job.eval_dir(spec)))
            outcomes.append(per_target)
        errors = self._run(list(jobs.values()))
        for per_target in outcomes:
            for outcome in per_target.values():
                failed = [errors[k] for k in outcome.runs if k in errors]
                if failed:
                    outcome.error = failed[0]
                else:
                    _read_outcome(outcome)
        return outcomes

    def _run(self, jobs: list[Job]) -> dict[str, str]:
        """Run the jobs that still have work; returns {run key: error} for failed runs."""
        todo = [j for j in jobs if any(j.pending())]
        errors: dict[str, str] = {}

        def started(job: Job) -> None:
            train, _ = job.pending()
            if self.on_run_start:
                self.on_run_start(job.label, bool(train))

        for job, result in self.executor.run(todo, on_start=started):
            if result["trained"] is not None:
                self.trained_seconds.append(result["trained"])
            if result["error"]:
                errors[job.key] = result["error"]
            if self.on_run_end:
                self.on_run_end(job.label, result)
        return errors

    # -- the strategies ------------------------------------------------------------------

    def run(self) -> dict:
        """Run the whole plan; returns the results (see report.py for their layout)."""
        plan, target = self.plan, self.selection()
        steps = []
        current_name, current = "start", dict(plan.start)
        (best,) = [o["selection"] for o in self.evaluate(
            [(current_name, {}, current, f"{plan.path}: start")], [target])]
        if best.error:
            raise EchosegError(f"the starting model failed: {best.error}")
        start = best
        for number, step in enumerate(plan.steps, start=1):
            reference = start if plan.strategy == "leave-one-out" else best
            entries = [(v.name, v.diff, {**reference.full, **v.diff},
                        f"{plan.path}: step '{step.name}', variant '{v.name}'")
                       for v in step.variants]
            found = [o["selection"] for o in self.evaluate(entries, [target])]
            record = self._decide_step(step, reference, found)
            steps.append(record)
            if plan.strategy == "greedy" and record["kept"] is not None:
                best = next(o for o in found if o.name == record["kept"])
                current_name = f"{step.name}: {best.name}"
            if self.on_step and number < len(plan.steps):
                final = best if plan.strategy == "greedy" else start
                self.on_step(self._results(steps, start, final, current_name,
                                           f"stopped after step {number} of {len(plan.steps)}"))
        final = best if plan.strategy == "greedy" else start
        results = self._results(steps, start, final, current_name, "complete")
        results["baselines"] = self._baselines(final)
        results["final_split"] = self._final_split(final)
        results["cross"] = self._cross(final if plan.cross_model == "final" else None)
        return results

    def _results(self, steps: list[dict], start: Outcome, final: Outcome, label: str,
                 status: str) -> dict:
        return {"plan": self.plan.name, "strategy": self.plan.strategy, "status": status,
                "steps": list(steps), "start": start.record(),
                "final": {**final.record(), "label": label}, "baselines": [],
                "final_split": None, "cross": None}

    def _decide_step(self, step, reference: Outcome, found: list[Outcome]) -> dict:
        rule, loo = self.plan.rule, self.plan.strategy == "leave-one-out"
        variants, passing = [], []
        for outcome in found:
            outcome.trained_again = outcome.runs != reference.runs
            entry = outcome.record()
            if outcome.error:
                entry["decision"] = {"keep": False, "reason": f"failed: {outcome.error}"}
            else:
                decision = decide(reference.table, outcome.table, rule)
                if loo:
                    needed = decide(outcome.table, reference.table, rule)
                    decision["conclusion"] = (
                        "removing it helps" if decision["keep"] else
                        "the component helps" if needed["keep"] else "no significant effect")
                    decision["keep"] = False
                elif decision["keep"]:
                    passing.append(outcome)
                entry["decision"] = decision
            variants.append(entry)
        kept = max(passing, key=lambda o: o.metrics["dice_mean"]["mean"]).name if passing \
            else None
        return {"name": step.name, "table": step.table, "reference": reference.record(),
                "variants": variants, "kept": kept}

    def _baselines(self, final: Outcome) -> list[dict]:
        entries = [(v.name, v.diff, v.diff, f"{self.plan.path}: baseline '{v.name}'")
                   for v in self.plan.baselines]
        found = [o["selection"] for o in self.evaluate(entries, [self.selection()])]
        rows = []
        for outcome in found:
            entry = outcome.record()
            if not outcome.error:
                entry["against_final"] = decide(outcome.table, final.table, self.plan.rule)
            rows.append(entry)
        return rows

    def _final_split(self, final: Outcome) -> dict | None:
        """Baseline (base config) and final model on the plan's final split, when the data
        has one with patients (else None: the report uses the selection split)."""
        split = self.plan.evaluation.final_split
        if not split or not self._has_split(split, final):
            return None
        target = Target("final", self.data, split)
        entries = [("baseline", {}, {}, f"{self.plan.path}: base"),
                   ("final", final.diff, final.full, f"{self.plan.path}: final")]
        base, fin = (o["final"] for o in self.evaluate(entries, [target]))
        result = {"split": split, "baseline": base.record(), "final": fin.record()}
        if not (base.error or fin.error):
            result["test"] = decide(base.table, fin.table, self.plan.rule)
        return result

    def _has_split(self, split: str, final: Outcome) -> bool:
        """Whether the study's data has patients in ``split``, split as the final model's
        runs split it."""
        from echoseg.ablation.runs import evaluation_samples
        from echoseg.errors import DataError

        config = to_dict(self.plan.resolve(final.full, "final", self.extra))
        try:
            return bool(evaluation_samples(self.data, [], split, config))
        except DataError:
            return False

    def _cross(self, final: Outcome | None) -> dict | None:
        datasets = self.plan.cross
        if not datasets:
            return None
        diff = final.full if final is not None else {}
        targets = [_target(d, self.data, self.plan.evaluation.split) for d in datasets]
        entries = [(d.name, {}, {**diff, "data.root": t.root, "data.views": list(t.views or [])},
                    f"{self.plan.path}: cross dataset '{d.name}'")
                   for d, t in zip(datasets, targets, strict=True)]
        found = self.evaluate(entries, targets)
        matrix = {d.name: {t.name: per_target[t.name].record() for t in targets}
                  for d, per_target in zip(datasets, found, strict=True)}
        return {"model": self.plan.cross_model, "datasets": [t.__dict__ for t in targets],
                "matrix": matrix}


def _target(d: CrossDataset, data: str, split: str) -> Target:
    return Target(d.name, d.root or data, d.split or split, tuple(d.views))


def read_table(eval_dirs: list[str]) -> dict[str, dict[str, float]]:
    """The per-image table averaged over the evaluations ``eval_dirs`` (one per seed): image
    id -> {dice_<S>, hd_<S>, anatomical_outlier}, on the images all of them scored."""
    from echoseg.evaluation.writers import read_per_image_csv

    tables = []
    for folder in eval_dirs:
        rows = read_per_image_csv(Path(folder) / "per_image.csv")
        tables.append({r["id"]: r for r in rows})
    ids = sorted(set.intersection(*(set(t) for t in tables)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN Hausdorff of an image
        return {i: {c: float(np.nanmean([float(t[i][c]) for t in tables]))
                    for c in ROW_COLUMNS} for i in ids}


def _read_outcome(outcome: Outcome) -> None:
    """Fill ``outcome``'s seed-averaged per-image table and its metrics from its evaluations."""
    import json

    outcome.table = read_table(outcome.eval_dirs)
    summaries = [json.loads((Path(f) / "summary.json").read_text(encoding="utf-8"))
                 for f in outcome.eval_dirs]
    present = summaries[0].get("structures") or list(STRUCTURES)
    outcome.structures = [s for s in STRUCTURES if s in present]
    outcome.metrics = seed_metrics(summaries, outcome.structures)


def seed_metrics(summaries: list[dict], structures: list[str]) -> dict:
    """Mean ± std over seeds of each seed's mean Dice and Hausdorff per structure, their mean
    over ``structures`` (``dice_mean``) and the anatomical outliers; from summary.json dicts."""
    def stats(values: list[float]) -> dict:
        array = np.asarray(values, dtype=float)
        if np.isnan(array).all():
            return {"mean": math.nan, "std": math.nan}
        return {"mean": float(np.nanmean(array)), "std": float(np.nanstd(array))}

    metrics: dict = {"seeds": len(summaries), "n_images": summaries[0].get("n_images")}
    for metric in ("dice", "hausdorff"):
        metrics[metric] = {s: stats([_number(m[metric].get(s)) for m in summaries])
                           for s in structures}
    metrics["dice_mean"] = stats([float(np.mean([_number(m["dice"].get(s)) for s in structures]))
                                  for m in summaries])
    metrics["anatomical_outliers"] = stats([m.get("anatomical_outliers", math.nan)
                                            for m in summaries])
    metrics["hausdorff_unit"] = summaries[0].get("hausdorff_unit")
    return metrics


def _number(value) -> float:
    return math.nan if value is None else float(value)

