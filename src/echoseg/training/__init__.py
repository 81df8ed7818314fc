"""Training: the loop, early stopping, schedulers, SWA, distillation, CUDA-graph steps (checkpoint
I/O is echoseg.checkpoint, provenance echoseg.provenance)."""

from echoseg.training.loop import train

__all__ = ["train"]
