"""Run exported models on grid images with their own runtime (ONNX Runtime, OpenVINO), to
check them against PyTorch: the backends of echoseg.inference.runtimes, on the CPU, taking
grid images (N, S, S) instead of network inputs (N, 1, S, S)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from echoseg.inference.runtimes import OnnxRuntimeBackend, OpenVinoBackend

Runner = Callable[[np.ndarray], np.ndarray]


def _on_grid(backend) -> Runner:
    return lambda grid: backend(np.ascontiguousarray(grid, dtype=np.float32)[:, None])


def onnx_runner(path: str | Path, threads: int = 0) -> Runner:
    """A function: grid images float32 (N, S, S) in [0, 1] -> logits float32 (N, 4, S, S),
    computed by ONNX Runtime (CPU) from the ONNX file ``path`` with ``threads`` threads (0:
    torch's thread count)."""
    return _on_grid(OnnxRuntimeBackend(path, threads=threads))


def openvino_runner(path: str | Path, threads: int = 0) -> Runner:
    """As :func:`onnx_runner`, for an OpenVINO IR ``.xml`` (or ONNX) file, compiled for the
    CPU in fp32 (no bf16 or fp16 execution, so that the numbers compare)."""
    return _on_grid(OpenVinoBackend(path, threads=threads))


def run_batched(runner: Runner, grid: np.ndarray, batch_size: int = 4) -> np.ndarray:
    """``runner`` applied to ``grid`` (N, S, S) in batches; returns the stacked logits."""
    return np.concatenate([runner(grid[i:i + batch_size])
                           for i in range(0, len(grid), batch_size)])
