"""Cross-entropy, the paper's Dice+CE average, and the deep-supervision wrapper."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from echoseg.losses.class_sums import class_sums
from echoseg.losses.dice import SMOOTH, BlockCounts, batch_dice, block_counts, coarse_parts

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ce_loss(logits: torch.Tensor, target: torch.Tensor | BlockCounts) -> torch.Tensor:
    """Mean pixel-wise cross-entropy of logits (N, C, H, W) and labels (N, H, W) (or their
    :class:`BlockCounts` at a finer grid), in float32."""
    if isinstance(target, BlockCounts):
        return coarse_parts(logits, target)[0]
    return class_sums(logits, target).ce_sum / target.numel()


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor | BlockCounts) -> torch.Tensor:
    """The paper's "Dice+CE": ``0.5 * (1 - softDice) + 0.5 * CE`` (an average, not a sum).

    softDice is the mean batch soft Dice of the foreground classes (see ``soft_dice``).
    ``target`` is labels (N, H, W) or their :class:`BlockCounts` at a finer grid.
    """
    if isinstance(target, BlockCounts):
        ce, dice = coarse_parts(logits, target)
        return 0.5 * (1 - dice[1:].mean()) + 0.5 * ce
    sums = class_sums(logits, target)
    dice = batch_dice(sums, SMOOTH)[1:].mean()
    return 0.5 * (1 - dice) + 0.5 * sums.ce_sum / target.numel()


class DeepSupervisionLoss:
    """``L = L(final) + sum_i weight * L(aux_i)`` over ``[final, aux_1, ..., aux_k]``.

    A single Tensor is scored as ``L(final)`` alone, so the same loss serves eval-mode outputs
    and models without deep supervision. Every auxiliary output gets the same weight (0.3).
    An auxiliary output smaller than the labels is scored as if upscaled (nearest) to their
    size: from per-block label counts when the size ratio is a whole number (exactly the same
    loss, without the full-size logits), by upscaling it otherwise.
    """

    def __init__(self, loss: LossFn, weight: float = 0.3):
        self.loss = loss
        self.weight = weight

    def __call__(
        self, outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor
    ) -> torch.Tensor:
        """Scalar float32 loss of logits (or a list [final, aux...]) against labels (N, H, W)."""
        if isinstance(outputs, torch.Tensor):
            return self.loss(outputs, target)
        final, *aux = outputs
        total = self.loss(final, target)
        size = tuple(target.shape[-2:])
        factors = [_upscale_factor(tuple(out.shape[-2:]), size) for out in aux]
        coarse = [f for f in factors if f > 1]
        blocks = block_counts(target, final.shape[1], coarse) if coarse else {}
        for out, f in zip(aux, factors, strict=True):
            if f == 1:
                scored = self.loss(out, target)
            elif f > 1:
                scored = self.loss(out, blocks[f])
            else:
                scored = self.loss(F.interpolate(out, size=size), target)
            total = total + self.weight * scored
        return total


def _upscale_factor(small: tuple[int, int], size: tuple[int, int]) -> int:
    """The whole factor f with ``size == small * f`` in both dimensions, else 0."""
    f = size[0] // small[0]
    return f if f and small[0] * f == size[0] and small[1] * f == size[1] else 0
