"""Find and load a model by bundled name, run folder or checkpoint file."""

from __future__ import annotations

import json
from pathlib import Path

from echoseg.config import from_dict
from echoseg.errors import EchosegError
from echoseg.inference.segmenter import Segmenter

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"


def bundled_models() -> dict[str, Path]:
    """Bundled model names mapped to their weight files (``weights/<name>.pt``)."""
    return {p.stem: p for p in sorted(WEIGHTS_DIR.glob("*.pt"))}


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A bundled name, a run folder (its best.pt, else last.pt) or a checkpoint path -> file."""
    bundled = bundled_models()
    if str(name_or_path) in bundled:
        return bundled[str(name_or_path)]
    path = Path(name_or_path)
    if path.is_dir():
        for candidate in ("best.pt", "last.pt"):
            if (path / candidate).is_file():
                return path / candidate
        raise EchosegError(f"{path}: no best.pt or last.pt in this run folder")
    if path.is_file():
        return path
    names = ", ".join(bundled) or "none"
    raise EchosegError(f"{name_or_path}: no such model (bundled models: {names}; "
                       "or give a run folder or a .pt checkpoint)")


def load_model(name_or_path: str | Path, device: str = "cpu",
               postprocess: str | None = None) -> Segmenter:
    """Load a model for inference; returns a :class:`Segmenter`.

    Bundled weights are a plain state dict with the config in a JSON file beside them
    (``<name>.json``, key ``config``); checkpoints carry their config inside.
    """
    from echoseg.models import build_model
    from echoseg.training.checkpoint import load_checkpoint

    path = resolve_model_path(name_or_path)
    if path.suffix == ".onnx":
        raise EchosegError(f"{path}: ONNX models are not supported yet")
    state = load_checkpoint(path)
    config_dict = state.get("config")
    if config_dict is None:
        meta = path.with_suffix(".json")
        if not meta.is_file():
            raise EchosegError(f"{path}: no config inside and no {meta.name} beside it")
        config_dict = json.loads(meta.read_text())["config"]
    config = from_dict(config_dict, source=str(path))
    model = build_model(config.model)
    model.load_state_dict(state["model"])
    name = str(name_or_path) if str(name_or_path) in bundled_models() else str(path)
    return Segmenter(model, config, name=name, device=device, postprocess=postprocess)
