"""BatchNorm followed by Mish as one C kernel pair on CPU (native/bn_mish.c).

In the lightweight model every convolution is followed by BatchNorm and Mish. Run as two
modules on bf16 channels-last activations, they make six passes over memory forward and
backward and keep two extra copies of each activation for the backward pass (BatchNorm's output
and Mish's derivative). The fused kernels make two passes each way, store nothing but batch
statistics, and recompute the Mish derivative from the convolution's output in the backward.

The parameters and buffers stay those of the ``nn.BatchNorm2d`` (same state dict); the running
statistics are updated exactly as the module does (momentum or cumulative average, unbiased
variance). Results match the unfused bf16 path to bf16 rounding: the Mish exponential is a
polynomial good to ~2 float ulp, and statistics are summed in float per block of rows, then in
double.

:func:`norm_act` picks the path: the fused kernels for a training-mode BatchNorm2d and
:class:`~echoseg.models.mish.Mish` on a bf16 channels-last CPU tensor in eager mode (the
training fast path, autocast on); in eval mode the same tensor gets one pass of
``mish(x * scale + shift)`` from the running statistics. Everything else, or
``ECHOSEG_FUSED_BN_MISH=0``, or no C compiler, runs ``act(norm(x))``.
:func:`norm_act_pool` does the same for an encoder block's output and the 2x2 max-pooling
that follows it: in training the forward kernel pools while it writes, and the backward
takes the pooled gradient along with the skip connection's.
"""

from __future__ import annotations

import ctypes
import os

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from echoseg import native
from echoseg.models.dispatch import eager_cpu
from echoseg.models.mish import Mish
from echoseg.native import FLOAT, I64, INT, PTR

_SIGNATURES = {  # every kernel takes the thread count first; returns nothing
    name: ([INT, *args], None) for name, args in {
        "echoseg_affine_mish": [PTR, I64, I64, PTR, PTR, PTR],
        "echoseg_bn_mish_forward": [PTR, I64, I64, PTR, PTR, FLOAT, PTR, PTR, PTR],
        "echoseg_bn_mish_backward": [PTR, PTR, I64, I64, PTR, PTR, FLOAT, PTR, PTR, PTR, PTR,
                                     PTR],
        "echoseg_bn_mish_pool_forward": [PTR, I64, I64, I64, I64, PTR, PTR, FLOAT, PTR, PTR, PTR,
                                         PTR, PTR],
        "echoseg_bn_mish_pool_backward": [PTR, PTR, PTR, PTR, I64, I64, I64, I64, PTR, PTR,
                                          FLOAT, PTR, PTR, PTR, PTR, PTR],
    }.items()
}


def _library() -> ctypes.CDLL | None:
    return native.load("bn_mish", _SIGNATURES)


def _call(name: str, *args) -> None:
    native.call(_library(), name, *args)


def _rows_channels(x: torch.Tensor) -> tuple[int, int]:
    return x.numel() // x.shape[1], x.shape[1]


def _param(p: torch.Tensor) -> torch.Tensor:
    return p.detach().float().contiguous()


