"""Training: the loop, checkpoints, early stopping, schedulers and provenance."""

from echoseg.training.loop import train

__all__ = ["train"]
