"""Where echoseg keeps what it can rebuild: array caches, exported models, compiled kernels."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$ECHOSEG_CACHE`` when set, else ``~/.cache/echoseg``."""
    return Path(os.environ.get("ECHOSEG_CACHE") or Path.home() / ".cache" / "echoseg")
