"""Fused BatchNorm + Mish C kernels: same values, gradients and running statistics as the
modules, the same dispatch rules, and a clean fallback without a C compiler."""

from __future__ import annotations

import copy
import fnmatch
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from echoseg import native
from echoseg.config import ModelConfig
from echoseg.models import bn_mish
from echoseg.models.bn_mish import norm_act, norm_act_pool
from echoseg.models.mish import Mish
from echoseg.models.unet import build_model

needs_kernel = pytest.mark.usefixtures("native_kernels")

# (N, C, H, W): channel counts of the model, one that does not divide the 1024-element block
# (48: the last block of rows is short), one above the block (1100: one row per block and a
# tail of 12 channels outside the 16-lane vectors)
SHAPES = [(4, 16, 8, 8), (2, 32, 16, 16), (2, 48, 5, 7), (2, 24, 9, 9), (2, 1100, 2, 3)]


def _bn(channels: int, seed: int = 0, momentum: float | None = 0.1) -> nn.BatchNorm2d:
    torch.manual_seed(seed)
    bn = nn.BatchNorm2d(channels, momentum=momentum)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_(0.0, 0.5)
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    return bn


def _input(shape, seed: int = 1, scale: float = 3.0) -> torch.Tensor:
    torch.manual_seed(seed)
    x = (torch.randn(shape) * scale + 1.0).bfloat16()
    return x.contiguous(memory_format=torch.channels_last)


def _reference(bn: nn.BatchNorm2d, x: torch.Tensor, grad: torch.Tensor):
    """Output, input/weight/bias gradients of BatchNorm + Mish in float32 on x's values."""
    xf = x.float().requires_grad_()
    y = F.mish(bn(xf))
    y.backward(grad.float())
    return y.detach(), xf.grad, bn.weight.grad, bn.bias.grad


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@needs_kernel
@pytest.mark.parametrize("shape", SHAPES)
def test_training_matches_batchnorm_then_mish(shape):
    bn_fused, x = _bn(shape[1]), _input(shape)
    bn_ref = copy.deepcopy(bn_fused)
    grad = _input(shape, seed=2, scale=1.0)
    x.requires_grad_()
    y = norm_act(bn_fused, Mish(), x)
    y.backward(grad)
    ref_y, ref_gx, ref_gw, ref_gb = _reference(bn_ref, x.detach(), grad)

    assert y.dtype == torch.bfloat16 and y.shape == x.shape
    assert y.is_contiguous(memory_format=torch.channels_last)
    # the output is ref_y rounded to bf16 (2^-9 relative), give or take one bf16 step
    torch.testing.assert_close(y.float(), ref_y, rtol=8e-3, atol=1e-5)
    # gradients pass through two bf16 roundings, as on the unfused bf16 path
    assert x.grad.dtype == torch.bfloat16
    assert _rel(x.grad, ref_gx) < 1e-2
    assert _rel(bn_fused.weight.grad, ref_gw) < 1e-2
    assert _rel(bn_fused.bias.grad, ref_gb) < 1e-2
    torch.testing.assert_close(bn_fused.running_mean, bn_ref.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn_fused.running_var, bn_ref.running_var, rtol=1e-5, atol=1e-6)
    assert bn_fused.num_batches_tracked.item() == bn_ref.num_batches_tracked.item() == 1


@needs_kernel
def test_cumulative_average_without_momentum():
    """momentum=None (SWA's BatchNorm refresh): the running statistics average all batches."""
    bn_fused = _bn(32, momentum=None)
    bn_ref = copy.deepcopy(bn_fused)
    with torch.no_grad():
        for seed in range(3):
            x = _input((2, 32, 8, 8), seed=seed)
            norm_act(bn_fused, Mish(), x)
            bn_ref(x.float())
    torch.testing.assert_close(bn_fused.running_mean, bn_ref.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn_fused.running_var, bn_ref.running_var, rtol=1e-5, atol=1e-6)
    assert bn_fused.num_batches_tracked.item() == 3


@needs_kernel
@pytest.mark.parametrize("shape", SHAPES)
def test_eval_uses_running_statistics(shape):
    bn, x = _bn(shape[1]).eval(), _input(shape)
    with torch.no_grad():
        y = norm_act(bn, Mish(), x)
        ref = F.mish(bn(x.float()))
    torch.testing.assert_close(y.float(), ref, rtol=8e-3, atol=1e-5)
    assert y.is_contiguous(memory_format=torch.channels_last)


