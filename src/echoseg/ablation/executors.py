"""Where a study's jobs run: in this process one after another, or as Ray tasks.

Both take a list of :class:`~echoseg.ablation.runs.Job` and yield ``(job, result)`` as each
finishes; the driver keeps the study's logic and writes every file of DIR itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from echoseg.ablation.runs import Job, execute_job
from echoseg.errors import ConfigError
from echoseg.ray_cluster import import_ray, start_ray

EXECUTORS = ("local", "ray")


class LocalExecutor:
    """Runs jobs one after another in this process."""

    name = "local"

    def run(self, jobs: Sequence[Job],
            on_start: Callable[[Job], None] | None = None) -> Iterator[tuple[Job, dict]]:
        """Yield (job, execute_job's result) for each job, in order; ``on_start(job)`` is
        called as each job starts."""
        for job in jobs:
            if on_start:
                on_start(job)
            yield job, execute_job(job)

    def close(self) -> None:
        """Nothing to release."""


class RayExecutor:
    """Runs each job as a Ray task with ``cpus_per_run`` CPUs (its torch threads) and
    ``gpus_per_run`` GPUs; connects to ``address`` or starts a local Ray instance."""

    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_run: int = 1,
                 gpus_per_run: float = 0, num_cpus: int | None = None) -> None:
        ray = import_ray()
        if cpus_per_run < 1 or gpus_per_run < 0:
            raise ConfigError("--cpus-per-run must be >= 1 and --gpus-per-run >= 0")
        self._ray = ray
        self._started = start_ray(ray, address, num_cpus)
        self._task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run,
                                max_retries=0)(execute_job)
        self._threads = cpus_per_run

    def run(self, jobs: Sequence[Job],
            on_start: Callable[[Job], None] | None = None) -> Iterator[tuple[Job, dict]]:
        """Submit every job at once (calling ``on_start(job)`` for each); yield (job, result)
        in the order they finish."""
        pending = {}
        for job in jobs:
            if on_start:
                on_start(job)
            pending[self._task.remote(job, self._threads)] = job
        while pending:
            done, _ = self._ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                try:
                    result = self._ray.get(ref)
                except Exception as exc:  # a task killed or a worker lost: the run failed
                    result = {"key": job.key, "trained": None, "evaluated": 0,
                              "error": f"Ray task failed ({type(exc).__name__})"}
                yield job, result

    def close(self) -> None:
        """Shut down the Ray instance this executor started."""
        if self._started:
            self._ray.shutdown()


def make_executor(name: str, *, address: str | None = None, cpus_per_run: int = 1,
                  gpus_per_run: float = 0) -> LocalExecutor | RayExecutor:
    """The executor called ``name`` (local | ray); ConfigError for another name, or for ray
    when Ray is not installed (saying how to install it)."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address, cpus_per_run, gpus_per_run)
    raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, got {name!r}")
