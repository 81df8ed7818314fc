"""Run exported models on grid images with their own runtime (ONNX Runtime, OpenVINO), to
check them against PyTorch. CPU only; the model files are read as written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

Runner = Callable[[np.ndarray], np.ndarray]


def onnx_runner(path: str | Path, threads: int = 0) -> Runner:
    """A function: grid images float32 (N, S, S) in [0, 1] -> logits float32 (N, 4, S, S),
    computed by ONNX Runtime (CPU) from the ONNX file ``path``. ``threads`` 0: ORT's default."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT warns about unused initializers etc.
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(grid: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(grid, dtype=np.float32)[:, None]
        return session.run(None, {name: x})[0]

    return run


def openvino_runner(path: str | Path, threads: int = 0) -> Runner:
    """As :func:`onnx_runner`, for an OpenVINO IR ``.xml`` (or ONNX) file, compiled for CPU
    in fp32 precision (no bf16 or fp16 execution, so that the numbers compare)."""
    import openvino as ov
    import openvino.properties.hint as hints

    config = {hints.inference_precision: ov.Type.f32}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(str(path), "CPU", config)

    def run(grid: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(grid, dtype=np.float32)[:, None]
        return np.asarray(compiled(x)[0])

    return run


def run_batched(runner: Runner, grid: np.ndarray, batch_size: int = 4) -> np.ndarray:
    """``runner`` applied to ``grid`` (N, S, S) in batches; returns the stacked logits."""
    return np.concatenate([runner(grid[i:i + batch_size])
                           for i in range(0, len(grid), batch_size)])
