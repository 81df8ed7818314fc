"""Layers chosen by name (MONAI style): ``make_norm("batch", 32)``, ``make_act("mish")``.

Each factory validates the name and raises :class:`ConfigError` listing the valid ones, so a
typo in a YAML preset fails when the model is built, not somewhere in the middle of training.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from echoseg.errors import ConfigError
from echoseg.models.mish import Mish

NORMS: dict[str, Callable[[int], nn.Module]] = {
    "none": lambda channels: nn.Identity(),
    "batch": nn.BatchNorm2d,
    "instance": lambda channels: nn.InstanceNorm2d(channels, affine=True),
}

ACTS: dict[str, Callable[[float], nn.Module]] = {
    "relu": lambda slope: nn.ReLU(inplace=True),
    "leaky_relu": lambda slope: nn.LeakyReLU(slope, inplace=True),
    "mish": lambda slope: Mish(),
    "gelu": lambda slope: nn.GELU(),
}

DOWNS = ("maxpool", "conv")
UPS = ("nearest", "transposed")


def check_choice(kind: str, value: str, valid) -> str:
    """Return ``value`` if it is one of ``valid``; otherwise raise ConfigError naming them."""
    if value not in valid:
        raise ConfigError(f"model.{kind}: unknown value {value!r}; valid: {', '.join(valid)}")
    return value


def make_norm(name: str, channels: int) -> nn.Module:
    """A 2D normalization layer for ``channels`` features: none | batch | instance (affine)."""
    return NORMS[check_choice("norm", name, NORMS)](channels)


def make_act(name: str, negative_slope: float = 0.01) -> nn.Module:
    """An activation by name: relu | leaky_relu (``negative_slope``) | mish | gelu."""
    return ACTS[check_choice("act", name, ACTS)](negative_slope)