@needs_kernel
def test_linear_and_saturated_ends():
    """Past the linear threshold mish(u) = u exactly; far below zero it underflows to -0/0."""
    bn = nn.BatchNorm2d(16).eval()  # identity: running mean 0, var 1, weight 1, bias 0
    values = torch.tensor([-1e4, -200.0, -90.0, -20.0, 0.0, 19.9, 20.5, 100.0, 3e4])
    x = values.repeat(16, 1).reshape(1, 16, 9, 1).bfloat16()
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        y = norm_act(bn, Mish(), x)[0, 0, :, 0].float()
    ref = F.mish(values.bfloat16().float() / (1 + bn.eps) ** 0.5)
    torch.testing.assert_close(y, ref.bfloat16().float(), rtol=8e-3, atol=1e-30)
    assert torch.isfinite(y).all()


@needs_kernel
def test_repeatable_bit_for_bit():
    results = []
    for _ in range(2):
        bn, x = _bn(32), _input((4, 32, 16, 16)).requires_grad_()
        y = norm_act(bn, Mish(), x)
        y.backward(_input(x.shape, seed=5))
        results.append((y, x.grad, bn.weight.grad, bn.running_var))
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


@needs_kernel
def test_dispatch_only_on_bf16_channels_last_cpu(monkeypatch, kernel_calls):
    calls = kernel_calls(bn_mish._BatchNormMish)
    bn, x = _bn(16), _input((2, 16, 4, 4))
    norm_act(bn, Mish(), x)
    assert len(calls) == 1
    norm_act(bn, Mish(), x.float())  # fp32: the modules
    norm_act(bn, Mish(), x.contiguous())  # NCHW: the modules
    norm_act(bn, nn.ReLU(), x)  # another activation
    norm_act(nn.InstanceNorm2d(16, affine=True), Mish(), x)  # another norm
    assert len(calls) == 1
    monkeypatch.setenv("ECHOSEG_FUSED_BN_MISH", "0")
    y = norm_act(bn, Mish(), x)
    assert len(calls) == 1
    assert torch.equal(y, Mish()(bn(x)))


@needs_kernel
def test_one_value_per_channel_raises_like_batchnorm():
    x = _input((1, 16, 1, 1))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        norm_act(_bn(16), Mish(), x)


