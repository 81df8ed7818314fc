"""``train.compile``: replay each whole training step from one CUDA graph (``cuda-graph``,
cuda_graph.py), or run the steps through ``torch.compile`` (meant for GPUs). ``auto``, the
default, is ``cuda-graph`` where it applies and ``none`` elsewhere.

On the 2-core Zen 4 CPU the whole compiled model trained at 6.7 images/s against 13.5 eager
(256², batch 32, bf16), because echoseg's own CPU kernels (fused Mish, low-resolution decoder
convolution) only run eagerly; so the default is ``none``. On CUDA inductor can fuse the
BatchNorm + Mish passes that bound this small-channel model; ``benchmarks/gpu_train.sh`` measures
it there.
"""

from __future__ import annotations

import torch
from torch import nn

from echoseg.config import COMPILE_MODES, TrainConfig
from echoseg.errors import ConfigError
from echoseg.training.cuda_graph import check_cuda_graph, cuda_graph_problem

__all__ = ["COMPILE_MODES", "check_mode", "for_training", "resolve_mode"]


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`COMPILE_MODES`, else ConfigError naming them."""
    if mode not in COMPILE_MODES:
        raise ConfigError(f"train.compile: unknown mode {mode!r}; valid: "
                          f"{', '.join(COMPILE_MODES)}")
    return mode


def resolve_mode(cfg: TrainConfig, device: torch.device) -> str:
    """The mode a run with ``cfg`` uses on ``device``: ``auto`` is ``cuda-graph`` on CUDA with
    Adam or AdamW and no distillation teachers (1.29x the eager step on an H100), ``none``
    elsewhere; any other mode as given. Raises ConfigError for an unknown mode or a
    ``cuda-graph`` the run cannot use."""
    mode = check_mode(cfg.compile)
    if mode == "auto":
        return "none" if cuda_graph_problem(device, cfg) else "cuda-graph"
    if mode == "cuda-graph":
        check_cuda_graph(device, cfg)
    return mode


def for_training(model: nn.Module, mode: str) -> nn.Module:
    """``model`` itself (a resolved ``mode`` "none", or "cuda-graph", which captures the eager
    step: see cuda_graph.py) or ``torch.compile(model, mode=mode)``, which shares its
    parameters and buffers: save and validate with ``model``, step with the result. Raises
    ConfigError for an unknown ``mode`` (:func:`check_mode`)."""
    if check_mode(mode) in ("none", "cuda-graph"):
        return model
    return torch.compile(model, mode=mode)
