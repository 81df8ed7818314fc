"""Archive-scale prediction: input files spread over Ray actors, one model load per actor.

Each actor runs the same :class:`~echoseg.inference.pipeline.FilePredictor` as a local run and
writes its outputs straight into the output folder (on a cluster, a filesystem every node
sees); the driver collects CSV rows and failures and keeps them in input order, so the folder
and predictions.csv are those of a local run (only the ``seconds`` column differs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from echoseg.errors import ConfigError
from echoseg.inference.files import InputFile
from echoseg.ray_cluster import import_ray, start_ray


@dataclass(frozen=True)
class ModelSpec:
    """What each actor loads: ``load_model(model, device, postprocess, runtime, precision,
    tta)``."""

    model: str
    device: str
    postprocess: str | None
    runtime: str
    precision: str = "fp32"
    tta: bool = False


class PredictWorker:
    """A Ray actor's state: one loaded segmenter and the output folder it writes into."""

    def __init__(self, spec: ModelSpec, out_dir: str, batch_size: int, threads: int) -> None:
        import torch

        from echoseg.errors import EchosegError
        from echoseg.inference import load_model

        torch.set_num_threads(threads)  # the runtimes take their thread count from torch
        self.out_dir = Path(out_dir)
        self.batch_size = batch_size
        self.segmenter, self.error = None, None
        try:
            self.segmenter = load_model(spec.model, device=spec.device,
                                        postprocess=spec.postprocess, runtime=spec.runtime,
                                        precision=spec.precision, tta=spec.tta)
        except EchosegError as exc:  # kept for the driver, which prints it once
            self.error = (type(exc), str(exc))

    def describe(self) -> tuple[str, str, str] | tuple[type, str]:
        """(model name, runtime, device) of the loaded segmenter, or (error type, message)
        when it could not be loaded."""
        if self.error:
            return self.error
        return self.segmenter.name, self.segmenter.runtime, str(self.segmenter.device)

    def predict(self, files: list[InputFile]) -> tuple[list[dict], list[str], list[str]]:
        """Segment ``files`` in order; returns (CSV rows, one failure line per failed file,
        notes)."""
        from echoseg.inference.pipeline import FilePredictor

        predictor = FilePredictor(self.segmenter, self.out_dir, self.batch_size)
        predictor.run(files)
        return predictor.rows, predictor.failures, predictor.notes


@dataclass
class ArchiveResult:
    """Rows (input order), failure lines and the (name, runtime, device) the actors used."""

    rows: list[dict]
    failures: list[str]
    described: tuple[str, str, str]


def chunk_files(files: Sequence[InputFile], size: int) -> list[list[InputFile]]:
    """Consecutive groups of at most ``size`` files (size >= 1), in order."""
    return [list(files[i:i + size]) for i in range(0, len(files), size)]


def predict_on_ray(files: Sequence[InputFile], spec: ModelSpec, out_dir: Path, *,
                   batch_size: int = 8, address: str | None = None, workers: int = 0,
                   cpus_per_worker: int = 1, files_per_task: int = 8,
                   on_error: Callable[[str], None] = lambda line: None,
                   on_note: Callable[[str], None] = lambda line: None,
                   on_file: Callable[[Path], None] = lambda path: None) -> ArchiveResult:
    """Segment ``files`` with ``workers`` Ray actors (0: as many as the cluster's CPUs allow
    at ``cpus_per_worker`` each, at most one per task); returns the merged rows and failures.

    Connects to ``address`` or starts a local Ray instance (shut down at the end). A task whose
    actor dies fails each of its files with one line. Raises ConfigError when Ray is missing
    or the numbers are out of range, and EchosegError when no actor can load the model.
    """
    ray = import_ray()
    if cpus_per_worker < 1 or workers < 0 or files_per_task < 1:
        raise ConfigError("--cpus-per-worker and --files-per-task must be >= 1, "
                          "--workers >= 0")
    started = start_ray(ray, address)
    try:
        tasks = chunk_files(files, files_per_task)
        if not workers:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus_per_worker)
        actor_class = ray.remote(num_cpus=cpus_per_worker, max_restarts=0)(PredictWorker)
        actors = [actor_class.remote(spec, str(out_dir), batch_size, cpus_per_worker)
                  for _ in range(min(workers, len(tasks)))]
        described = _description(ray, actors[0])
        outcomes: list[tuple[list[dict], list[str], list[str]]] = [([], [], [])] * len(tasks)
        running: dict = {}  # object ref -> (task index, actor)
        queue = list(range(len(tasks)))
        idle = list(actors)
        while queue or running:
            while queue and idle:
                index, actor = queue.pop(0), idle.pop(0)
                running[actor.predict.remote(tasks[index])] = (index, actor)
            done, _ = ray.wait(list(running), num_returns=1)
            index, actor = running.pop(done[0])
            try:
                outcomes[index] = ray.get(done[0])
                idle.append(actor)
            except ray.exceptions.RayError as exc:  # a lost actor: its files fail, it retires
                reason = type(exc).__name__
                outcomes[index] = ([], [f"{f.path}: Ray worker failed ({reason})"
                                        for f in tasks[index]], [])
                if not idle and not running and queue:
                    idle.append(actor_class.remote(spec, str(out_dir), batch_size,
                                                   cpus_per_worker))
            for line in outcomes[index][1]:
                on_error(line)
            for line in outcomes[index][2]:
                on_note(line)
            for file in tasks[index]:
                on_file(file.path)
        rows = [row for outcome in outcomes for row in outcome[0]]
        failures = [line for outcome in outcomes for line in outcome[1]]
        return ArchiveResult(rows, failures, described)
    finally:
        if started:
            ray.shutdown()


def _description(ray, actor) -> tuple[str, str, str]:
    """The actor's (name, runtime, device); a model that cannot load fails here, once, with
    the loader's own one-line message."""
    from echoseg.errors import EchosegError

    try:
        described = ray.get(actor.describe.remote())
    except ray.exceptions.RayError as exc:
        raise EchosegError(f"a Ray worker could not start ({type(exc).__name__})") from None
    if isinstance(described[0], type):
        raise described[0](described[1])
    return described
