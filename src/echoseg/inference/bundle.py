"""Write model weights in the bundled format that ``load_model(name)`` reads.

``<dir>/<name>.pt`` holds ``{"model": state_dict}`` (loadable with ``weights_only=True``);
``<dir>/<name>.json`` holds ``{"config": the resolved config, "validation": metrics or absent}``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from echoseg.atomic import atomic_write, atomic_write_text
from echoseg.config import Config, to_dict


def save_bundled(model: torch.nn.Module, config: Config, weights_dir: Path | str, name: str,
                 validation: dict | None = None, extra: dict | None = None) -> Path:
    """Save ``model``'s weights (moved to the CPU) and ``config`` as bundled model ``name``.

    ``validation`` (e.g. ``{"dice": {"LV": 0.93, ...}, "split": "val"}``) is stored for
    ``echoseg demo`` to show beside its own measurements; ``extra`` entries (training
    provenance, license) are stored at the top level of the JSON. Returns the ``.pt`` path;
    both files are written atomically, the JSON first.
    """
    weights_dir = Path(weights_dir)
    meta: dict = {"config": to_dict(config)}
    if validation is not None:
        meta["validation"] = validation
    meta.update(extra or {})
    atomic_write_text(weights_dir / f"{name}.json", json.dumps(meta, indent=2) + "\n")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return atomic_write(weights_dir / f"{name}.pt", lambda tmp: torch.save({"model": state}, tmp))
