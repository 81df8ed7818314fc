"""Nearest-neighbour upsampling by an integer factor, with a fast backward on CPU.

The gradient of nearest upsampling by ``f`` is the sum of each f x f block of the incoming
gradient. torch's ``upsample_nearest2d_backward`` first copies a gradient that is not contiguous
-- and in the U-Net it never is: it is a channel slice of the concatenation's gradient -- which
made it 3-5x slower than summing the blocks with ``avg_pool2d(divisor_override=1)`` in place
(2 Zen 4 cores, bf16 channels_last, batch 32: 24 vs 101 ms at 256², 12 vs 63 ms at 128²). Both
sum the same four values in float32 and round once, so the gradients are identical.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from echoseg.models.dispatch import eager_cpu


class _NearestUp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: int) -> torch.Tensor:
        ctx.factor = factor
        return F.interpolate(x, scale_factor=float(factor))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return F.avg_pool2d(grad, ctx.factor, divisor_override=1), None


def upsample_nearest(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``x`` (N, C, h, w) repeated in ``factor`` x ``factor`` blocks: (N, C, h*f, w*f), same
    dtype and layout (``F.interpolate(x, scale_factor=f)``, mode nearest).

    On CPU, when a gradient is needed, the backward sums blocks without copying the gradient
    first; under tracing, export or ``torch.compile`` it is plain ``F.interpolate``.
    """
    if x.requires_grad and eager_cpu(x):
        return _NearestUp.apply(x, factor)
    return F.interpolate(x, scale_factor=float(factor))
