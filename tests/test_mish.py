"""The fused CPU Mish: same values and gradients as torch's, same layout, safe fallbacks."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from echoseg.models import mish as mish_module
from echoseg.models.layers import make_act
from echoseg.models.mish import Mish, mish


def _reference(x: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mish and its input gradient in float64 through torch's own kernel."""
    x64 = x.detach().double().requires_grad_()
    y = F.mish(x64)
    y.backward(grad.double())
    return y.detach(), x64.grad


def _values() -> torch.Tensor:
    """Inputs spanning the saturated, curved and linear parts, the clamp and extremes."""
    torch.manual_seed(0)
    edges = torch.tensor([-1e4, -100.0, -30.0, -1.0, 0.0, 1e-6, 1.0, 19.9, 20.0, 20.1, 80.0, 1e4])
    return torch.cat([edges, torch.randn(1012) * 6]).reshape(4, 4, 8, 8)


@pytest.mark.parametrize("channels_last", [False, True])
def test_float32_matches_torch_to_float_precision(channels_last):
    x = _values()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    grad = torch.randn(x.shape)
    y = mish(x)
    y.backward(grad)
    ref_y, ref_grad = _reference(x, grad)
    assert y.dtype == torch.float32 and y.stride() == x.stride()
    assert x.grad.stride() == x.stride()
    torch.testing.assert_close(y.double(), ref_y, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(x.grad.double(), ref_grad, rtol=1e-5, atol=1e-6)
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()


def test_bfloat16_is_as_accurate_as_the_native_kernel():
    x = _values().to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(x.shape).to(torch.bfloat16)
    ref_y, ref_grad = _reference(x, grad)

    def errors(fn):
        leaf = x.clone().requires_grad_()
        y = fn(leaf)
        y.backward(grad)
        assert y.dtype == torch.bfloat16 and leaf.grad.dtype == torch.bfloat16
        return ((y.double() - ref_y).abs().max().item(),
                (leaf.grad.double() - ref_grad).abs().max().item())

    fused_y, fused_g = errors(mish)
    native_y, native_g = errors(F.mish)
    assert fused_y <= native_y * 1.01 + 1e-6
    assert fused_g <= native_g * 1.01 + 1e-6


def test_a_gradient_in_another_layout_is_handled():
    x = _values().contiguous(memory_format=torch.channels_last).requires_grad_()
    grad = torch.randn(x.shape)  # NCHW while x is channels_last
    mish(x).backward(grad)
    _, ref_grad = _reference(x, grad)
    torch.testing.assert_close(x.grad.double(), ref_grad, rtol=1e-5, atol=1e-6)


def test_a_non_dense_view_is_handled():
    base = _values()
    view = base[:, :, ::2, 1::3]  # neither contiguous nor channels_last
    torch.testing.assert_close(mish(view), F.mish(view), rtol=1e-6, atol=1e-6)


def test_the_model_factory_uses_it_and_it_has_no_state():
    act = make_act("mish")
    assert isinstance(act, Mish)
    assert act.state_dict() == {}


def test_a_failed_compile_falls_back_to_torch_with_one_warning(monkeypatch):
    def broken(name, *tensors):
        raise RuntimeError("no C++ compiler\nsecond line")

    monkeypatch.setattr(mish_module, "_kernel", broken)
    monkeypatch.setattr(mish_module, "_fused_ok", True)
    x = torch.randn(2, 3, 4, 4)
    with pytest.warns(RuntimeWarning, match=r"fused CPU Mish unavailable \(RuntimeError: no C\+\+ "
                                            r"compiler\); using torch's native Mish"):
        first = mish(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = mish(x)
    torch.testing.assert_close(first, F.mish(x))
    torch.testing.assert_close(second, F.mish(x))
    assert mish_module._fused_ok is False


def test_a_failed_backward_compile_still_gives_the_right_gradient(monkeypatch):
    x = _values().requires_grad_()
    y = mish(x)  # forward compiled normally

    def broken(name, *tensors):
        raise RuntimeError("inductor failed")

    monkeypatch.setattr(mish_module, "_kernel", broken)
    monkeypatch.setattr(mish_module, "_fused_ok", True)
    grad = torch.randn(x.shape)
    with pytest.warns(RuntimeWarning, match="inductor failed"):
        y.backward(grad)
    _, ref_grad = _reference(x, grad)
    torch.testing.assert_close(x.grad.double(), ref_grad, rtol=1e-5, atol=1e-6)


def test_training_saves_the_derivative_and_inference_does_not(monkeypatch):
    calls, kernel = [], mish_module._kernel

    def recording(name, *tensors):
        calls.append((name, [t.dtype for t in tensors]))
        return kernel(name, *tensors)

    monkeypatch.setattr(mish_module, "_kernel", recording)
    monkeypatch.setattr(mish_module, "_fused_ok", True)
    x = torch.randn(2, 3, 4, 4, dtype=torch.bfloat16)
    mish(x)
    leaf = x.clone().requires_grad_()
    mish(leaf).sum().backward()
    bf16, fp32 = torch.bfloat16, torch.float32
    # the backward multiplies the bf16 gradient by the float32 derivative: no second exp
    assert calls == [("forward", [bf16]), ("forward_train", [bf16]), ("backward", [bf16, fp32])]


def test_switched_off_by_environment_and_under_tracing(monkeypatch):
    calls = []
    monkeypatch.setattr(mish_module, "_kernel", lambda name, *tensors: calls.append(name))
    x = torch.randn(1, 2, 4, 4)
    monkeypatch.setattr(mish_module, "_fused_ok", False)
    torch.testing.assert_close(mish(x), F.mish(x))
    monkeypatch.setattr(mish_module, "_fused_ok", True)
    traced = torch.jit.trace(Mish(), x, check_trace=False)
    torch.testing.assert_close(traced(x), F.mish(x))
    assert calls == []


def test_a_training_step_of_the_lightweight_model_matches_torch_mish(monkeypatch):
    """Same loss and gradients (to bf16 rounding) as with nn.Mish, in the real CPU fast path:
    bf16 autocast + channels_last, the lightweight preset (BatchNorm + Mish, deep supervision)."""
    from echoseg.losses import build_loss
    from echoseg.models import build_model, load_preset

    torch.manual_seed(0)
    model = build_model(load_preset("lightweight")).train().to(memory_format=torch.channels_last)
    loss_fn = build_loss({})
    x = torch.rand(2, 1, 64, 64).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 4, (2, 64, 64))
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def step(fused: bool):
        monkeypatch.setattr(mish_module, "_fused_ok", fused)
        model.load_state_dict(state)
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_fn(model(x), y)
        loss.backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])

    native_loss, native_grad = step(False)
    fused_loss, fused_grad = step(True)
    assert fused_loss == pytest.approx(native_loss, rel=2e-3)
    cosine = F.cosine_similarity(fused_grad, native_grad, dim=0).item()
    assert cosine > 0.999


def test_a_second_derivative_raises_a_clear_error():
    x = _values().requires_grad_()
    (grad,) = torch.autograd.grad((mish(x) ** 2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        grad.sum().backward()
