"""What the batch Dice and cross-entropy losses need from the logits: per-class sums.

For logits (N, C, H, W) and labels (N, H, W), with p = softmax over the classes:
``inter[k]`` = sum of p_k over the pixels labelled k, ``p_sum[k]`` = sum of p_k, ``t_sum[k]`` =
pixels labelled k, and ``ce_sum`` = sum over pixels of -log p_label. Batch soft Dice is
``(2 inter + smooth) / (p_sum + t_sum + smooth)`` and the mean cross-entropy ``ce_sum / pixels``.
Soft targets, class weights w (N, C, H, W) per pixel instead of labels (the per-block label
counts that score deep-supervision outputs), give ``inter[k]`` = sum of p_k w_k, ``t_sum[k]``
= sum of w_k and ``ce_sum`` = sum of -w_k log p_k.

On CPU, for bf16 channels-last logits (the training step under autocast), one C kernel pass
(native/class_sums.c) computes all four, and its backward recomputes the softmax to write the
logits' gradient in one more pass: no float32 copy of the logits, no probabilities or one-hot
tensors in memory. The same library counts labels per block (:func:`block_counts`). Elsewhere
(fp32, CUDA, tracing, no C compiler, ``ECHOSEG_FUSED_LOSS=0``) the same sums come from PyTorch
operators.
"""

from __future__ import annotations

import ctypes
import os
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from echoseg import native
from echoseg.models.dispatch import eager_cpu
from echoseg.native import FLOAT, I64, INT, PTR

MAX_CLASSES = 64  # the kernel's per-pixel scratch arrays


class ClassSums(NamedTuple):
    """float32 per-class sums (C,) and the 0-dim cross-entropy sum; see the module docstring."""

    inter: torch.Tensor
    p_sum: torch.Tensor
    t_sum: torch.Tensor
    ce_sum: torch.Tensor


_SIGNATURES = {
    "echoseg_class_sums": ([INT, PTR, PTR, I64, I64, PTR], I64),
    "echoseg_class_sums_backward": ([INT, PTR, PTR, I64, I64, PTR, PTR, FLOAT, PTR], None),
    "echoseg_weighted_class_sums": ([INT, PTR, PTR, I64, I64, PTR], None),
    "echoseg_weighted_class_sums_backward": ([INT, PTR, PTR, I64, I64, PTR, PTR, FLOAT, PTR],
                                             None),
    "echoseg_block_counts": ([INT, PTR, I64, I64, I64, I64, I64, PTR], I64),
}


def _library() -> ctypes.CDLL | None:
    return native.load("class_sums", _SIGNATURES)


class _FusedClassSums(torch.autograd.Function):
    """(logits, targets) -> (inter, p_sum, t_sum, ce_sum); targets are int64 labels (N, H, W)
    or float32 class weights in the logits' layout."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor):
        classes, pixels = logits.shape[1], logits.numel() // logits.shape[1]
        sums = torch.empty(4, classes, dtype=torch.float64)
        if targets.is_floating_point():
            native.call(_library(), "echoseg_weighted_class_sums", logits, targets, pixels,
                        classes, sums)
        else:
            _check_labels(native.call(_library(), "echoseg_class_sums", logits, targets, pixels,
                                      classes, sums), classes)
        ctx.save_for_backward(logits, targets)
        inter, p_sum, t_sum, ce = sums.float()
        ctx.mark_non_differentiable(t_sum)
        return inter, p_sum, t_sum, ce[0]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_inter, grad_p_sum, _grad_t_sum, grad_ce):
        logits, targets = ctx.saved_tensors
        classes, pixels = logits.shape[1], logits.numel() // logits.shape[1]
        zeros = torch.zeros(classes)
        grad_inter = zeros if grad_inter is None else grad_inter.float().contiguous()
        grad_p_sum = zeros if grad_p_sum is None else grad_p_sum.float().contiguous()
        grad_ce = 0.0 if grad_ce is None else float(grad_ce)
        grad = torch.empty_like(logits)
        kernel = ("echoseg_weighted_class_sums_backward" if targets.is_floating_point()
                  else "echoseg_class_sums_backward")
        native.call(_library(), kernel, logits, targets, pixels, classes, grad_inter,
                    grad_p_sum, grad_ce, grad)
        return grad, None


def _check_labels(bad: int, classes: int) -> None:
    if bad:
        raise ValueError(f"loss: {bad} label(s) outside 0..{classes - 1} for {classes}-class "
                         "logits")


def _enabled(classes: int) -> bool:
    """The kernels are switched on, built, and sized for ``classes``."""
    return (classes <= MAX_CLASSES and os.environ.get("ECHOSEG_FUSED_LOSS", "1") != "0"
            and _library() is not None)


def _fusable(logits: torch.Tensor) -> bool:
    return (
        logits.dtype == torch.bfloat16 and logits.dim() == 4
        and logits.is_contiguous(memory_format=torch.channels_last)
        and eager_cpu(logits) and _enabled(logits.shape[1])
    )


def class_sums(logits: torch.Tensor, target: torch.Tensor) -> ClassSums:
    """:class:`ClassSums` of logits (N, C, H, W) against labels (N, H, W), or against soft
    targets: float class weights (N, C, H, W); differentiable with respect to the logits
    (``t_sum`` is not)."""
    soft = target.is_floating_point()
    if _fusable(logits) and (not soft or _same_layout(target, logits)):
        target = target if soft else target.long().contiguous()
        return ClassSums(*_FusedClassSums.apply(logits, target))
    if soft:
        logp = logits.float().log_softmax(dim=1)
        probs = logp.exp()
        dims = (0, 2, 3)
        return ClassSums((probs * target).sum(dims), probs.sum(dims), target.sum(dims),
                         -(target * logp).sum())
    return label_sums(logits, target)


def label_sums(logits: torch.Tensor, target: torch.Tensor, per_image: bool = False) -> ClassSums:
    """:class:`ClassSums` against labels through PyTorch's operators, for the batch (C,) or,
    with ``per_image``, for each image (N * C,: image-major); ``ce_sum`` is the batch's."""
    sums = _binned_label_sums if logits.device.type == "cpu" else _masked_label_sums
    return sums(*softmax_parts(logits, target), target, per_image)


