"""Soft Dice in float32 without a one-hot target: batch Dice from the per-class sums of
class_sums.py (a C kernel for bf16 logits on CPU), per-image Dice for the metrics, and the
coarse (deep-supervision) scores from per-block label counts.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from echoseg.losses.class_sums import ClassSums, class_sums, label_sums
from echoseg.losses.class_sums import block_counts as count_blocks

SMOOTH = 1e-5


class BlockCounts(NamedTuple):
    """Labels (N, H, W) summarised per ``factor`` x ``factor`` block: ``counts`` (N, C, H/f,
    W/f) float32 holds how many pixels of each class every block has. A loss given this instead
    of labels scores logits at (H/f, W/f) exactly as if they had been upscaled (nearest) to
    (H, W) -- what deep supervision asks of its coarse outputs -- at 1/f² of the cost."""

    counts: torch.Tensor
    factor: int


def block_counts(target: torch.Tensor, num_classes: int,
                 factors: list[int]) -> dict[int, BlockCounts]:
    """:class:`BlockCounts` of labels (N, H, W) for each factor (each must divide H and W)."""
    return {f: BlockCounts(count_blocks(target, num_classes, f), f) for f in factors}


def coarse_parts(logits: torch.Tensor, blocks: BlockCounts, smooth: float = SMOOTH
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 ``(ce, dice)`` of logits (N, C, H/f, W/f) nearest-upscaled by ``blocks.factor``
    against the labels ``blocks`` summarises: the mean cross-entropy (0-dim) and the batch soft
    Dice of every class (C,), without building the upscaled logits."""
    sums = class_sums(logits, blocks.counts)
    ce = sums.ce_sum / sums.t_sum.sum()
    return ce, _dice(sums.inter, sums.p_sum * blocks.factor ** 2, sums.t_sum, smooth)


def _dice(inter: torch.Tensor, p_sum: torch.Tensor, t_sum: torch.Tensor,
          smooth: float) -> torch.Tensor:
    """Soft Dice from the overlap, the predicted and the true mass of each class."""
    return (2 * inter + smooth) / (p_sum + t_sum + smooth)


def per_image_dice(logits: torch.Tensor, target: torch.Tensor,
                   smooth: float = SMOOTH) -> torch.Tensor:
    """Soft Dice of every class (0..C-1) of each image: (N, C) from logits (N, C, H, W) and
    labels (N, H, W)."""
    sums = label_sums(logits, target, per_image=True)
    return _dice(sums.inter, sums.p_sum, sums.t_sum, smooth).reshape(logits.shape[:2])


def batch_dice(sums: ClassSums, smooth: float = SMOOTH) -> torch.Tensor:
    """Batch soft Dice of every class (C,) from the :class:`ClassSums` of a batch."""
    return _dice(sums.inter, sums.p_sum, sums.t_sum, smooth)


def soft_dice(
    logits: torch.Tensor, target: torch.Tensor, smooth: float = SMOOTH, batch: bool = True
) -> torch.Tensor:
    """Soft Dice of each foreground class (1..C-1) from logits (N, C, H, W) and labels (N, H, W).

    With p = softmax(logits) and t = one-hot(target), for class c:
    ``dice_c = (2 * sum(p_c * t_c) + smooth) / (sum(p_c) + sum(t_c) + smooth)``.
    ``batch=True`` sums over the whole batch and the pixels (nnU-Net's "batch dice" for 2D), so
    a class missing from one image does not make that image's score undefined; ``batch=False``
    scores each image and returns (N, C-1). The smooth term (1e-5) only keeps 0/0 finite: a
    class absent from target and prediction scores 1. Returns (C-1,) (or (N, C-1)) float32.
    """
    if not batch:
        return per_image_dice(logits, target, smooth)[:, 1:]
    return batch_dice(class_sums(logits, target), smooth)[1:]


def dice_loss(logits: torch.Tensor, target: torch.Tensor | BlockCounts,
              smooth: float = SMOOTH) -> torch.Tensor:
    """1 - mean soft Dice over the foreground classes (batch dice); a float32 scalar. ``target``
    is labels (N, H, W) or the :class:`BlockCounts` of labels at a finer grid."""
    if isinstance(target, BlockCounts):
        return 1 - coarse_parts(logits, target, smooth)[1][1:].mean()
    return 1 - soft_dice(logits, target, smooth).mean()
