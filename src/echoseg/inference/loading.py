"""Find and load a model by bundled name, run folder, checkpoint or exported file, for any
runtime."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from echoseg.config import from_dict
from echoseg.errors import ConfigError, EchosegError, plain_reason
from echoseg.export.metadata import PREFIX, config_from_metadata, read_metadata
from echoseg.inference.exported import cached_int8, cached_onnx, cached_openvino
from echoseg.inference.runtimes import (
    INSTALL_HINTS,
    PRECISIONS,
    Backend,
    OnnxRuntimeBackend,
    OpenVinoBackend,
    installed,
    resolve_runtime,
)
from echoseg.inference.segmenter import Segmenter
from echoseg.metrics.quality import QualityThresholds, load_thresholds

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
EXPORTED_SUFFIXES = (".onnx", ".xml")  # ONNX, OpenVINO IR


def bundled_models() -> dict[str, Path]:
    """Bundled model names mapped to their weight files (``weights/<name>.pt``)."""
    return {p.stem: p for p in sorted(WEIGHTS_DIR.glob("*.pt"))}


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A bundled name, a run folder (its best.pt, else last.pt), a checkpoint path or an
    exported .onnx / OpenVINO .xml file -> that file's path. Raises EchosegError otherwise."""
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
                       "or give a run folder, a .pt checkpoint or an exported .onnx/.xml file)")


def load_model(name_or_path: str | Path, device: str = "cpu", postprocess: str | None = None,
               runtime: str | None = None, precision: str = "fp32",
               tta: bool = False) -> Segmenter:
    """Load a model for inference; returns a :class:`Segmenter`.

    ``name_or_path``: a bundled name, run folder, checkpoint, or an exported ``.onnx`` or
    OpenVINO ``.xml`` file (its config, grid size, post-processing and name come from the
    metadata inside). ``runtime``: one of ``echoseg.inference.runtimes.RUNTIMES``; None means
    torch for PyTorch weights and auto for exported files. ONNX Runtime or OpenVINO on PyTorch
    weights runs an export made once and cached (``echoseg.inference.exported``); with
    ``auto``, a failing export falls back to PyTorch with a warning. ``precision`` ``int8``
    (PyTorch weights on ONNX Runtime or OpenVINO only) runs a cached int8 copy calibrated on
    the bundled samples (``echoseg.inference.exported.cached_int8``); an exported file runs
    in the precision it was written in. ``tta``: test-time augmentation (the Segmenter's
    ``tta``).

    Bundled weights are a plain state dict with the config in a JSON file beside them
    (``<name>.json``, key ``config``); checkpoints carry their config inside. Calibrated
    quality thresholds, when stored with the weights (:func:`quality_path`), become the
    Segmenter's ``quality``. Raises
    EchosegError naming the file for a checkpoint, sidecar or config that is broken, and for
    weights that do not fit the model their config describes; ConfigError (one line) for a
    runtime that is unknown, not installed or cannot run this kind of file.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision {precision}: unknown; valid: {', '.join(PRECISIONS)}")
    path = resolve_model_path(name_or_path)
    if path.suffix.lower() in EXPORTED_SUFFIXES:
        if precision != "fp32":
            raise ConfigError(f"--precision {precision}: {path} is an exported file, which "
                              "runs in the precision it was exported in")
        return load_exported(path, device, postprocess, runtime or "auto", tta)
    requested = runtime or "torch"
    chosen = resolve_runtime(requested, device)
    if precision == "int8" and chosen == "torch":
        raise ConfigError("--precision int8 needs --runtime openvino or onnxruntime (or auto "
                          f"with one installed: {INSTALL_HINTS['openvino']})")
    model, config = load_torch(path)
    name = str(name_or_path) if str(name_or_path) in bundled_models() else str(path)
    if chosen != "torch" and not (installed("onnx") and installed("onnxruntime")):
        if requested != "auto":
            raise ConfigError(f"--runtime {chosen} needs ONNX to export {name}: "
                              f"{INSTALL_HINTS['onnxruntime']}")
        chosen = "torch"
    backend = None
    if chosen != "torch":
        try:
            backend = exported_backend(model, config, name, chosen, device, precision)
        except EchosegError as exc:
            if requested != "auto" or precision != "fp32":
                raise
            warnings.warn(f"{exc}; running on PyTorch instead", stacklevel=2)
    return Segmenter(model, config, name=name, device=device, postprocess=postprocess,
                     backend=backend, quality=quality_beside(path, config.data.size),
                     precision=precision, tta=tta)


def load_torch(path: Path):
    """(model, config) of PyTorch weights at ``path`` (checkpoint or bundled state dict)."""
    from echoseg.checkpoint import load_checkpoint
    from echoseg.models import build_model
    from echoseg.restore import load_weights

    state = load_checkpoint(path)
    if state.get("config") is not None:
        config = from_dict(state["config"], source=str(path))
    else:
        meta = path.with_suffix(".json")
        config = from_dict(read_sidecar_config(path, meta), source=str(meta))
    model = build_model(config.model)
    load_weights(model, state, path)
    return model, config


def exported_backend(model, config, name: str, runtime: str, device: str,
                     precision: str = "fp32") -> Backend:
    """The ``runtime`` (onnxruntime or openvino) backend of a cached export of ``model`` in
    ``precision`` (fp32 or int8)."""
    if precision == "int8":
        return open_backend(cached_int8(model, config, name, runtime), runtime, device)
    if runtime == "openvino":
        return open_backend(cached_openvino(model, config, name), runtime, device)
    return open_backend(cached_onnx(model, config, name), runtime, device)


def load_exported(path: Path, device: str, postprocess: str | None, runtime: str,
                  tta: bool = False) -> Segmenter:
    """A Segmenter for an exported ``.onnx`` or ``.xml`` file run by ``runtime`` (auto,
    onnxruntime, openvino; OpenVINO reads both formats, ONNX Runtime only .onnx), with
    test-time augmentation when ``tta``."""
    chosen = exported_runtime(path, runtime, device)
    meta = read_metadata(path)
    config = config_from_metadata(meta, str(path))
    size = meta.get(f"{PREFIX}size")
    if size is not None and size != str(config.data.size):
        raise EchosegError(f"{path}: metadata says grid {size} but its config says "
                           f"{config.data.size}")
    backend = open_backend(path, chosen, device)
    return Segmenter(None, config, name=meta.get(f"{PREFIX}name") or str(path), device=device,
                     postprocess=postprocess or meta.get(f"{PREFIX}postprocess"),
                     backend=backend, quality=quality_beside(path, config.data.size),
                     precision=meta.get(f"{PREFIX}precision") or "fp32", tta=tta)


def quality_path(weights: Path) -> Path | None:
    """The quality-threshold file stored with ``weights``: ``<stem>.quality.json`` beside it
    (bundled ``lightweight.pt`` -> ``lightweight.quality.json``), else ``quality.json`` in its
    folder (a run folder); None when there is neither."""
    for candidate in (weights.with_suffix(".quality.json"), weights.parent / "quality.json"):
        if candidate.is_file():
            return candidate
    return None


def quality_beside(weights: Path, size: int) -> QualityThresholds | None:
    """The calibrated quality thresholds stored with ``weights`` (see :func:`quality_path`),
    or None. Raises EchosegError naming the file when it is broken or was calibrated on
    another grid than the model's ``size`` x ``size``."""
    path = quality_path(weights)
    if path is None:
        return None
    quality = load_thresholds(path)
    if tuple(quality.shape) != (size, size):
        raise EchosegError(f"{path}: calibrated on a {quality.shape[0]}x{quality.shape[1]} "
                           f"grid, but the model's grid is {size}x{size}")
    return quality


