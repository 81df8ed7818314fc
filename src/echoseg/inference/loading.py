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
    (``<name>.json``, key ``config``); checkpoints carry their config inside. Raises
    EchosegError naming the file for a checkpoint, sidecar or config that is broken, and for
    weights that do not fit the model their config describes.
    """
    from echoseg.models import build_model
    from echoseg.training.checkpoint import load_checkpoint
    from echoseg.training.restore import load_weights

    path = resolve_model_path(name_or_path)
    if path.suffix == ".onnx":
        raise EchosegError(f"{path}: ONNX models are not supported yet")
    state = load_checkpoint(path)
    if state.get("config") is not None:
        config = from_dict(state["config"], source=str(path))
    else:
        meta = path.with_suffix(".json")
        config = from_dict(read_sidecar_config(path, meta), source=str(meta))
    model = build_model(config.model)
    load_weights(model, state, path)
    name = str(name_or_path) if str(name_or_path) in bundled_models() else str(path)
    return Segmenter(model, config, name=name, device=device, postprocess=postprocess)


def read_sidecar_config(weights: Path, meta: Path) -> dict:
    """The ``config`` entry of the JSON file ``meta`` beside the bundled ``weights``; raises
    EchosegError naming the file when it is missing, not JSON, or has no ``config`` mapping."""
    if not meta.is_file():
        raise EchosegError(f"{weights}: no config inside and no {meta.name} beside it")
    try:
        data = json.loads(meta.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise EchosegError(f"{meta}: not valid JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise EchosegError(f"{meta}: not valid JSON ({exc.msg} at line {exc.lineno}, "
                           f"column {exc.colno})") from None
    except (OSError, RecursionError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "nested too deeply"
        raise EchosegError(f"{meta}: cannot read ({reason})") from None
    if not isinstance(data, dict) or "config" not in data:
        raise EchosegError(f"{meta}: no 'config' entry (the model's resolved config)")
    if not isinstance(data["config"], dict):
        raise EchosegError(f"{meta}: 'config' must be a mapping of sections, got "
                           f"{type(data['config']).__name__}")
    return data["config"]
