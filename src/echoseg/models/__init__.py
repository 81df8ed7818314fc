"""Models: one configurable U-Net, name-chosen layers, and the presets of the study."""

from echoseg.models.presets import list_presets, load_preset, model_stats
from echoseg.models.unet import UNet, build_model, count_parameters

__all__ = ["UNet", "build_model", "count_parameters", "list_presets", "load_preset", "model_stats"]
