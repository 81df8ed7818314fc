"""The decoder's first convolution computed at low resolution equals conv(cat(up(x), skip))."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from echoseg.config import ModelConfig
from echoseg.models import build_model, upconv
from echoseg.models.blocks import decode_level
from echoseg.models.upconv import conv_upsampled_cat, phase_weight


def _reference(x, skip, weight, bias):
    up = F.interpolate(x, scale_factor=2.0)
    return F.conv2d(torch.cat([up, skip], dim=1), weight, bias, padding=1)


def test_phase_kernels_by_hand():
    # all-ones 3x3: phase (0, 0) reads rows/cols i-1 (kernel row 0) and i (rows 1 + 2)
    kernels = phase_weight(torch.ones(1, 1, 3, 3))
    assert kernels.shape == (4, 1, 2, 2)
    assert kernels[:, 0].tolist() == [
        [[1, 2], [2, 4]], [[2, 1], [4, 2]], [[2, 4], [1, 2]], [[4, 2], [2, 1]]]


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_values_and_gradients_match_the_upsampled_convolution(channels_last, with_bias):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 5, 6, 7).contiguous(memory_format=fmt)
    skip = torch.randn(2, 3, 12, 14).contiguous(memory_format=fmt)
    weight, bias = torch.randn(4, 8, 3, 3), torch.randn(4) if with_bias else None
    grad_out = torch.randn(2, 4, 12, 14)
    results = []
    for fn in (conv_upsampled_cat, _reference):
        leaves = [t.detach().clone().requires_grad_() for t in (x, skip, weight)]
        b = bias.detach().clone().requires_grad_() if with_bias else None
        out = fn(*leaves, b)
        out.backward(grad_out)
        grads = [t.grad for t in leaves] + ([b.grad] if b is not None else [])
        results.append([out.detach(), *grads])
    for got, want in zip(*results, strict=True):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_bf16_autocast_close_to_the_reference():
    torch.manual_seed(0)
    cl = torch.channels_last
    x = torch.randn(2, 16, 8, 8).contiguous(memory_format=cl)
    skip = torch.randn(2, 16, 16, 16).contiguous(memory_format=cl)
    weight = torch.randn(8, 32, 3, 3) * 0.1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, want = conv_upsampled_cat(x, skip, weight, None), _reference(x, skip, weight, None)
    assert got.dtype == torch.bfloat16 and got.is_contiguous(memory_format=cl)
    error = (got.float() - want.float()).abs().max() / want.float().abs().max()
    assert error < 2e-2


def test_a_decoder_level_is_the_same_function():
    torch.manual_seed(0)
    model = build_model(ModelConfig(encoder=[4, 8, 8], decoder=[8, 4], norm="batch",
                                    act="mish")).eval()
    up, block = model.ups[1], model.decoder[1]
    x, skip = torch.randn(2, 8, 8, 8), torch.randn(2, 4, 16, 16)
    fast = decode_level(up, block, x, skip)
    torch.testing.assert_close(fast, block(up(x, skip)), rtol=1e-5, atol=1e-5)
    traced = torch.jit.trace(model, torch.randn(1, 1, 16, 16))  # export sees torch's ops
    assert "upsample_nearest2d" in str(traced.inlined_graph)


@pytest.mark.parametrize("mode, fast", [("auto", True), ("on", True), ("off", False)])
def test_environment_switch(monkeypatch, mode, fast):
    monkeypatch.setenv("ECHOSEG_LOW_RES_UPCONV", mode)
    model = build_model(ModelConfig(encoder=[4, 8, 8], decoder=[8, 4], norm="batch"))
    up, block = model.ups[1], model.decoder[1]
    x = torch.randn(1, 8, 4, 4, requires_grad=True)
    out = decode_level(up, block, x, torch.randn(1, 4, 8, 8))
    names = []
    node = out.grad_fn
    while node is not None:  # walk the first inputs back to the decoder level's first op
        names.append(type(node).__name__)
        node = node.next_functions[0][0] if node.next_functions else None
    assert ("_InterleaveBackward" in names) == fast
    assert ("CatBackward0" in names) == (not fast)


@pytest.mark.usefixtures("native_kernels")
@pytest.mark.parametrize("shape", [(2, 16, 4, 6), (2, 24, 3, 5), (1, 3, 2, 2)])
def test_native_interleave_equals_the_strided_copies_bit_for_bit(shape, monkeypatch):
    """bf16 channels_last (the CPU training case): the C kernel (one pass each way) against the
    strided copy + add and copy + zeroing, for 16 channels (whole vectors), 24 (a tail) and 3."""
    n, c, h, w = shape
    torch.manual_seed(0)
    layout = torch.channels_last
    phases = torch.randn(n, 4 * c, h + 1, w + 1).bfloat16().contiguous(memory_format=layout)
    full = torch.randn(n, c, 2 * h, 2 * w).bfloat16().contiguous(memory_format=layout)
    grad = torch.randn(n, c, 2 * h, 2 * w).bfloat16().contiguous(memory_format=layout)
    results = []
    for native in ("1", "0"):
        monkeypatch.setenv("ECHOSEG_NATIVE_INTERLEAVE", native)
        p, f = phases.clone().requires_grad_(), full.clone().requires_grad_()
        out = upconv._Interleave.apply(p, f)
        out.backward(grad)
        results.append((out, p.grad, f.grad))
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)
    assert results[0][1].is_contiguous(memory_format=layout)
