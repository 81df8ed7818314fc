"""Knowledge distillation: the student also learns the averaged softmax of trained teachers.

``train.teachers: [MODEL, ...]`` (bundled names, run folders or checkpoints) and
``train.distill_weight: w`` make the training loss ``(1 - w) * task_loss + w * soft_ce``, where
``soft_ce`` is the cross-entropy of the student's final logits against the teachers' mean
probabilities on the same augmented batch. One network can so inherit part of an ensemble's
accuracy at a single network's cost.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from echoseg.errors import EchosegError


class Teachers:
    """Frozen models on ``device`` whose mean softmax (N, C, H, W), fp32, is the soft target."""

    def __init__(self, sources: list[str], device: torch.device, channels_last: bool,
                 size: int | None = None) -> None:
        """Load every teacher (EchosegError naming the one that does not load); with the run's
        grid ``size``, also refuse a teacher whose depth cannot take that grid."""
        from echoseg.inference.loading import load_model

        self.models = []
        for source in sources:
            model = load_model(source).model.to(device).eval().requires_grad_(False)
            factor = 2 ** (model.levels - 1)
            if size is not None and size % factor:
                raise EchosegError(f"{source}: this teacher (train.teachers) needs a grid "
                                   f"divisible by {factor}; data.size={size} is not")
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
            self.models.append(model)

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor, amp: torch.dtype | None) -> torch.Tensor:
        """Mean teacher softmax for images ``x`` (N, 1, H, W), under the run's autocast."""
        with torch.autocast(x.device.type, dtype=amp or torch.float32, enabled=amp is not None):
            logits = [model(x) for model in self.models]
        return torch.stack([lg.float().softmax(1) for lg in logits]).mean(0)


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of -sum_c p_c log softmax(logits)_c; logits and probs (N, C, H, W)."""
    return -(target_probs * F.log_softmax(logits.float(), dim=1)).sum(1).mean()
