"""Validation during training: loss and hard Dice per structure on the model grid."""

from __future__ import annotations

import numpy as np
import torch

from echoseg.labels import STRUCTURES


@torch.no_grad()
def validate(model: torch.nn.Module, images: np.ndarray | torch.Tensor,
             labels: np.ndarray | torch.Tensor, loss_fn, device: torch.device,
             autocast_dtype: torch.dtype | None, channels_last: bool,
             batch_size: int = 32) -> dict[str, float]:
    """Run the model over uint8 arrays or tensors (N,S,S) (tensors already on ``device`` are
    not copied); returns ``val_loss`` and ``val_dice_<name>``.

    Dice is computed per image and averaged; an image where the structure is absent from both
    prediction and ground truth counts as 1.0.
    """
    model.eval()
    # sums stay on the device and are read once at the end: a read per batch would make the
    # GPU wait for the host every batch
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    dices: dict[str, list[torch.Tensor]] = {name: [] for name in STRUCTURES}
    for start in range(0, len(images), batch_size):
        x = torch.as_tensor(images[start:start + batch_size], device=device)
        x = x.unsqueeze(1).float().div_(255.0)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.as_tensor(labels[start:start + batch_size], device=device).long()
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                            enabled=autocast_dtype is not None):
            logits = model(x)
        logits = logits.float()
        loss_sum += loss_fn(logits, y).double() * len(x)
        pred = logits.argmax(1)
        for name, label in STRUCTURES.items():
            p, g = pred == label, y == label
            inter = (p & g).sum((1, 2)).double()
            total = (p.sum((1, 2)) + g.sum((1, 2))).double()
            dices[name].append(
                torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total)))
    result = {"val_loss": float(loss_sum) / len(images)}
    for name, values in dices.items():
        result[f"val_dice_{name}"] = float(torch.cat(values).mean())
    result["val_dice_mean"] = float(np.mean([result[f"val_dice_{n}"] for n in STRUCTURES]))
    return result
