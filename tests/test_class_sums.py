"""Per-class softmax sums of the losses: known values, the C kernel against PyTorch's
operators (sums and gradients), bad labels, and where the kernel runs."""

from __future__ import annotations

import math

import pytest
import torch

from echoseg.losses import class_sums as module
from echoseg.losses import dice_ce_loss
from echoseg.losses.class_sums import _masked_label_sums, class_sums, label_sums, softmax_parts

needs_kernel = pytest.mark.usefixtures("native_kernels")


def _logits(shape, seed=0, scale=4.0) -> torch.Tensor:
    torch.manual_seed(seed)
    return (torch.randn(shape) * scale).bfloat16().contiguous(memory_format=torch.channels_last)


def _labels(shape, classes, seed=1) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.randint(0, classes, (shape[0], *shape[2:]))


def _sums_and_grad(logits, labels, fused: str, monkeypatch):
    """The four sums and the gradient of a loss using all of them."""
    monkeypatch.setenv("ECHOSEG_FUSED_LOSS", fused)
    x = logits.clone().requires_grad_()
    sums = class_sums(x, labels)
    weights = torch.arange(1.0, x.shape[1] + 1)
    loss = (sums.inter * weights).sum() - 1e-3 * sums.p_sum.square().sum() + 0.1 * sums.ce_sum
    loss.backward()
    return sums, x.grad


@pytest.mark.parametrize("fused", ["1", "0"])
def test_known_values_for_uniform_logits(fused, monkeypatch):
    """Zero logits: p = 1/4 everywhere; 8 pixels, labels 0,0,0,1,3,3,3,3."""
    monkeypatch.setenv("ECHOSEG_FUSED_LOSS", fused)
    logits = torch.zeros(1, 4, 2, 4).bfloat16().contiguous(memory_format=torch.channels_last)
    labels = torch.tensor([[[0, 0, 0, 1], [3, 3, 3, 3]]])
    inter, p_sum, t_sum, ce_sum = class_sums(logits, labels)
    assert inter.tolist() == pytest.approx([0.75, 0.25, 0.0, 1.0], rel=1e-6)
    assert p_sum.tolist() == pytest.approx([2.0] * 4, rel=1e-6)
    assert t_sum.tolist() == [3.0, 1.0, 0.0, 4.0]
    assert ce_sum.item() == pytest.approx(8 * math.log(4), rel=1e-6)


@needs_kernel
@pytest.mark.parametrize("shape", [(3, 4, 7, 9), (2, 4, 16, 16), (2, 3, 5, 5), (1, 4, 1, 3)])
def test_kernel_matches_torch_operators(shape, monkeypatch):
    """Four classes run four pixels per vector (with scalar heads and tails: 189 and 3 pixels);
    three classes run the scalar loop."""
    logits, labels = _logits(shape), _labels(shape, shape[1])
    fused, fused_grad = _sums_and_grad(logits, labels, "1", monkeypatch)
    ref, ref_grad = _sums_and_grad(logits, labels, "0", monkeypatch)
    for a, b in zip(fused, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert fused_grad.dtype == torch.bfloat16
    assert fused_grad.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fused_grad.float(), ref_grad.float(), rtol=1e-2, atol=1e-4)


