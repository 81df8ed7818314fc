"""Static int8 quantization of an OpenVINO model with NNCF (post-training, default preset:
symmetric int8, MinMax ranges on the calibration images, fast bias correction), layers kept
in float chosen by :mod:`echoseg.export.selection`."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path

import numpy as np

from echoseg.errors import ConfigError
from echoseg.export.selection import Selection, choose_float_layers


def require_nncf() -> None:
    """Raise ConfigError (one line, how to install) when NNCF is missing."""
    try:
        import nncf  # noqa: F401
    except ImportError:
        raise ConfigError("--int8 with --format openvino needs NNCF: "
                          "pip install 'echoseg[openvino]'") from None


def quantize_openvino(fp32_xml: str | Path, out_xml: str | Path, calibration: np.ndarray,
                      probe: np.ndarray, probe_labels: np.ndarray) -> tuple[Path, Selection]:
    """Quantize the fp32 OpenVINO IR ``fp32_xml`` into ``out_xml`` (+ .bin).

    ``calibration``: grid images float32 (N, S, S) in [0, 1]; ``probe`` and ``probe_labels``
    (fp32 label maps of ``probe``) choose the layers kept in float. The fp32 model's rt_info
    is kept, with ``echoseg.precision`` = int8 and ``echoseg.quantization`` (the selection as
    JSON) added. Returns (out_xml, the Selection).
    """
    require_nncf()
    import nncf
    import openvino as ov
    import openvino.properties.hint as hints

    from echoseg.export.to_openvino import save_ir

    nncf.set_log_level(logging.ERROR)
    model = ov.Core().read_model(str(fp32_xml))
    convs = [op.get_friendly_name() for op in model.get_ordered_ops()
             if op.get_type_name() == "Convolution"]
    dataset = nncf.Dataset(list(np.asarray(calibration, dtype=np.float32)),
                           lambda image: image[None, None])
    core = ov.Core()

    def build(float_layers: list[str]):
        scope = nncf.IgnoredScope(names=float_layers) if float_layers else None
        # NNCF draws progress bars on stdout whatever its log level: keep stdout for our report
        with contextlib.redirect_stdout(io.StringIO()):
            quantized = nncf.quantize(model, dataset, subset_size=len(calibration),
                                      **({"ignored_scope": scope} if scope else {}))
        compiled = core.compile_model(quantized, "CPU", {hints.inference_precision: ov.Type.f32})
        return quantized, lambda grid: np.asarray(
            compiled(np.ascontiguousarray(grid, dtype=np.float32)[:, None])[0])

    selection = choose_float_layers(build, [convs[0], convs[-1]], probe, probe_labels)
    quantized = selection.artefact
    quantized.set_rt_info("int8", "echoseg.precision")
    if quantized.has_rt_info(["framework", "echoseg.precision"]):
        # OpenVINO's ONNX reader also keeps the ONNX file's metadata there: keep it true
        quantized.set_rt_info("int8", ["framework", "echoseg.precision"])
    quantized.set_rt_info(json.dumps(selection.summary()), "echoseg.quantization")
    return save_ir(quantized, out_xml), selection
