"""``train.compile: cuda-graph``: the whole training step replayed from one CUDA graph.

The lightweight U-Net's step on a GPU is bound by launching its ~4,200 small kernels, not by
running them. Captured once -- forward, loss, backward and the fused Adam update -- the step
becomes a single graph launch per batch, with no compiler involved (capture takes one step).

What the capture needs, and how it is met:
- fixed shapes: training batches all have the same shape (the last partial batch is dropped);
  a batch of another shape runs eagerly;
- no host reads inside the step (the CUDA loss path has none; see losses/class_sums.py);
- an optimiser whose update reads the step count and learning rate from GPU memory: the fused
  Adam/AdamW, with the learning rate in a GPU tensor while capturing. Outside the capture the
  parameter groups keep their float ``lr``, so schedulers, checkpoints and resumed runs see
  exactly what an eager run has; a changed ``lr`` is copied into the graph's tensor before
  the next replay.
"""

from __future__ import annotations

import torch

from echoseg.config import TrainConfig
from echoseg.errors import ConfigError

WARMUP_STEPS = 3  # eager steps before capture: cuDNN's algorithm search, Adam's state


def cuda_graph_problem(device: torch.device, cfg: TrainConfig) -> str | None:
    """Why a run with ``cfg`` on ``device`` cannot replay its steps from a CUDA graph, or None.

    It needs a CUDA device and Adam or AdamW (whose fused CUDA kernel reads its step count and
    learning rate from GPU memory); distillation teachers are not captured (not measured)."""
    if device.type != "cuda":
        return f"needs a CUDA device (this run is on {device.type})"
    if cfg.optimizer not in ("adam", "adamw"):
        return f"needs train.optimizer adam or adamw, not {cfg.optimizer}"
    if cfg.teachers:
        return "does not cover distillation (train.teachers)"
    return None


def check_cuda_graph(device: torch.device, cfg: TrainConfig) -> None:
    """Raise ConfigError naming the :func:`cuda_graph_problem`, if there is one."""
    problem = cuda_graph_problem(device, cfg)
    if problem:
        raise ConfigError(f"train.compile: cuda-graph {problem}; use none")


class CudaGraphStep:
    """``step(x, y, teachers=None, distill_weight=0.0) -> loss``, as ``step_fn`` would do it.

    ``step_fn(x, y, teachers, distill_weight)`` runs one eager training step and returns the
    detached loss (:func:`echoseg.training.loop.train_step` bound to a model, loss and
    optimiser). The first :data:`WARMUP_STEPS` batches run it eagerly on a side stream; the
    next is captured into a CUDA graph, and from then on each batch is copied into the
    graph's input buffers and the graph replayed. Returns the 0-dim fp32 loss of each batch
    (a fresh tensor, not the graph's buffer).
    """

    def __init__(self, step_fn, optimizer: torch.optim.Optimizer) -> None:
        if not optimizer.defaults.get("fused"):
            raise ConfigError("train.compile: cuda-graph needs the fused Adam kernel, which "
                              f"this torch {torch.__version__} lacks; use none")
        self.step_fn = step_fn
        self.optimizer = optimizer
        self.steps = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.stream = torch.cuda.Stream()

    def __call__(self, x: torch.Tensor, y: torch.Tensor, teachers=None,
                 distill_weight: float = 0.0) -> torch.Tensor:
        if self.graph is not None and (x.shape, y.shape) == (self.x.shape, self.y.shape):
            self.x.copy_(x)
            self.y.copy_(y)
            self._update_lr()
            self.graph.replay()
            return self.loss.clone()
        if self.graph is None and self.steps >= WARMUP_STEPS:
            self._capture(x, y, teachers, distill_weight)
            return self.loss.clone()
        self.steps += 1
        # the warm-up runs on a side stream, as capture requires
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            loss = self.step_fn(x, y, teachers, distill_weight)
        torch.cuda.current_stream().wait_stream(self.stream)
        return loss

    def _capture(self, x, y, teachers, distill_weight) -> None:
        self.x, self.y = x.clone(), y.clone()  # the graph's inputs, outside its memory pool
        groups = self.optimizer.param_groups
        self.lr = [torch.tensor(float(g["lr"]), device=x.device) for g in groups]
        self.lr_values = [g["lr"] for g in groups]
        saved = [(g["lr"], g["capturable"]) for g in groups]
        graph = torch.cuda.CUDAGraph()
        try:
            for group, lr in zip(groups, self.lr, strict=True):
                group["lr"], group["capturable"] = lr, True
            self.optimizer.zero_grad(set_to_none=True)  # gradients come from the graph's pool
            with torch.cuda.graph(graph):
                self.loss = self.step_fn(self.x, self.y, teachers, distill_weight)
        finally:
            for group, (lr, capturable) in zip(groups, saved, strict=True):
                group["lr"], group["capturable"] = lr, capturable
        graph.replay()  # capturing records the step without running it
        self.graph = graph

    def _update_lr(self) -> None:
        for i, group in enumerate(self.optimizer.param_groups):
            if group["lr"] != self.lr_values[i]:  # a scheduler stepped: no host read needed
                self.lr[i].fill_(float(group["lr"]))
                self.lr_values[i] = group["lr"]
