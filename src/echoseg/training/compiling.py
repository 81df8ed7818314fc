"""``train.compile``: run the training steps through ``torch.compile`` (meant for GPUs), or
(``cuda-graph``) replay each whole step from one CUDA graph (cuda_graph.py).

On the 2-core Zen 4 CPU the whole compiled model trained at 6.7 images/s against 13.5 eager
(256², batch 32, bf16), because echoseg's own CPU kernels (fused Mish, low-resolution decoder
convolution) only run eagerly; so the default is ``none``. On CUDA inductor can fuse the
BatchNorm + Mish passes that bound this small-channel model; ``benchmarks/gpu_train.sh`` measures
it there.
"""

from __future__ import annotations

import torch
from torch import nn

from echoseg.errors import ConfigError

COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune", "cuda-graph")


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`COMPILE_MODES`, else ConfigError naming them."""
    if mode not in COMPILE_MODES:
        raise ConfigError(f"train.compile: unknown mode {mode!r}; valid: "
                          f"{', '.join(COMPILE_MODES)}")
    return mode


def for_training(model: nn.Module, mode: str) -> nn.Module:
    """``model`` itself (``mode`` "none", or "cuda-graph", which captures the eager step: see
    cuda_graph.py) or ``torch.compile(model, mode=mode)``, which shares its parameters and
    buffers: save and validate with ``model``, step with the result. Raises ConfigError for an
    unknown ``mode`` (:func:`check_mode`)."""
    if check_mode(mode) in ("none", "cuda-graph"):
        return model
    return torch.compile(model, mode=mode)
