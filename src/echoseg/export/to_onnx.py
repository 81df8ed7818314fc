"""Export a U-Net to ONNX: final logits only, BatchNorm folded, metadata inside.

Uses the legacy TorchScript-based exporter (``dynamo=False``) with constant folding, which
folds eval-mode BatchNorm into the preceding convolutions; the export is refused when a
BatchNormalization node remains.
"""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path

import torch

from echoseg.atomic import atomic_write_bytes
from echoseg.config import Config
from echoseg.errors import ConfigError, EchosegError

INPUT_NAME = "image"
OUTPUT_NAME = "logits"


def require_onnx(what: str = "--format onnx") -> None:
    """Raise ConfigError ``<what> needs ONNX and ONNX Runtime: pip install ...`` (one line)
    when onnx or onnxruntime is missing."""
    for module in ("onnx", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            raise ConfigError(f"{what} needs ONNX and ONNX Runtime: "
                              "pip install 'echoseg[export]'") from None


def export_onnx(model: torch.nn.Module, config: Config, path: str | Path, *,
                metadata: dict[str, str] | None = None, opset: int = 17) -> Path:
    """Write ``model`` as an ONNX file at ``path``; returns the path.

    The graph has one input ``image`` float32 (N, 1, S, S) in [0, 1] and one output ``logits``
    float32 (N, 4, S, S), S = ``config.data.size``, batch axis dynamic. The model is exported
    from a CPU copy in eval mode (the caller's model is left as it was); ``metadata``
    (string keys and values) goes into ``metadata_props``. Written atomically. Raises
    EchosegError when the export fails or leaves a BatchNormalization node.
    """
    require_onnx()
    import onnx

    size = config.data.size
    net = copy.deepcopy(model).cpu().float().eval()
    example = torch.zeros(1, config.model.in_channels, size, size)
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and deprecation notices of the exporter
            torch.onnx.export(
                net, (example,), buffer, dynamo=False, do_constant_folding=True,
                opset_version=opset, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            )
    except Exception as exc:
        from echoseg.errors import plain_reason

        raise EchosegError(f"{path}: ONNX export failed ({plain_reason(exc)})") from exc
    proto = onnx.load_from_string(buffer.getvalue())
    left = [n.name for n in proto.graph.node if n.op_type == "BatchNormalization"]
    if left:
        raise EchosegError(f"{path}: ONNX export left {len(left)} BatchNormalization nodes "
                           "unfolded")
    set_metadata(proto, metadata or {})
    onnx.checker.check_model(proto)
    return atomic_write_bytes(path, proto.SerializeToString(), verify=_loads)


def set_metadata(proto, metadata: dict[str, str]) -> None:
    """Replace the entries of ``metadata`` in an ONNX ModelProto's ``metadata_props``."""
    import onnx

    kept = [p for p in proto.metadata_props if p.key not in metadata]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in metadata.items():
        proto.metadata_props.append(onnx.StringStringEntryProto(key=key, value=str(value)))


def _loads(path: Path) -> None:
    import onnx

    onnx.load(str(path))