@needs_kernel
def test_saturated_logits_stay_finite(monkeypatch):
    logits = torch.tensor([3e4, -3e4, 0.0, 1e4]).repeat(8, 1).T.reshape(1, 4, 2, 4)
    logits = logits.bfloat16().contiguous(memory_format=torch.channels_last)
    labels = torch.tensor([[[0, 1, 2, 3], [0, 0, 0, 0]]])
    fused, fused_grad = _sums_and_grad(logits, labels, "1", monkeypatch)
    ref, ref_grad = _sums_and_grad(logits, labels, "0", monkeypatch)
    for a, b in zip(fused, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    top, low = 29952.0, 9984.0  # 3e4 and 1e4 in bf16; -log p = top - logit of the label
    assert fused.ce_sum.item() == pytest.approx(2 * top + top + (top - low), rel=1e-6)
    torch.testing.assert_close(fused_grad.float(), ref_grad.float())


@needs_kernel
@pytest.mark.parametrize("bad", [4, -1])
def test_label_outside_the_classes_is_an_error(bad):
    logits = _logits((1, 4, 2, 4))
    labels = torch.zeros(1, 2, 4, dtype=torch.long)
    labels[0, 1, 2] = bad
    with pytest.raises(ValueError, match=r"loss: 1 label\(s\) outside 0..3 for 4-class logits"):
        class_sums(logits, labels)


@needs_kernel
def test_dice_ce_loss_and_its_gradient_match(monkeypatch):
    logits, labels = _logits((4, 4, 32, 32), seed=3), _labels((4, 4, 32, 32), 4, seed=4)
    results = []
    for fused in ("1", "0"):
        monkeypatch.setenv("ECHOSEG_FUSED_LOSS", fused)
        x = logits.clone().requires_grad_()
        loss = dice_ce_loss(x, labels)
        loss.backward()
        results.append((loss, x.grad.float()))
    (loss_a, grad_a), (loss_b, grad_b) = results
    assert loss_a.dtype == torch.float32
    assert loss_a.item() == pytest.approx(loss_b.item(), rel=1e-5)
    torch.testing.assert_close(grad_a, grad_b, rtol=1e-2, atol=1e-6)


@needs_kernel
def test_kernel_only_for_bf16_channels_last(kernel_calls):
    calls = kernel_calls(module._FusedClassSums)
    logits, labels = _logits((1, 4, 4, 4)), _labels((1, 4, 4, 4), 4)
    class_sums(logits, labels)
    class_sums(logits.float(), labels)
    class_sums(logits.contiguous(), labels)
    assert [logits.dtype for logits in calls] == [torch.bfloat16]


@needs_kernel
@pytest.mark.parametrize("shape", [(3, 4, 7, 9), (2, 3, 4, 4)])
def test_soft_targets_kernel_matches_torch_operators(shape, monkeypatch):
    """Class weights per pixel (here random, in the logits' channels_last layout)."""
    torch.manual_seed(5)
    weights = torch.rand(shape).contiguous(memory_format=torch.channels_last) * 4
    fused, fused_grad = _sums_and_grad(_logits(shape), weights, "1", monkeypatch)
    ref, ref_grad = _sums_and_grad(_logits(shape), weights, "0", monkeypatch)
    for a, b in zip(fused, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused_grad.float(), ref_grad.float(), rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("fused", ["1", "0"])
def test_block_counts_known_values(fused, monkeypatch):
    monkeypatch.setenv("ECHOSEG_FUSED_LOSS", fused)
    labels = torch.tensor([[[0, 0, 1, 2],
                            [3, 0, 1, 1],
                            [2, 2, 2, 2],
                            [2, 2, 3, 0]]])
    counts = module.block_counts(labels, 4, 2)
    assert counts.shape == (1, 4, 2, 2)
    assert counts.is_contiguous(memory_format=torch.channels_last)
    # block (0, 0) holds 0, 0, 3, 0; block (0, 1) 1, 2, 1, 1; (1, 0) all 2; (1, 1) 2, 2, 3, 0
    assert counts[0, :, 0, 0].tolist() == [3, 0, 0, 1]
    assert counts[0, :, 0, 1].tolist() == [0, 3, 1, 0]
    assert counts[0, :, 1, 0].tolist() == [0, 0, 4, 0]
    assert counts[0, :, 1, 1].tolist() == [1, 0, 2, 1]
    assert module.block_counts(labels, 4, 4)[0, :, 0, 0].tolist() == [4, 3, 7, 2]


@needs_kernel
def test_block_counts_reject_bad_labels():
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, 3, 3] = 9
    with pytest.raises(ValueError, match=r"loss: 1 label\(s\) outside 0..3"):
        module.block_counts(labels, 4, 2)


@needs_kernel
def test_deep_supervision_loss_matches(monkeypatch):
    """The lightweight model's loss: final logits and three coarser outputs scored from block
    counts, through the kernels and through PyTorch's operators."""
    from echoseg.losses import build_loss

    loss_fn = build_loss({"name": "dice_ce", "ds_weight": 0.3})
    outputs = [_logits((2, 4, 32 // f, 32 // f), seed=f) for f in (1, 2, 4, 8)]
    labels = _labels((2, 4, 32, 32), 4, seed=9)
    results = []
    for fused in ("1", "0"):
        monkeypatch.setenv("ECHOSEG_FUSED_LOSS", fused)
        xs = [o.clone().requires_grad_() for o in outputs]
        loss = loss_fn(xs, labels)
        loss.backward()
        results.append((loss.item(), [x.grad.float() for x in xs]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-2, atol=1e-5)


@pytest.mark.parametrize("per_image", [False, True])
def test_gpu_label_sums_by_class_masks_equal_the_binned_sums(per_image):
    """The GPU's label_sums (reductions over class masks) against the CPU's (bins by label):
    the same sums and the same gradient, here computed on the CPU."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 8, 8, generator=g, requires_grad=True)
    labels = torch.randint(0, 4, (3, 8, 8), generator=g)
    labels[0] = 0  # an image with background only
    binned = label_sums(logits, labels, per_image)
    masked = _masked_label_sums(*softmax_parts(logits, labels), labels, per_image)
    assert masked.t_sum.tolist() == binned.t_sum.tolist()
    if per_image:
        assert masked.t_sum[:4].tolist() == [64.0, 0.0, 0.0, 0.0]
    for a, b in zip(masked, binned, strict=True):
        assert torch.allclose(a, b, atol=1e-5)

    def grad(sums):
        (total,) = torch.autograd.grad(2 * sums.inter.sum() - sums.p_sum.sum() + sums.ce_sum,
                                       logits)
        return total

    assert torch.allclose(grad(masked), grad(binned), atol=1e-6)
