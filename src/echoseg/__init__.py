"""echoseg: lightweight segmentation of LV, myocardium and LA in 2D echocardiography."""

from echoseg.errors import EchosegError

__version__ = "0.1.0"
__all__ = ["EchosegError", "__version__"]
