"""Where echoseg's own kernels may run instead of torch's reference ops."""

from __future__ import annotations

import os

import torch


def eager() -> bool:
    """True in plain eager execution: not under ``torch.jit`` tracing or scripting, ONNX
    export or ``torch.compile``, which all need torch's own ops to see."""
    return not (
        torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or torch.compiler.is_compiling()
        or torch.onnx.is_in_onnx_export()
    )


def eager_cpu(x: torch.Tensor) -> bool:
    """True for a CPU tensor in plain eager execution (see :func:`eager`)."""
    return x.device.type == "cpu" and eager()


def low_res_upconv(x: torch.Tensor) -> bool:
    """Whether a decoder level runs its first convolution at the low resolution (upconv.py)
    for features ``x``: ``ECHOSEG_LOW_RES_UPCONV`` is ``auto`` (default: on CPU, where it was
    measured faster), ``on`` (any device, e.g. to measure it on a GPU) or ``off``; never
    outside plain eager execution."""
    mode = os.environ.get("ECHOSEG_LOW_RES_UPCONV", "auto")
    if mode == "off":
        return False
    return eager() if mode == "on" else eager_cpu(x)
