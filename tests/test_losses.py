"""Losses against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from echoseg.config import LossConfig
from echoseg.errors import ConfigError
from echoseg.losses import build_loss, ce_loss, dice_ce_loss, dice_loss, soft_dice
from echoseg.losses.dice import block_counts

# 2x2 image, true classes [[1, 1], [0, 2]]; class probabilities per pixel (rows sum to 1).
TARGET = torch.tensor([[[1, 1], [0, 2]]])
PROBS = torch.tensor([
    [0.1, 0.6, 0.2, 0.1],  # (0, 0), true 1
    [0.1, 0.3, 0.5, 0.1],  # (0, 1), true 1
    [0.7, 0.1, 0.1, 0.1],  # (1, 0), true 0
    [0.2, 0.2, 0.4, 0.2],  # (1, 1), true 2
])
LOGITS = PROBS.log().T.reshape(1, 4, 2, 2)  # softmax(log p) = p
S = 1e-5
# class 1: overlap 0.6+0.3, sum p 0.6+0.3+0.1+0.2, 2 pixels; class 2: 0.4, 1.2, 1 pixel;
# class 3: absent, sum p 0.5 -> (0 + S) / (0.5 + S)
DICE = [(1.8 + S) / (3.2 + S), (0.8 + S) / (2.2 + S), S / (0.5 + S)]
CE = -(math.log(0.6) + math.log(0.3) + math.log(0.7) + math.log(0.4)) / 4


def _onehot_logits(target: torch.Tensor, big: float = 50.0) -> torch.Tensor:
    return big * F.one_hot(target, 4).permute(0, 3, 1, 2).float()


def test_hand_example():
    assert soft_dice(LOGITS, TARGET).tolist() == pytest.approx(DICE, rel=1e-5)
    assert dice_loss(LOGITS, TARGET).item() == pytest.approx(1 - sum(DICE) / 3, rel=1e-5)
    assert ce_loss(LOGITS, TARGET).item() == pytest.approx(CE, rel=1e-5)
    expected = 0.5 * (1 - sum(DICE) / 3) + 0.5 * CE
    assert dice_ce_loss(LOGITS, TARGET).item() == pytest.approx(expected, rel=1e-5)


def test_perfect_prediction_scores_zero():
    target = torch.randint(0, 4, (2, 8, 8))
    logits = _onehot_logits(target)
    assert dice_loss(logits, target).item() == pytest.approx(0, abs=1e-6)
    assert ce_loss(logits, target).item() == pytest.approx(0, abs=1e-6)
    assert dice_ce_loss(logits, target).item() == pytest.approx(0, abs=1e-6)


def test_uniform_logits():
    target = torch.tensor([[[0, 1], [2, 3]]])
    logits = torch.zeros(1, 4, 2, 2)
    assert ce_loss(logits, target).item() == pytest.approx(math.log(4), rel=1e-6)
    # each class: overlap 0.25, sum p = 4 * 0.25 = 1, one pixel -> (0.5 + S) / (2 + S)
    dice = (0.5 + S) / (2 + S)
    assert soft_dice(logits, target).tolist() == pytest.approx([dice] * 3, rel=1e-6)
    expected = 0.5 * (1 - dice) + 0.5 * math.log(4)
    assert dice_ce_loss(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_batch_dice_pools_images_and_per_image_does_not():
    # image 0 is the hand example, image 1 is perfect and has class 3 only as foreground
    target = torch.cat([TARGET, torch.tensor([[[3, 3], [0, 0]]])])
    logits = torch.cat([LOGITS, _onehot_logits(target[1:], big=60.0)])
    per_image = soft_dice(logits, target, batch=False)
    assert per_image[0].tolist() == pytest.approx(DICE, rel=1e-5)
    # image 1: classes 1 and 2 absent and not predicted -> 1; class 3 perfect -> 1
    assert per_image[1].tolist() == pytest.approx([1, 1, 1], abs=1e-6)
    # pooled class 3: overlap 2, sum p 0.5 + 2, two pixels -> (4 + S) / (4.5 + S)
    assert soft_dice(logits, target)[2].item() == pytest.approx((4 + S) / (4.5 + S), rel=1e-5)


def test_gradient_matches_a_one_hot_reference():
    torch.manual_seed(0)
    logits = (3 * torch.randn(2, 4, 8, 8)).requires_grad_()
    target = torch.randint(0, 4, (2, 8, 8))
    dice_ce_loss(logits, target).backward()
    ref_logits = logits.detach().clone().requires_grad_()
    p = ref_logits.softmax(1)
    t = F.one_hot(target, 4).permute(0, 3, 1, 2).float()
    dice = (2 * (p * t).sum((0, 2, 3)) + S) / (p.sum((0, 2, 3)) + t.sum((0, 2, 3)) + S)
    (0.5 * (1 - dice[1:].mean()) + 0.5 * F.cross_entropy(ref_logits, target)).backward()
    assert torch.allclose(logits.grad, ref_logits.grad, atol=1e-7)


def test_float32_under_autocast_and_layout_independent():
    torch.manual_seed(0)
    logits = 3 * torch.randn(2, 4, 16, 16)
    target = torch.randint(0, 4, (2, 16, 16))
    reference = dice_ce_loss(logits, target)
    channels_last = logits.contiguous(memory_format=torch.channels_last)
    assert dice_ce_loss(channels_last, target).item() == pytest.approx(reference.item(), rel=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = dice_ce_loss(logits.bfloat16(), target)
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(reference.item(), rel=2e-2)


def test_deep_supervision_weights_each_auxiliary():
    target = torch.tensor([[[0, 1], [2, 3]]])
    uniform, perfect = torch.zeros(1, 4, 2, 2), _onehot_logits(target)
    loss = build_loss(LossConfig(name="ce"))
    assert loss([uniform, uniform, perfect], target).item() == pytest.approx(
        math.log(4) * (1 + 0.3), rel=1e-6)
    assert loss(uniform, target).item() == pytest.approx(math.log(4), rel=1e-6)
    half = build_loss({"name": "ce", "ds_weight": 0.5})
    assert half([perfect, uniform, uniform], target).item() == pytest.approx(
        math.log(4), rel=1e-6)


def test_default_loss_is_dice_ce_with_lambda_0_3():
    loss = build_loss(LossConfig())
    aux = torch.zeros(1, 4, 2, 2)
    expected = dice_ce_loss(LOGITS, TARGET) + 0.3 * dice_ce_loss(aux, TARGET)
    assert loss([LOGITS, aux], TARGET).item() == pytest.approx(expected.item(), rel=1e-6)


def test_unknown_loss_lists_valid_names():
    with pytest.raises(ConfigError, match="unknown loss 'focal'; valid: dice, ce, dice_ce"):
        build_loss(LossConfig(name="focal"))
    with pytest.raises(ConfigError, match="unknown key 'weight'"):
        build_loss({"weight": 1})


@pytest.mark.parametrize("name", ["dice", "ce", "dice_ce"])
@pytest.mark.parametrize("factor", [2, 4])
def test_coarse_auxiliary_scores_as_its_nearest_upscaling(name, factor):
    # deep supervision's small outputs: the loss of the upscaled logits, values and gradients,
    # computed from per-block label counts without building them
    torch.manual_seed(0)
    target = torch.randint(0, 4, (3, 16, 24))
    target[0, :8] = 0  # blocks holding one class and blocks holding several
    final = torch.randn(3, 4, 16, 24)
    coarse = torch.randn(3, 4, 16 // factor, 24 // factor, requires_grad=True)
    loss = build_loss({"name": name})
    direct = loss([final, coarse], target)
    (grad_direct,) = torch.autograd.grad(direct, coarse)
    upscaled = F.interpolate(coarse, scale_factor=float(factor))
    reference = loss([final, upscaled], target)
    (grad_reference,) = torch.autograd.grad(reference, coarse)
    assert direct.item() == pytest.approx(reference.item(), rel=1e-6)
    assert torch.allclose(grad_direct, grad_reference, rtol=1e-4, atol=1e-8)


def test_block_counts_by_hand():
    target = torch.tensor([[[0, 1, 2, 2], [1, 1, 2, 2], [3, 3, 0, 0], [3, 3, 0, 1]]])
    blocks = block_counts(target, 4, [2, 4])
    assert blocks[2].factor == 2 and blocks[2].counts.shape == (1, 4, 2, 2)
    # top-left block [[0, 1], [1, 1]]: one 0, three 1s; bottom-right [[0, 0], [0, 1]]
    assert blocks[2].counts[0, :, 0, 0].tolist() == [1, 3, 0, 0]
    assert blocks[2].counts[0, :, 1, 1].tolist() == [3, 1, 0, 0]
    assert blocks[4].counts[0, :, 0, 0].tolist() == [4, 4, 4, 4]


def test_auxiliary_of_uneven_size_is_upscaled():
    target = torch.randint(0, 4, (2, 10, 10))
    final, aux = torch.randn(2, 4, 10, 10), torch.randn(2, 4, 4, 4)
    loss = build_loss(LossConfig())
    expected = dice_ce_loss(final, target) + 0.3 * dice_ce_loss(
        F.interpolate(aux, size=(10, 10)), target)
    assert loss([final, aux], target).item() == pytest.approx(expected.item(), rel=1e-6)
