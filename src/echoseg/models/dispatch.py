"""Where echoseg's own CPU kernels may run instead of torch's reference ops."""

from __future__ import annotations

import torch


def eager_cpu(x: torch.Tensor) -> bool:
    """True for a CPU tensor in plain eager execution: not under ``torch.jit`` tracing or
    scripting, ONNX export or ``torch.compile``, which all need torch's own ops to see."""
    return (
        x.device.type == "cpu"
        and not torch.jit.is_tracing()
        and not torch.jit.is_scripting()
        and not torch.compiler.is_compiling()
        and not torch.onnx.is_in_onnx_export()
    )