@needs_kernel
def test_lightweight_model_step_as_accurate_as_unfused(monkeypatch):
    """One bf16 training step of a small lightweight-style model, against the same step in
    float32: the fused kernels are as close to it as the unfused bf16 modules (the state dict
    is the same either way)."""
    cfg = ModelConfig(encoder=[16, 16, 32], decoder=[16, 8], norm="batch", act="mish",
                      deep_supervision=False)
    torch.manual_seed(0)
    base = build_model(cfg).to(memory_format=torch.channels_last)
    x = torch.randn(4, 1, 32, 32).contiguous(memory_format=torch.channels_last)
    target = torch.randint(0, 4, (4, 32, 32))
    runs = {}
    for name, fused, bf16 in (("fp32", "0", False), ("fused", "1", True), ("modules", "0", True)):
        monkeypatch.setenv("ECHOSEG_FUSED_BN_MISH", fused)
        model = copy.deepcopy(base).train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x).float(), target)
        loss.backward()
        runs[name] = (loss.item(), model)
    (loss_ref, ref), (loss_fused, fused), (loss_modules, modules) = runs.values()
    assert abs(loss_fused - loss_ref) <= max(2 * abs(loss_modules - loss_ref), 1e-3)
    assert list(fused.state_dict()) == list(ref.state_dict())
    grads = [(_rel(f.grad, r.grad), _rel(m.grad, r.grad)) for f, m, r in
             zip(fused.parameters(), modules.parameters(), ref.parameters(), strict=True)]
    fused_err, modules_err = (sorted(e)[len(e) // 2] for e in zip(*grads, strict=True))
    assert fused_err <= 1.5 * modules_err + 1e-3, (fused_err, modules_err)
    for name, buf in fused.named_buffers():
        torch.testing.assert_close(buf, dict(ref.named_buffers())[name], rtol=1e-2, atol=1e-3,
                                   msg=name)


POOL_SHAPES = [(2, 16, 8, 8), (2, 48, 6, 10), (2, 20, 4, 6)]  # 20: one vector + 4 channels


def _pooled_reference(bn, x, y, grad, grad_pooled):
    """fp32 BatchNorm + Mish, pooled at the window positions the kernel picked (torch's rule,
    first maximum, applied to the kernel's bf16 y), and its gradients for the given output
    gradients (None: that output unused)."""
    xf = x.detach().float().requires_grad_()
    ref = F.mish(bn(xf))
    where = F.max_pool2d(y.detach().float(), 2, return_indices=True)[1]
    pooled = ref.flatten(2).gather(2, where.flatten(2)).view_as(where)
    loss = sum((out * g.float()).sum() for out, g in ((ref, grad), (pooled, grad_pooled))
               if g is not None)
    loss.backward()
    return ref.detach(), xf.grad, bn.weight.grad, bn.bias.grad


@needs_kernel
@pytest.mark.parametrize("shape", POOL_SHAPES)
@pytest.mark.parametrize("used", ["both", "skip only", "pooled only"])
def test_training_with_pooling_matches(shape, used):
    bn_fused, x = _bn(shape[1]), _input(shape)
    bn_ref = copy.deepcopy(bn_fused)
    x.requires_grad_()
    y, pooled = norm_act_pool(bn_fused, Mish(), nn.MaxPool2d(2), x)
    grad = None if used == "pooled only" else _input(shape, seed=2, scale=1.0)
    grad_pooled = None if used == "skip only" else _input(pooled.shape, seed=3, scale=1.0)
    sum((out * g).sum() for out, g in ((y, grad), (pooled, grad_pooled))
        if g is not None).backward()
    ref_y, ref_gx, ref_gw, ref_gb = _pooled_reference(bn_ref, x, y, grad, grad_pooled)

    assert torch.equal(pooled, F.max_pool2d(y, 2))  # the maxima of the stored y, exactly
    assert pooled.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y.float(), ref_y, rtol=8e-3, atol=1e-5)
    assert _rel(x.grad, ref_gx) < 1e-2
    assert _rel(bn_fused.weight.grad, ref_gw) < 1e-2
    assert _rel(bn_fused.bias.grad, ref_gb) < 1e-2
    torch.testing.assert_close(bn_fused.running_var, bn_ref.running_var, rtol=1e-5, atol=1e-6)


@needs_kernel
def test_pooling_ties_go_to_the_first_maximum():
    """Inputs from {-1, 0, 1}: most windows hold equal values, and the gradient must follow
    torch's first-maximum rule (the reference routes it with torch's max_pool2d indices)."""
    torch.manual_seed(7)
    x = torch.randint(-1, 2, (2, 16, 8, 8)).bfloat16()
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    bn = _bn(16)
    bn_ref = copy.deepcopy(bn)
    y, pooled = norm_act_pool(bn, Mish(), nn.MaxPool2d(2), x)
    grad_pooled = _input(pooled.shape, seed=3, scale=1.0)
    (pooled * grad_pooled).sum().backward()
    ref_gx = _pooled_reference(bn_ref, x, y, None, grad_pooled)[1]
    assert _rel(x.grad, ref_gx) < 1e-2


@needs_kernel
def test_pooling_fused_only_where_it_is_a_plain_2x2_training_pool(kernel_calls):
    calls = kernel_calls(bn_mish._BatchNormMishPool)
    bn, x = _bn(16), _input((2, 16, 4, 4))
    norm_act_pool(bn, Mish(), nn.MaxPool2d(2), x)
    assert len(calls) == 1
    for pool, inp in ((nn.MaxPool2d(3), x), (nn.MaxPool2d(2, ceil_mode=True), x),
                      (nn.AvgPool2d(2), x), (nn.MaxPool2d(2), _input((2, 16, 5, 4)))):
        y, pooled = norm_act_pool(bn, Mish(), pool, inp)
        assert torch.equal(pooled, pool(y))
    norm_act_pool(bn.eval(), Mish(), nn.MaxPool2d(2), x)
    assert len(calls) == 1


def test_without_a_compiler_warns_once_and_uses_the_modules(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("ECHOSEG_KERNEL_CACHE", str(tmp_path / "kernels"))
    monkeypatch.setattr(native, "_loaded", {})
    with pytest.warns(RuntimeWarning, match=r"C kernel 'bn_mish' unavailable \(no C compiler"):
        assert native.load("bn_mish", bn_mish._SIGNATURES) is None
    bn, x = _bn(16), _input((2, 16, 4, 4))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="echoseg: C kernel")  # said once, not per call
        y = norm_act(bn, Mish(), x)
    assert torch.equal(y, Mish()(copy.deepcopy(_bn(16))(x)))
    assert not (tmp_path / "kernels").exists()


@needs_kernel
def test_compiled_once_into_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("ECHOSEG_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "_loaded", {})
    assert native.load("bn_mish", bn_mish._SIGNATURES) is not None
    built = list(tmp_path.iterdir())
    assert len(built) == 1 and built[0].name.startswith("bn_mish-") and built[0].suffix == ".so"
    stamp = built[0].stat().st_mtime_ns
    monkeypatch.setattr(native, "_loaded", {})
    assert native.load("bn_mish", bn_mish._SIGNATURES) is not None
    assert [p.stat().st_mtime_ns for p in tmp_path.iterdir()] == [stamp]


def test_every_kernel_source_ships_in_the_package():
    """Wheels carry only what pyproject's package-data names: a header left out would make the
    kernels fail to build on installed (non-editable) copies."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    root = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["echoseg"]
    sources = [p for p in (root / "src/echoseg/native").iterdir() if p.suffix in (".c", ".h")]
    assert {p.suffix for p in sources} == {".c", ".h"}
    for path in sources:
        relative = path.relative_to(root / "src/echoseg").as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


def _kernel_results() -> list[torch.Tensor]:
    """Outputs and gradients of every kernel that rounds to bf16 on the vector path."""
    from echoseg.losses.class_sums import class_sums

    bn, x = _bn(32), _input((2, 32, 8, 8)).requires_grad_()
    y, pooled = norm_act_pool(bn, Mish(), nn.MaxPool2d(2), x)
    z = norm_act(bn, Mish(), y)
    logits = _input((2, 4, 8, 8), seed=4).requires_grad_()
    labels = torch.randint(0, 4, (2, 8, 8), generator=torch.Generator().manual_seed(0))
    sums = class_sums(logits, labels)
    ((z * _input(z.shape, seed=2)).sum() + (pooled * _input(pooled.shape, seed=3)).sum()
     + sums.inter.sum() + sums.ce_sum).backward()
    return [y, pooled, z, x.grad, bn.weight.grad, logits.grad]


@needs_kernel
def test_cpus_without_avx512_bf16_round_the_same(monkeypatch, tmp_path):
    """Without AVX512_BF16 (Skylake-X to Ice Lake) bf16 rounding is integer arithmetic: built
    with -mno-avx512bf16, the kernels give the same bits (no denormals in these data)."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64") or "avx512_bf16" not in native._cpu():
        pytest.skip("needs an x86 CPU with AVX512_BF16 to compare against")
    expected = _kernel_results()
    monkeypatch.setenv("ECHOSEG_NATIVE_FLAGS", "-mno-avx512bf16")
    monkeypatch.setenv("ECHOSEG_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "_loaded", {})
    got = _kernel_results()
    assert len(list(tmp_path.glob("*.so"))) == 2  # rebuilt: bn_mish and class_sums
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b)


@needs_kernel
def test_a_build_without_vectors_is_not_used(monkeypatch, tmp_path):
    """Without AVX-512 the kernels would run their scalar loops, slower than PyTorch's
    operators (449 against 109 ms forward + backward per 32x32x256x256 tensor on this Zen 4
    built with -mno-avx512f): such a build is refused, with one warning."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("x86 compiler flags")
    monkeypatch.setenv("ECHOSEG_NATIVE_FLAGS", "-mno-avx512f")
    monkeypatch.setenv("ECHOSEG_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "_loaded", {})
    with pytest.warns(RuntimeWarning, match="no AVX-512 .* vector path"):
        assert native.load("bn_mish", bn_mish._SIGNATURES) is None
    bn, x = _bn(16), _input((2, 16, 4, 4))
    assert torch.equal(norm_act(bn, Mish(), x), Mish()(copy.deepcopy(_bn(16))(x)))
