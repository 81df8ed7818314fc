"""echoseg: lightweight segmentation of LV, myocardium and LA in 2D echocardiography."""

from echoseg.errors import EchosegError

__version__ = "0.2.0"
__all__ = ["EchosegError", "__version__"]


def __getattr__(name: str):
    # Lazy, so that `import echoseg` (and `echoseg info`) does not import torch.
    if name == "load_model":
        from echoseg.inference import load_model

        return load_model
    raise AttributeError(f"module 'echoseg' has no attribute {name!r}")
