"""Which layers stay in float in an int8 model: a measured choice between two candidates.

The rule (the same for ONNX Runtime and OpenVINO):

1. ``all``: every convolution quantized (activations uint8/int8, weights int8 per channel);
2. ``float_ends``: the same, but the first convolution (1 input channel, raw intensities: int8
   saves almost nothing there) and the final 1x1 head (its rounding moves the logits the
   argmax is taken from) stay in float32.

Both are calibrated on the same images and run on up to :data:`PROBE_IMAGES` of them (evenly
spread); each is scored by mean Dice (LV, MYO, LA) of its labels against the fp32 labels.
``float_ends`` is kept only when it beats ``all`` by more than :data:`MIN_GAIN`, since keeping
layers in float costs speed. Both scores are reported, and stored in the model's metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from echoseg.export.checks import mean_dice

PROBE_IMAGES = 16
MIN_GAIN = 0.002  # mean Dice against fp32 that keeping the ends in float must add
CANDIDATES = ("all", "float_ends")

# build(float_layers) -> (quantized artefact, runner: grid (N, S, S) -> logits (N, 4, S, S))
Build = Callable[[list[str]], tuple[Any, Callable[[np.ndarray], np.ndarray]]]


@dataclass
class Selection:
    """The outcome: ``chosen`` candidate name, its ``float_layers`` (node names), the
    ``artefact`` built for it, and ``dice`` (candidate -> mean Dice vs fp32 on the probe)."""

    chosen: str
    float_layers: list[str]
    artefact: Any
    dice: dict[str, float] = field(default_factory=dict)
    probe_images: int = 0

    def summary(self) -> dict:
        """JSON-able: chosen, float_layers, dice_vs_fp32 by candidate, probe_images, rule."""
        return {"chosen": self.chosen, "float_layers": self.float_layers,
                "dice_vs_fp32": self.dice, "probe_images": self.probe_images,
                "rule": f"float_ends only if it adds more than {MIN_GAIN} mean Dice"}


def probe_indices(count: int, limit: int = PROBE_IMAGES) -> np.ndarray:
    """Indices of up to ``limit`` images evenly spread over ``count`` calibration images."""
    return np.unique(np.linspace(0, count - 1, min(count, limit)).round().astype(int))


def choose_float_layers(build: Build, ends: list[str], probe: np.ndarray,
                        fp32_labels: np.ndarray) -> Selection:
    """Build both candidates (``ends``: the first and last convolution's node names), score
    them on ``probe`` grid images (N, S, S) against ``fp32_labels`` (N, S, S) and return the
    :class:`Selection` by the module's rule."""
    built, dice = {}, {}
    for name, float_layers in zip(CANDIDATES, ([], list(ends)), strict=True):
        artefact, runner = build(float_layers)
        labels = np.concatenate([runner(probe[i:i + 4]).argmax(1)
                                 for i in range(0, len(probe), 4)])
        built[name] = (float_layers, artefact)
        dice[name] = mean_dice(labels, fp32_labels)
    chosen = "float_ends" if dice["float_ends"] - dice["all"] > MIN_GAIN else "all"
    float_layers, artefact = built[chosen]
    return Selection(chosen, float_layers, artefact, dice, len(probe))
