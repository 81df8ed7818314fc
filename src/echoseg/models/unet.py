"""One configurable U-Net: every variant of the study is a :class:`ModelConfig`, never a subclass.

Forward contract: ``model(x)`` with x (N, in_channels, H, W) float returns logits
(N, num_classes, H, W) in eval mode or without deep supervision; in training mode with deep
supervision it returns ``[final, aux_1, ..., aux_k]``: the auxiliary logits of every decoder level
but the last, highest resolution first, each at its level's resolution (H/2^i, W/2^i); the loss
scores them as if upscaled (nearest) to (H, W) -- the same value without building them (see
``losses.DeepSupervisionLoss``). ``forward_all`` returns that list upscaled to (H, W) in any
mode (figures). H and W must be divisible by 2^(levels - 1).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from echoseg.config import ModelConfig
from echoseg.errors import ConfigError
from echoseg.models.blocks import ConvBlock, Up, decode_level


class UNet(nn.Module):
    """The U-Net described by ``cfg`` (see the module docstring for the forward contract)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        _validate(cfg)
        self.cfg = cfg
        enc, dec = list(cfg.encoder), list(cfg.decoder)
        block = dict(norm=cfg.norm, act=cfg.act, slope=cfg.negative_slope, residual=cfg.residual)
        strided = cfg.down == "conv"
        self.encoder = nn.ModuleList()
        for i, cout in enumerate(enc):
            cin = cfg.in_channels if i == 0 else enc[i - 1]
            self.encoder.append(ConvBlock(cin, cout, stride=2 if strided and i else 1, **block))
        self.pool = nn.MaxPool2d(2) if not strided else None
        self.ups, self.decoder = nn.ModuleList(), nn.ModuleList()
        prev = enc[-1]
        for j, cout in enumerate(dec):
            up = Up(cfg.up, prev, cout, skip=enc[-2 - j])
            self.ups.append(up)
            self.decoder.append(ConvBlock(up.out_channels, cout, **block))
            prev = cout
        self.head = nn.Conv2d(dec[-1], cfg.num_classes, 1)
        self.aux_heads = nn.ModuleList(
            nn.Conv2d(c, cfg.num_classes, 1) for c in (dec[:-1] if cfg.deep_supervision else [])
        )
        self.levels = len(enc)
        _init_weights(self, cfg.negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Logits (N, C, H, W); a list [final, aux...] when training with deep supervision
        (auxiliary logits at their own resolution)."""
        outs = self._run(x, with_aux=self.training and len(self.aux_heads) > 0, upscale=False)
        return outs if len(outs) > 1 else outs[0]

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[final, aux_1, ..., aux_k] logits at (N, C, H, W) in any mode ([final] without DS)."""
        return self._run(x, with_aux=True, upscale=True)

    def _run(self, x: torch.Tensor, with_aux: bool, upscale: bool) -> list[torch.Tensor]:
        self._check_input(x)
        skips = []
        for i, block in enumerate(self.encoder):
            if self.pool is not None and i < len(self.encoder) - 1:
                skip, x = block.forward_pooled(x, self.pool)
            else:
                x = skip = block(x)
            skips.append(skip)
        x = skips.pop()
        aux = []
        for j, (up, block) in enumerate(zip(self.ups, self.decoder, strict=True)):
            x = decode_level(up, block, x, skips.pop())
            if with_aux and j < len(self.aux_heads):
                logits = self.aux_heads[j](x)
                scale = 2 ** (len(self.decoder) - 1 - j)
                aux.append(F.interpolate(logits, scale_factor=float(scale)) if upscale else logits)
        return [self.head(x), *reversed(aux)]

    def _check_input(self, x: torch.Tensor) -> None:
        if torch.jit.is_tracing():  # ONNX export: shapes are fixed by the example input
            return
        if x.dim() != 4 or x.shape[1] != self.cfg.in_channels:
            raise ConfigError(
                f"model input must be (N, {self.cfg.in_channels}, H, W), got {tuple(x.shape)}"
            )
        factor = 2 ** (self.levels - 1)
        h, w = x.shape[-2:]
        if h % factor or w % factor:
            raise ConfigError(
                f"model input {h}x{w}: height and width must be divisible by {factor} "
                f"(2^(levels-1) for {self.levels} levels); resize or pad to e.g. "
                f"{-(-h // factor) * factor}x{-(-w // factor) * factor}"
            )


def build_model(cfg: ModelConfig | dict) -> UNet:
    """Build the U-Net for a :class:`ModelConfig` (or a plain dict of its fields)."""
    if isinstance(cfg, dict):
        names = {f.name for f in dataclasses.fields(ModelConfig)}
        unknown = sorted(set(cfg) - names)
        if unknown:
            raise ConfigError(
                f"model: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(names))}"
            )
        cfg = ModelConfig(**cfg)
    return UNet(cfg)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _validate(cfg: ModelConfig) -> None:
    from echoseg.config_checks import model_problems

    for _, problem in model_problems(cfg):
        raise ConfigError(problem)


def _init_weights(model: nn.Module, slope: float) -> None:
    # He initialisation as in nnU-Net (leaky-ReLU gain); biases start at zero.
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, a=slope)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
