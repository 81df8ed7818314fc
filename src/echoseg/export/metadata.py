"""Metadata stored inside exported models: what a runtime needs to use one without echoseg's
training code (grid size, classes, preprocessing, post-processing, config) and where it came
from (weights digest, provenance, license).

Every key starts with ``echoseg.``; every value is a string (JSON for structured values). ONNX
files keep them in ``metadata_props``, OpenVINO IR files in ``rt_info``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from echoseg.config import Config, from_dict, to_dict
from echoseg.errors import EchosegError

if TYPE_CHECKING:
    import torch

PREFIX = "echoseg."
FORMAT_VERSION = "1"
CLASSES = ("background", "LV", "MYO", "LA")
CAMUS_LICENSE = (
    "Derived from CAMUS: CC BY-NC-SA 4.0, non-commercial scientific research only. Cite: "
    "S. Leclerc, E. Smistad, J. Pedrosa, A. Ostvik, et al., 'Deep Learning for Segmentation "
    "using an Open Large-Scale Dataset in 2D Echocardiography', IEEE Transactions on Medical "
    "Imaging, vol. 38, no. 9, pp. 2198-2210, Sept. 2019, doi: 10.1109/TMI.2019.2900516."
)


def preprocess_text(size: int) -> str:
    """How an image becomes the model input (echoseg.data.preprocess.image_to_grid), in words."""
    return (f"grayscale 2D image; uint8 divided by 255, other dtypes min-max scaled to [0, 1]; "
            f"resized to {size}x{size} (area averaging when shrinking, bilinear when "
            f"enlarging); input 'image' float32 (N, 1, {size}, {size}); output 'logits' "
            f"float32 (N, 4, {size}, {size}), label = argmax over axis 1")


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 (hex) of the model's state_dict tensors: each tensor's bytes (CPU, contiguous),
    in state_dict key order. Same weights give the same digest whatever device they are on."""
    import torch

    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        t = tensor.detach().cpu().contiguous()
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def build_metadata(config: Config, *, name: str, weights_sha256: str,
                   provenance: dict | None = None) -> dict[str, str]:
    """The ``echoseg.*`` metadata of a model exported from ``config`` (string keys and values):
    format_version, name, version (echoseg's), config (JSON), size (grid side, pixels),
    classes (JSON list), preprocess, postprocess, provenance (JSON), license (see
    :func:`license_text`), weights_sha256, precision (``fp32``; int8 exports replace it)."""
    from echoseg import __version__

    size = config.data.size
    provenance = provenance or {}
    return {
        f"{PREFIX}format_version": FORMAT_VERSION,
        f"{PREFIX}name": name,
        f"{PREFIX}version": __version__,
        f"{PREFIX}config": json.dumps(to_dict(config), sort_keys=True),
        f"{PREFIX}size": str(size),
        f"{PREFIX}classes": json.dumps(list(CLASSES)),
        f"{PREFIX}preprocess": preprocess_text(size),
        f"{PREFIX}postprocess": config.postprocess,
        f"{PREFIX}provenance": json.dumps(provenance, sort_keys=True, default=str),
        f"{PREFIX}license": license_text(config, provenance),
        f"{PREFIX}weights_sha256": weights_sha256,
        f"{PREFIX}precision": "fp32",
    }


def license_text(config: Config, provenance: dict) -> str:
    """The license of the weights: the one the weights record (``provenance["license"]``),
    else the CAMUS license and citation when the training data was CAMUS (the data root names
    it, or is unset), else a line saying that the training data's license applies."""
    recorded = provenance.get("license")
    if isinstance(recorded, str) and recorded:
        return recorded
    root = config.data.root
    if root is None or "camus" in root.lower():
        return CAMUS_LICENSE
    return f"weights trained on {root}: the license of that data applies"


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``echoseg.*`` metadata of an exported ``.onnx`` file or OpenVINO ``.xml`` file.
    Raises EchosegError naming the file when it is missing, not a model file, or holds no
    echoseg metadata."""
    meta = stored_entries(path)
    if f"{PREFIX}config" not in meta:
        raise EchosegError(f"{path}: no echoseg metadata in this model file "
                           "(export it with `echoseg export`)")
    return meta


def stored_entries(path: str | Path) -> dict[str, str]:
    """The ``echoseg.*`` entries of an ``.onnx`` or OpenVINO ``.xml`` file, possibly none.
    Raises EchosegError naming the file when it is missing or not a model file."""
    path = Path(path)
    if not path.is_file():
        raise EchosegError(f"{path}: no such file")
    meta = _read_openvino(path) if path.suffix.lower() == ".xml" else _read_onnx(path)
    return {k: v for k, v in meta.items() if k.startswith(PREFIX)}


def config_from_metadata(meta: dict[str, str], source: str) -> Config:
    """The Config stored in ``meta`` (from :func:`read_metadata`); ``source`` names the file in
    errors. Raises EchosegError/ConfigError when it is missing or not valid."""
    text = meta.get(f"{PREFIX}config")
    if text is None:
        raise EchosegError(f"{source}: no echoseg.config in the model's metadata")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EchosegError(f"{source}: echoseg.config is not valid JSON ({exc.msg})") from None
    return from_dict(raw, source=source)


def _read_onnx(path: Path) -> dict[str, str]:
    try:
        import onnx
    except ImportError:
        raise EchosegError(f"{path}: reading ONNX needs onnx: pip install 'echoseg[export]'") \
            from None
    try:
        # the weights are not needed for the metadata
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf raises various DecodeErrors for a file that is not ONNX
        raise EchosegError(f"{path}: not an ONNX model file") from None
    if not model.graph.node:
        raise EchosegError(f"{path}: not an ONNX model file")
    return {p.key: p.value for p in model.metadata_props}


def _read_openvino(path: Path) -> dict[str, str]:
    # rt_info of an IR file is plain XML: <rt_info><echoseg.config value="..."/></rt_info>;
    # reading it directly needs neither OpenVINO nor the weights.
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        raise EchosegError(f"{path}: not an OpenVINO model file (.xml)") from None
    if root.tag != "net":
        raise EchosegError(f"{path}: not an OpenVINO model file (.xml)")
    rt_info = root.find("rt_info")
    if rt_info is None:
        return {}
    return {child.tag: child.get("value", "") for child in rt_info}
