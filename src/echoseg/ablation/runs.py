"""Runs of a study keyed by what they compute, and the job that trains and scores one.

A run folder is ``DIR/runs/<key>``, the key a hash of the resolved config without the settings
that do not change the trained weights (post-processing, cache folder, threads): an identical
run is never trained twice, across steps, plans sharing DIR, and ``--resume``. An evaluation is
``RUN/eval/<split>-<key>`` keyed by dataset, views, split, grid and post-processing.

:func:`execute_job` is what an executor runs (in this process or as a Ray task): it takes and
returns plain data, trains only what is not finished, and scores only what is not written.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from echoseg.config import Config, to_dict
from echoseg.labels import STRUCTURES

NOT_TRAINED = (("postprocess",), ("data", "cache_dir"), ("train", "threads"))
DONE = "done.json"
EVAL_FILES = ("per_image.csv", "summary.json", "summary.md")


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def training_identity(config: Config) -> dict:
    """The parts of ``config`` that decide the trained weights (data.root made absolute)."""
    data = to_dict(config)
    for path in NOT_TRAINED:
        node = data
        for part in path[:-1]:
            node = node[part]
        node.pop(path[-1], None)
    if data["data"].get("root"):
        data["data"]["root"] = str(Path(data["data"]["root"]).expanduser().resolve())
    return data


def run_key(config: Config) -> str:
    """A 12-hex-digit key of the training ``config`` defines (seed included)."""
    return _digest(training_identity(config))


@dataclass
class EvalSpec:
    """One scoring of a run: dataset root, views, split, grid and post-processing."""

    root: str
    split: str
    grid: str | int
    postprocess: str
    views: list[str] = field(default_factory=list)

    def key(self) -> str:
        """The evaluation folder's name: ``<split>-<hash>``."""
        ident = {**self.__dict__, "root": str(Path(self.root).expanduser().resolve()),
                 "postprocess": self.postprocess.strip().lower()}
        return f"{self.split}-{_digest(ident)}"


@dataclass
class Job:
    """Train ``config`` into ``run_dir`` (unless done) and write the evaluations ``evals``."""

    key: str
    run_dir: str
    config: dict
    evals: list[EvalSpec]
    device: str = "auto"
    label: str = ""

    def eval_dir(self, spec: EvalSpec) -> Path:
        """Where ``spec``'s evaluation of this run is written."""
        return Path(self.run_dir) / "eval" / spec.key()

    def pending(self) -> tuple[bool, list[EvalSpec]]:
        """(training still to do, evaluations still to write)."""
        missing = [s for s in self.evals
                   if not all((self.eval_dir(s) / f).is_file() for f in EVAL_FILES)]
        return not (Path(self.run_dir) / DONE).is_file(), missing


def execute_job(job: Job, threads: int = 0) -> dict:
    """Do what ``job`` still needs; returns {"key", "trained" (seconds, or None when it was
    done before), "evaluated" (count), "error" (a one-line reason, or None)}. Never raises
    for bad data, a NaN loss or a broken run: the study records the error and goes on."""
    from echoseg.errors import EchosegError, plain_reason

    result: dict[str, Any] = {"key": job.key, "trained": None, "evaluated": 0, "error": None}
    try:
        train_needed, evals = job.pending()
        if train_needed:
            start = time.perf_counter()
            _train(job, threads)
            result["trained"] = time.perf_counter() - start
        if evals:
            _evaluate(job, evals)
            result["evaluated"] = len(evals)
    except EchosegError as exc:
        result["error"] = str(exc)
    except (RuntimeError, ValueError, MemoryError) as exc:  # e.g. a model too deep for the grid
        result["error"] = f"{type(exc).__name__}: {plain_reason(exc)}"
    return result


def _train(job: Job, threads: int) -> None:
    from echoseg.atomic import atomic_write_text
    from echoseg.config import from_dict
    from echoseg.training import train

    raw = json.loads(json.dumps(job.config))
    if threads:
        raw["train"]["threads"] = threads
    config = from_dict(raw, source=f"run {job.key}")
    run = Path(job.run_dir)
    summary = train(config, run, resume=(run / "last.pt").is_file(), device=job.device,
                    quiet=True)
    from echoseg.evaluation.writers import json_text

    atomic_write_text(run / DONE, json_text(summary, indent=1) + "\n")


def _evaluate(job: Job, specs: list[EvalSpec]) -> None:
    """Predict each (dataset, views, split) once, then score it under each post-processing,
    on the structures its ground truth has (those it lacks are left out, see
    ``echoseg.evaluation.summary``)."""
    from echoseg.evaluation.scoring import evaluate_predictions
    from echoseg.evaluation.sources import items_from_predictor
    from echoseg.evaluation.summary import summary_markdown
    from echoseg.evaluation.writers import write_evaluation
    from echoseg.inference import load_model

    model = load_model(job.run_dir, device=_device(job.device), postprocess="none")
    groups: dict[tuple, list[EvalSpec]] = {}
    for spec in specs:
        groups.setdefault((spec.root, tuple(spec.views), spec.split), []).append(spec)
    for (root, views, split), group in groups.items():
        samples = evaluation_samples(root, list(views), split, job.config)
        items = list(items_from_predictor(model.predict_batch, samples, batch_size=16))
        present = [s for s, label in STRUCTURES.items()
                   if any((item.gt == label).any() for item in items)] or list(STRUCTURES)
        for spec in group:
            grid = int(model.size) if spec.grid == "model" else spec.grid
            evaluation = evaluate_predictions(items, postprocess=spec.postprocess, grid=grid,
                                              model=job.label or job.key, structures=present)
            summary = {**evaluation.summary, "run": job.key, "split": split,
                       "views": list(views), "data": root}
            write_evaluation(job.eval_dir(spec), evaluation.rows, summary,
                             summary_markdown(summary))


def _device(device: str) -> str:
    from echoseg.devices import resolve_device

    return str(resolve_device(device))


def evaluation_samples(root: str, views: list[str], split: str, config: dict) -> list:
    """The samples of ``split`` (of ``views``) of the dataset at ``root``, split as the run
    ``config`` (a config dict) splits its own data; DataError when the split is empty."""
    from echoseg.data.dataset import open_dataset
    from echoseg.data.splits import resolve_splits
    from echoseg.errors import DataError
    from echoseg.training.data import of_views

    dataset = open_dataset(root)
    data = config["data"]
    same_data = Path(root).resolve() == Path(data["root"]).resolve()
    splits = resolve_splits(dataset, split_file=data.get("split_file") if same_data else None,
                            seed=data.get("split_seed", 0))
    if split not in splits or not splits[split]:
        raise DataError(f"{root}: no patients in a split named '{split}' (available: "
                        f"{', '.join(k for k, v in splits.items() if v) or 'none'})")
    return of_views(dataset.select(splits[split]), views, root)
