"""Cross-entropy, the paper's Dice+CE average, and the deep-supervision wrapper."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from echoseg.losses.dice import SMOOTH, dice_from_parts, softmax_parts

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean pixel-wise cross-entropy of logits (N, C, H, W) and labels (N, H, W), in float32."""
    return -softmax_parts(logits, target)[1].mean()


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The paper's "Dice+CE": ``0.5 * (1 - softDice) + 0.5 * CE`` (an average, not a sum).

    softDice is the mean batch soft Dice of the foreground classes (see ``soft_dice``).
    """
    probs, logp_true = softmax_parts(logits, target)
    dice = dice_from_parts(probs, logp_true.exp(), target, SMOOTH)[1:].mean()
    return 0.5 * (1 - dice) + 0.5 * -logp_true.mean()


class DeepSupervisionLoss:
    """``L = L(final) + sum_i weight * L(aux_i)`` over ``[final, aux_1, ..., aux_k]``.

    A single Tensor is scored as ``L(final)`` alone, so the same loss serves eval-mode outputs
    and models without deep supervision. Every auxiliary output gets the same weight (0.3).
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
        for out in aux:
            total = total + self.weight * self.loss(out, target)
        return total
