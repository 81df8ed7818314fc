"""Losses: soft Dice, cross-entropy, their average, and the deep-supervision wrapper.

``build_loss(cfg)`` returns ``loss(outputs, target) -> scalar``, where ``outputs`` is the model's
logits Tensor or its deep-supervision list and ``target`` the labels (N, H, W).
"""

from __future__ import annotations

import dataclasses

from echoseg.config import LossConfig
from echoseg.errors import ConfigError
from echoseg.losses.compound import DeepSupervisionLoss, ce_loss, dice_ce_loss
from echoseg.losses.dice import dice_loss, soft_dice

LOSSES = {"dice": dice_loss, "ce": ce_loss, "dice_ce": dice_ce_loss}


def build_loss(cfg: LossConfig | dict) -> DeepSupervisionLoss:
    """The loss named by ``cfg.name`` (dice | ce | dice_ce), wrapped for deep supervision with
    ``cfg.ds_weight`` per auxiliary output. Accepts a :class:`LossConfig` or a dict of its fields.
    """
    if isinstance(cfg, dict):
        names = {f.name for f in dataclasses.fields(LossConfig)}
        if set(cfg) - names:
            bad = sorted(set(cfg) - names)[0]
            raise ConfigError(f"loss: unknown key {bad!r}; valid keys: {', '.join(sorted(names))}")
        cfg = LossConfig(**cfg)
    if cfg.name not in LOSSES:
        raise ConfigError(f"loss.name: unknown loss {cfg.name!r}; valid: {', '.join(LOSSES)}")
    return DeepSupervisionLoss(LOSSES[cfg.name], cfg.ds_weight)


__all__ = [
    "LOSSES", "DeepSupervisionLoss", "build_loss", "ce_loss", "dice_ce_loss", "dice_loss",
    "soft_dice",
]
