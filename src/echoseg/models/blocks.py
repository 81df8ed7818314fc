"""The U-Net's building blocks: a two-convolution block (plain or residual) and an up-step."""

from __future__ import annotations

import torch
from torch import nn

from echoseg.models.bn_mish import norm_act, norm_act_pool
from echoseg.models.dispatch import low_res_upconv
from echoseg.models.layers import make_act, make_norm
from echoseg.models.upconv import conv_upsampled_cat
from echoseg.models.upsample import upsample_nearest


class ConvNormAct(nn.Sequential):
    """3x3 convolution -> norm -> activation. The conv has a bias only when there is no norm
    (a bias right before a normalization is cancelled by it). BatchNorm + Mish may run as one
    fused CPU kernel (see bn_mish.py); the modules and state dict are the same either way."""

    def __init__(self, cin: int, cout: int, norm: str, act: str, slope: float, stride: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=norm == "none"),
            make_norm(norm, cout),
            make_act(act, slope),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, norm, act = self
        return norm_act(norm, act, conv(x))


class ConvBlock(nn.Module):
    """Two 3x3 conv -> norm -> act layers; ``stride=2`` makes the first conv strided (nnU-Net's
    downsampling). With ``residual`` the second activation comes after adding the input, through
    a 1x1 projection (conv + norm) when the channel count or the resolution changes.

    Takes (N, cin, H, W); returns (N, cout, H/stride, W/stride).
    """

    def __init__(
        self, cin: int, cout: int, norm: str, act: str, slope: float,
        stride: int = 1, residual: bool = False,
    ):
        super().__init__()
        self.conv1 = ConvNormAct(cin, cout, norm, act, slope, stride)
        self.residual = residual
        if not residual:
            self.conv2 = ConvNormAct(cin=cout, cout=cout, norm=norm, act=act, slope=slope)
            return
        self.conv2 = nn.Sequential(
            nn.Conv2d(cout, cout, 3, padding=1, bias=norm == "none"), make_norm(norm, cout)
        )
        self.act = make_act(act, slope)
        if cin != cout or stride != 1:
            self.project = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=norm == "none"), make_norm(norm, cout)
            )
        else:
            self.project = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return self.act(y + self.project(x)) if self.residual else y

    def forward_pooled(self, x: torch.Tensor, pool: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y, pool(y))`` with ``y = self(x)``: the encoder's skip features and the next
        level's input. In a plain block the pooling may run inside the last BatchNorm + Mish
        kernel (see bn_mish.py)."""
        if self.residual:
            y = self(x)
            return y, pool(y)
        conv, norm, act = self.conv2
        return norm_act_pool(norm, act, pool, conv(self.conv1(x)))


class Up(nn.Module):
    """Doubles the resolution of the deeper features and concatenates the skip features.

    ``nearest``: nearest-neighbour upsampling, no parameters (CAMUS U-Net 1: the following conv
    block does the learning); ``transposed``: a 2x2 stride-2 transposed conv to ``cout`` channels.
    ``out_channels`` is the width of the concatenation the next block receives.
    """

    def __init__(self, mode: str, cin: int, cout: int, skip: int):
        super().__init__()
        self.mode = mode
        if mode == "transposed":
            self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
            self.out_channels = cout + skip
        else:
            self.out_channels = cin + skip

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x) if self.mode == "transposed" else upsample_nearest(x, 2)
        return torch.cat([x, skip], dim=1)


def decode_level(up: Up, block: ConvBlock, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """``block(up(x, skip))``: one decoder level, from the deeper features x (N, Cx, h, w) and
    the skip features (N, Cs, 2h, 2w) to (N, Cout, 2h, 2w).

    With nearest upsampling and a plain block, on CPU (``ECHOSEG_LOW_RES_UPCONV``, see
    :func:`~echoseg.models.dispatch.low_res_upconv`), the block's first convolution runs on x
    at its own resolution (see upconv.py): the same function, at 16/36 of the multiply-adds
    for the upsampled channels and without building the upsampled or concatenated tensors.
    """
    if up.mode != "nearest" or block.residual or not low_res_upconv(x):
        return block(up(x, skip))
    conv, norm, act = block.conv1
    return block.conv2(norm_act(norm, act, conv_upsampled_cat(x, skip, conv.weight, conv.bias)))
