"""Model presets (``configs/models/<name>.yaml``), their parameter counts and GFLOPs.

GFLOPs are 10^9 floating-point operations of one forward pass of a 1x1x256x256 image in eval
mode (no deep-supervision heads), counted by ``torch.utils.flop_counter.FlopCounterMode``: a
multiply-accumulate counts as 2 FLOPs (so GFLOPs = 2 x GMACs), and only convolutions (and
transposed convolutions) are counted; normalization, activations, pooling, upsampling and
concatenation are not (together they are well under 1% of the total).
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from echoseg.config import PACKAGE_CONFIGS, ModelConfig, load_config
from echoseg.errors import ConfigError
from echoseg.models.unet import build_model, count_parameters

PRESET_DIR = PACKAGE_CONFIGS / "models"


def list_presets() -> list[str]:
    """Names of the packaged model presets, sorted."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name: str) -> ModelConfig:
    """The :class:`ModelConfig` of preset ``name``; ConfigError listing the presets if unknown."""
    if name not in list_presets():
        raise ConfigError(f"unknown model preset {name!r}; valid: {', '.join(list_presets())}")
    return load_config(PRESET_DIR / f"{name}.yaml").model


def model_stats(cfg: ModelConfig | dict, size: int = 256) -> dict[str, int | float]:
    """``{"params": int, "gflops": float}`` of the model for a 1-image ``size`` x ``size`` input.

    Built on the meta device, so nothing is allocated or computed (fast even for nnU-Net).
    """
    with torch.device("meta"):
        model = build_model(cfg).eval()
        x = torch.empty(1, model.cfg.in_channels, size, size)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return {"params": count_parameters(model), "gflops": counter.get_total_flops() / 1e9}
