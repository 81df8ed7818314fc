"""Stochastic weight averaging (Izmailov et al., 2018) over the last epochs of a run.

``train.swa_epochs: N`` averages the weights at the end of each of the last N epochs with
PyTorch's ``AveragedModel``; after the last epoch the BatchNorm statistics of the average are
recomputed over one pass of training batches, since averaged weights do not match any epoch's
running statistics.
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel, update_bn

from echoseg.errors import ConfigError


def check_swa_epochs(swa_epochs: int, epochs: int) -> None:
    """Raise ConfigError unless 0 <= ``swa_epochs`` <= ``epochs``."""
    if not 0 <= swa_epochs <= epochs:
        raise ConfigError(f"train.swa_epochs={swa_epochs} must be between 0 (off) and "
                          f"train.epochs={epochs}")


def start_averaging(model: torch.nn.Module, swa_epochs: int) -> AveragedModel | None:
    """An empty running average of ``model``'s weights, or None when ``swa_epochs`` is 0."""
    return AveragedModel(model) if swa_epochs > 0 else None


def averages_epoch(epoch: int, swa_epochs: int, epochs: int) -> bool:
    """True when the weights at the end of ``epoch`` (1-based) go into the average."""
    return swa_epochs > 0 and epoch > epochs - swa_epochs


def finish_averaging(average: AveragedModel, batches, amp: torch.dtype | None,
                     channels_last: bool) -> torch.nn.Module:
    """Recompute BatchNorm statistics of the averaged weights over ``batches`` (an iterable of
    ``(images, labels)``), under the run's autocast; returns the averaged model."""
    def images():
        for x, _ in batches:
            yield x.contiguous(memory_format=torch.channels_last) if channels_last else x

    device_type = next(average.parameters()).device.type
    with torch.autocast(device_type, dtype=amp or torch.float32, enabled=amp is not None):
        update_bn(images(), average)
    return average.module
