"""Training throughput of a model on synthetic inputs (inference timing: bench/inference.py)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import torch

from echoseg.config import Config
from echoseg.models import build_model
from echoseg.training.compiling import resolve_mode
from echoseg.training.cuda_graph import WARMUP_STEPS
from echoseg.training.loop import prepare_device, step_parts


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_step(config: Config, device: torch.device) -> tuple[Callable[[], None],
                                                                 torch.dtype | None]:
    """A zero-argument function running one real training step of ``config`` on ``device``
    (the run's model, loss, optimiser, precision and layout) on random images and labels of
    the config's grid and batch size, and the autocast dtype it uses (None: fp32).
    Seeds torch with 0 and applies :func:`prepare_device` first."""
    torch.manual_seed(0)
    prepare_device(device)
    cfg = config.train
    _, train_step, _, _, amp = step_parts(config, build_model(config.model), device)
    s = config.data.size
    x = torch.rand(cfg.batch_size, 1, s, s, device=device)
    y = torch.randint(0, config.model.num_classes, (cfg.batch_size, s, s), device=device)

    def step() -> None:
        train_step(x, y)

    return step, amp


def training_throughput(config: Config, device: torch.device, steps: int = 5,
                        warmup: int = 2) -> dict:
    """Images per second of full training steps (forward, loss, backward, optimiser step).

    Uses the run's own precision/channels_last/compile settings and random images and labels
    of the config's grid size and batch size. Returns a dict with ``images_per_s``,
    ``warmup_s`` (seconds of the untimed first steps, a compilation included),
    ``peak_memory_gb`` (see :func:`peak_memory_gb`) and the settings.
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step, amp = training_step(config, device)
    cfg = config.train
    mode = resolve_mode(cfg, device)
    if mode == "cuda-graph":  # time replays only: the eager warm-up and the capture
        warmup = max(warmup, WARMUP_STEPS + 1)  # are paid once per run, like a compilation
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    _sync(device)
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = time.perf_counter() - t0
    precision = str(amp).replace("torch.", "") if amp else "fp32"
    return {"images_per_s": steps * cfg.batch_size / seconds, "warmup_s": warmup_s,
            "batch_size": cfg.batch_size, "size": config.data.size, "precision": precision,
            "channels_last": cfg.channels_last, "compile": mode, "steps": steps,
            "device": str(device), "threads": torch.get_num_threads(),
            "peak_memory_gb": peak_memory_gb(device)}


def peak_memory_gb(device: torch.device) -> float | None:
    """Peak memory so far, in GB (1e9 bytes): CUDA memory allocated by PyTorch on a GPU, the
    process's peak resident set on CPU (everything since it started); None where the platform
    does not say (Windows)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * (1 if sys.platform == "darwin" else 1024) / 1e9  # bytes on macOS, KiB else
