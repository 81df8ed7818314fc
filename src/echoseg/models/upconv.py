"""The decoder's first convolution over [nearest 2x upsampling of x, skip], without upsampling.

A 3x3 convolution of a nearest-upsampled image sees, at each output pixel, only 2x2 distinct
low-resolution pixels: output (2i+a, 2j+b) reads low-resolution rows i-1, i (a = 0) or i, i+1
(a = 1), the kernel rows that land on the same low-resolution row simply add up (and the same
for columns). So the upsampled part of the convolution is one 2x2 convolution at the low
resolution with 4x the output channels (one group per phase (a, b)), whose outputs interleave
into the full-resolution result: 16/36 of the multiply-adds, and neither the upsampled tensor
nor the concatenation is ever built. The skip part stays a 3x3 convolution at full resolution.

The result equals ``conv2d(cat([interpolate(x, 2), skip]), weight, bias, padding=1)`` up to
float rounding (fp32: ~1e-6 relative); the parameters are the conv's own, so checkpoints do not
change. Measured on 2 Zen 4 cores, bf16 channels_last, batch 32, forward + backward of the four
largest decoder levels of the lightweight model at 256²: 1.37 -> 0.86 s. On CPU in bf16 the
interleaving itself is one C pass each way (native/interleave.c; ``ECHOSEG_NATIVE_INTERLEAVE=0``
for the strided copies): 17.2 -> 7.3 ms forward and 8.3 -> 4.8 ms backward at 256², 16
channels, batch 32.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from echoseg import native
from echoseg.models.dispatch import eager_cpu
from echoseg.native import I64, INT, PTR

# _TAPS[a][t, k] = 1 when kernel row k reads low-resolution tap t (row i-1+a+t) for phase a.
_TAPS = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])


def phase_weight(weight: torch.Tensor) -> torch.Tensor:
    """3x3 kernels (Co, Ci, 3, 3) -> the 2x2 kernels (4*Co, Ci, 2, 2) of the four output
    phases (a, b), phase-major: channels [k*Co, (k+1)*Co) hold phase k = 2a + b."""
    taps = _TAPS.to(weight.device, weight.dtype)
    with torch.autocast(weight.device.type, enabled=False):  # sum the fp32 weights exactly
        combined = torch.einsum("atk,oiku,bsu->aboits", taps, weight, taps)
    return combined.reshape(4 * weight.shape[0], weight.shape[1], 2, 2)


class _Interleave(torch.autograd.Function):
    """``full`` (N, Co, 2h, 2w) plus the phases of ``phases`` (N, 4*Co, h+1, w+1):
    out[..., 2i+a, 2j+b] = full[..., 2i+a, 2j+b] + phases[:, k*Co:(k+1)*Co, i+a, j+b], k = 2a+b.
    """

    @staticmethod
    def forward(ctx, phases: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
        ctx.shape, ctx.strides, ctx.dtype = phases.shape, phases.stride(), phases.dtype
        out = torch.empty_like(full)
        if _native(phases, full):
            n, c, h2, w2 = full.shape
            native.call(_library(), "echoseg_interleave", phases, full, n, h2 // 2, w2 // 2, c,
                        out)
            return out
        # a strided copy, then a dense add: 18 ms where one strided add_ took 62 (256², 16 ch)
        _blocks(out).copy_(_phase_blocks(phases))
        return out.add_(full)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grad_phases = torch.empty_strided(ctx.shape, ctx.strides, dtype=ctx.dtype,
                                          device=grad.device)
        if _native(grad_phases, grad):
            n, c, h2, w2 = grad.shape
            native.call(_library(), "echoseg_interleave_backward", grad, n, h2 // 2, w2 // 2, c,
                        grad_phases)
            return grad_phases, grad
        _phase_blocks(grad_phases).copy_(_blocks(grad))
        # each phase's window leaves one row and one column of its channels unread
        c, h, w = ctx.shape[1] // 4, ctx.shape[2] - 1, ctx.shape[3] - 1
        for a in range(2):
            for b in range(2):
                group = grad_phases[:, (2 * a + b) * c:(2 * a + b + 1) * c]
                group[:, :, h if a == 0 else 0].zero_()
                group[:, :, :, w if b == 0 else 0].zero_()
        return grad_phases, grad


_SIGNATURES = {
    "echoseg_interleave": ([INT, PTR, PTR, I64, I64, I64, I64, PTR], None),
    "echoseg_interleave_backward": ([INT, PTR, I64, I64, I64, I64, PTR], None),
}


def _library():
    return native.load("interleave", _SIGNATURES)


def _native(phases: torch.Tensor, full: torch.Tensor) -> bool:
    """Whether native/interleave.c handles this pair: bf16, both dense channels_last, on CPU
    in eager mode (one pass each way instead of two; same values, bit for bit)."""
    return (phases.dtype == full.dtype == torch.bfloat16
            and phases.is_contiguous(memory_format=torch.channels_last)
            and full.is_contiguous(memory_format=torch.channels_last)
            and os.environ.get("ECHOSEG_NATIVE_INTERLEAVE", "1") != "0"
            and eager_cpu(full) and _library() is not None)


def _blocks(full: torch.Tensor) -> torch.Tensor:
    """View (N, h, 2, w, 2, Co) of ``full`` (N, Co, 2h, 2w): [n, i, a, j, b, c] = pixel
    (2i+a, 2j+b) of channel c."""
    n, c, h2, w2 = full.shape
    sn, sc, sh, sw = full.stride()
    return full.as_strided((n, h2 // 2, 2, w2 // 2, 2, c), (sn, 2 * sh, sh, 2 * sw, sw, sc))


def _phase_blocks(phases: torch.Tensor) -> torch.Tensor:
    """View (N, h, 2, w, 2, Co) of ``phases`` (N, 4*Co, h+1, w+1) matching :func:`_blocks`:
    [n, i, a, j, b, c] = phases[n, (2a+b)*Co + c, i+a, j+b]. The offset is linear in every
    index, so the four shifted phase windows are one strided view and one pass."""
    n, c4, h1, w1 = phases.shape
    c = c4 // 4
    sn, sc, sh, sw = phases.stride()
    return phases.as_strided((n, h1 - 1, 2, w1 - 1, 2, c),
                             (sn, sh, sh + 2 * c * sc, sw, sw + c * sc, sc),
                             phases.storage_offset())


def conv_upsampled_cat(x: torch.Tensor, skip: torch.Tensor, weight: torch.Tensor,
                       bias: torch.Tensor | None) -> torch.Tensor:
    """``conv2d(cat([interpolate(x, scale_factor=2), skip], 1), weight, bias, padding=1)``.

    x (N, Cx, h, w), skip (N, Cs, 2h, 2w), weight (Co, Cx + Cs, 3, 3), bias (Co,) or None;
    returns (N, Co, 2h, 2w), computed as described in the module docstring.
    """
    cx = x.shape[1]
    phases = F.conv2d(x, phase_weight(weight[:, :cx]), padding=1)
    full = F.conv2d(skip, weight[:, cx:], bias, padding=1)
    return _Interleave.apply(phases, full)
