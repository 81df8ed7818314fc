"""``--device``: the one place where a device name becomes a ``torch.device``, for every command."""

from __future__ import annotations

import re

import torch

from echoseg.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "cuda:N")  # N: a GPU index, cuda:0 first
_NAME = re.compile(r"auto|cpu|cuda(?::(\d{1,4}))?")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA when available, else the CPU; ``cpu``, ``cuda`` and ``cuda:N`` as given.

    Raises ConfigError ``--device NAME: <problem>`` for any other name (listing the valid
    ones), and for CUDA or a GPU index this machine does not have.
    """
    text = str(name).strip()
    match = _NAME.fullmatch(text)
    if match is None:
        shown = text if 0 < len(text) <= 40 and text.isprintable() else repr(text[:40])
        raise ConfigError(f"--device {shown}: unknown device; valid: {', '.join(DEVICES)}")
    if text == "cpu":
        return torch.device("cpu")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {text}: CUDA is not available on this machine")
    count = torch.cuda.device_count()
    if match.group(1) is not None and int(match.group(1)) >= count:
        names = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise ConfigError(f"--device {text}: no such GPU (this machine has {count}: {names})")
    return torch.device(text)
