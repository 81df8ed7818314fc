"""Inference: load any model (bundled name, run folder, checkpoint) and segment images."""

from echoseg.inference.loading import load_model
from echoseg.inference.segmenter import Segmenter

__all__ = ["Segmenter", "load_model"]