class _BatchNormMish(torch.autograd.Function):
    """(x, weight, bias, eps) -> (mish(batch_norm(x)), batch mean, biased batch variance)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float):
        m, c = _rows_channels(x)
        y = torch.empty_like(x)
        mean, var = x.new_empty(c, dtype=torch.float32), x.new_empty(c, dtype=torch.float32)
        gamma, beta = _param(weight), _param(bias)
        _call("echoseg_bn_mish_forward", x, m, c, gamma, beta, eps, mean, var, y)
        ctx.save_for_backward(x, gamma, beta, mean, var)
        ctx.eps = eps
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor, _mean_grad, _var_grad):
        x, gamma, beta, mean, var = ctx.saved_tensors
        grad = _dense(grad, x.dtype)
        m, c = _rows_channels(x)
        grad_x = torch.empty_like(x)
        grad_gamma, grad_beta = torch.empty_like(gamma), torch.empty_like(beta)
        _call("echoseg_bn_mish_backward", grad, x, m, c, gamma, beta, ctx.eps, mean, var,
              grad_x, grad_gamma, grad_beta)
        return grad_x, grad_gamma, grad_beta, None


class _BatchNormMishPool(torch.autograd.Function):
    """(x, weight, bias, eps) -> (y = mish(batch_norm(x)), max_pool2d(y, 2), batch mean,
    biased batch variance): the pooling is done while y is written, and its backward is folded
    into the first backward pass (no zero-filled gradient, no scatter, no separate sum with the
    skip connection's gradient). Window positions are kept as uint8, not int64."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float):
        n, c, h, w = x.shape
        y = torch.empty_like(x)
        half = (n, c, h // 2, w // 2)
        pooled = torch.empty(half, dtype=x.dtype, memory_format=torch.channels_last)
        index = torch.empty(half, dtype=torch.uint8, memory_format=torch.channels_last)
        mean, var = x.new_empty(c, dtype=torch.float32), x.new_empty(c, dtype=torch.float32)
        gamma, beta = _param(weight), _param(bias)
        _call("echoseg_bn_mish_pool_forward", x, n, h, w, c, gamma, beta, eps, mean, var, y,
              pooled, index)
        ctx.save_for_backward(x, gamma, beta, mean, var, index)
        ctx.eps = eps
        ctx.mark_non_differentiable(mean, var)
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None, not zeros
        return y, pooled, mean, var

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor | None, grad_pooled: torch.Tensor | None, *_):
        x, gamma, beta, mean, var, index = ctx.saved_tensors
        n, c, h, w = x.shape
        grad_x = torch.empty_like(x)
        grad_gamma, grad_beta = torch.empty_like(gamma), torch.empty_like(beta)
        _call("echoseg_bn_mish_pool_backward", _dense(grad, x.dtype),
              _dense(grad_pooled, x.dtype), index, x, n, h, w, c, gamma, beta, ctx.eps, mean,
              var, grad_x, grad_gamma, grad_beta)
        return grad_x, grad_gamma, grad_beta, None


def _dense(grad: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if grad is None else grad.to(dtype).contiguous(memory_format=torch.channels_last)


def _fusable(norm: nn.Module, act: nn.Module, x: torch.Tensor) -> bool:
    return (
        type(norm) is nn.BatchNorm2d and isinstance(act, Mish) and norm.affine
        and x.dtype == torch.bfloat16 and x.dim() == 4
        and x.is_contiguous(memory_format=torch.channels_last)
        and os.environ.get("ECHOSEG_FUSED_BN_MISH", "1") != "0"
        and eager_cpu(x)
        and (norm.training or norm.running_mean is not None)
        and _library() is not None
    )


def norm_act(norm: nn.Module, act: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``act(norm(x))``; fused C kernels where they apply (see the module docstring).

    x (N, C, H, W); returns a tensor of the same shape, dtype and layout. A training-mode
    BatchNorm updates its running statistics either way.
    """
    if not _fusable(norm, act, x):
        return act(norm(x))
    if norm.training:
        # one value per channel: let nn.BatchNorm2d raise its own error
        return _train(norm, x) if x.numel() > x.shape[1] else act(norm(x))
    if torch.is_grad_enabled() and (x.requires_grad or norm.weight.requires_grad):
        return act(norm(x))
    return _eval(norm, x)


def norm_act_pool(norm: nn.Module, act: nn.Module, pool: nn.Module,
                  x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y, pool(y))`` with ``y = act(norm(x))``; for a 2x2 ``nn.MaxPool2d`` where the fused
    training kernels apply (see the module docstring) the pooling is fused with them too.

    x (N, C, H, W); returns y (N, C, H, W) and the pooled (N, C, H/2, W/2), both in x's dtype.
    """
    if (norm.training and _fusable(norm, act, x) and _is_plain_2x2(pool)
            and x.shape[-2] % 2 == 0 and x.shape[-1] % 2 == 0 and x.numel() > x.shape[1]):
        y, pooled, mean, var = _BatchNormMishPool.apply(x, norm.weight, norm.bias, norm.eps)
        _update_running_statistics(norm, mean, var, x.numel() // x.shape[1])
        return y, pooled
    y = norm_act(norm, act, x)
    return y, pool(y)


def _is_plain_2x2(pool: nn.Module) -> bool:
    def pair(v):
        return (v, v) if isinstance(v, int) else tuple(v)

    return (type(pool) is nn.MaxPool2d and pair(pool.kernel_size) == (2, 2)
            and pair(pool.stride) == (2, 2) and pair(pool.padding) == (0, 0)
            and pair(pool.dilation) == (1, 1) and not pool.ceil_mode
            and not pool.return_indices)


def _train(norm: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    y, mean, var = _BatchNormMish.apply(x, norm.weight, norm.bias, norm.eps)
    _update_running_statistics(norm, mean, var, x.numel() // x.shape[1])
    return y


def _update_running_statistics(norm: nn.BatchNorm2d, mean: torch.Tensor, var: torch.Tensor,
                               m: int) -> None:
    """What nn.BatchNorm2d does with a training batch's statistics (m values per channel)."""
    if norm.track_running_stats and norm.running_mean is not None:
        with torch.no_grad():
            factor = norm.momentum
            if norm.num_batches_tracked is not None:
                norm.num_batches_tracked.add_(1)
                if factor is None:  # cumulative moving average, as nn.BatchNorm2d
                    factor = 1.0 / float(norm.num_batches_tracked)
            norm.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
            norm.running_var.mul_(1 - factor).add_(var, alpha=factor * m / max(m - 1, 1))


def _eval(norm: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        scale = _param(norm.weight) * torch.rsqrt(norm.running_var.float() + norm.eps)
        shift = _param(norm.bias) - norm.running_mean.float() * scale
        y = torch.empty_like(x)
        m, c = _rows_channels(x)
        _call("echoseg_affine_mish", x, m, c, scale.contiguous(), shift.contiguous(), y)
    return y

