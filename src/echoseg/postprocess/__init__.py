"""Post-processing of predicted label maps, composable by name (see ``spec``)."""

from echoseg.postprocess.ops import (
    closing,
    fill_holes,
    largest_component,
    opening,
    structuring_element,
)
from echoseg.postprocess.spec import STEPS, PostProcess, parse_postprocess

__all__ = [
    "STEPS",
    "PostProcess",
    "closing",
    "fill_holes",
    "largest_component",
    "opening",
    "parse_postprocess",
    "structuring_element",
]