def exported_runtime(path: Path, runtime: str, device: str) -> str:
    """The runtime to run the exported file ``path`` with when ``runtime`` was asked for.
    ``auto``: OpenVINO for .xml; for .onnx, on the CPU OpenVINO else ONNX Runtime, on CUDA
    the other way round (whichever is installed). Raises ConfigError (one line) otherwise."""
    xml = path.suffix.lower() == ".xml"
    if runtime == "torch":
        raise ConfigError(f"{path}: an exported model cannot run with --runtime torch; use "
                          "auto, onnxruntime or openvino")
    if xml and runtime == "onnxruntime":
        raise ConfigError(f"{path}: an OpenVINO .xml model cannot run with --runtime "
                          "onnxruntime; use auto or openvino (or give the .onnx file)")
    if runtime != "auto":
        return resolve_runtime(runtime, device)
    if xml:
        if not installed("openvino"):
            raise ConfigError(f"{path}: an OpenVINO model needs OpenVINO: "
                              f"{INSTALL_HINTS['openvino']}")
        return "openvino"
    on_gpu = torch.device(device).type == "cuda"
    for candidate in ("onnxruntime", "openvino") if on_gpu else ("openvino", "onnxruntime"):
        if installed(candidate):
            return candidate
    raise ConfigError(f"{path}: an ONNX model needs ONNX Runtime or OpenVINO: "
                      f"{INSTALL_HINTS['onnxruntime']} or {INSTALL_HINTS['openvino']}")


def open_backend(path: Path, runtime: str, device: str) -> Backend:
    """The onnxruntime or openvino backend for the model file ``path``; raises EchosegError
    naming the file when the runtime cannot load it."""
    try:
        if runtime == "openvino":
            return OpenVinoBackend(path)
        return OnnxRuntimeBackend(path, device)
    except EchosegError:
        raise
    except Exception as exc:  # each runtime raises its own types for a file it cannot load
        raise EchosegError(f"{path}: {runtime} cannot load this model "
                           f"({plain_reason(exc)})") from exc


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