def _binned_label_sums(probs: torch.Tensor, logp_true: torch.Tensor, target: torch.Tensor,
                       per_image: bool) -> ClassSums:
    """label_sums on the CPU: bins by label (60 ms less per 32x4x256x256 call than masks)."""
    n, classes = probs.shape[:2]
    bins = target.long().reshape(n, -1)
    if per_image:  # one set of class bins per image
        bins = bins + classes * torch.arange(n, device=bins.device).unsqueeze(1)
    size = n * classes if per_image else classes
    bins = bins.reshape(-1)
    inter = torch.zeros(size, device=bins.device).scatter_add(0, bins,
                                                              logp_true.exp().reshape(-1))
    t_sum = torch.bincount(bins, minlength=size).float()
    p_sum = probs.sum(dim=(2, 3) if per_image else (0, 2, 3)).reshape(size)
    return ClassSums(inter, p_sum, t_sum, -logp_true.sum())


def _masked_label_sums(probs: torch.Tensor, logp_true: torch.Tensor, target: torch.Tensor,
                       per_image: bool) -> ClassSums:
    """label_sums on a GPU: reductions over class masks. Binning by label, as on the CPU, does
    not suit it: bincount reads the largest label back to the host (a sync every step, and no
    CUDA graph capture), and scatter_add's atomics pile onto the background class's bin."""
    classes = probs.shape[1]
    dims = (2, 3) if per_image else (0, 2, 3)
    masks = target.unsqueeze(1) == torch.arange(classes, device=target.device).view(-1, 1, 1)
    return ClassSums((probs * masks).sum(dims).reshape(-1), probs.sum(dims).reshape(-1),
                     masks.sum(dims, dtype=probs.dtype).reshape(-1), -logp_true.sum())


def _same_layout(weights: torch.Tensor, logits: torch.Tensor) -> bool:
    return (weights.dtype == torch.float32 and weights.shape == logits.shape
            and weights.stride() == logits.stride())


def block_counts(target: torch.Tensor, classes: int, factor: int) -> torch.Tensor:
    """How many pixels of each class every ``factor`` x ``factor`` block of the labels
    (N, H, W) holds: (N, C, H/f, W/f) float32, channels_last (the layout of the logits it
    scores). One C pass over the labels on CPU; one-hot and sum pooling elsewhere."""
    n, h, w = target.shape
    shape = (n, classes, h // factor, w // factor)
    if target.device.type == "cpu" and _enabled(classes):
        counts = torch.empty(shape, memory_format=torch.channels_last)
        _check_labels(native.call(_library(), "echoseg_block_counts", target.long().contiguous(),
                                  n, h, w, classes, factor, counts), classes)
        return counts
    onehot = torch.zeros(n, classes, h, w, device=target.device)
    onehot.scatter_(1, target.long().unsqueeze(1), 1.0)
    counts = F.avg_pool2d(onehot, factor, divisor_override=1) if factor > 1 else onehot
    return counts.contiguous(memory_format=torch.channels_last)


def softmax_parts(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 ``(probs, logp_true)`` of logits (N, C, H, W) and labels (N, H, W).

    ``probs`` is softmax(logits) (N, C, H, W); ``logp_true`` (N, 1, H, W) is the log-probability
    of each pixel's true class (the negative per-pixel cross-entropy). Written out with
    broadcasting over the (tiny) class axis, it keeps the logits' layout (channels_last stays
    channels_last) and costs about a third of ``log_softmax`` + one-hot on CPU.
    """
    x = logits.float()
    z = x - x.amax(dim=1, keepdim=True).detach()  # softmax is shift-invariant: no grad needed
    e = z.exp()
    s = e.sum(dim=1, keepdim=True)
    logp_true = z.gather(1, target.long().unsqueeze(1)) - s.log()
    return e / s, logp_true
