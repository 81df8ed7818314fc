"""One export from start to end: write the model file, quantize it when asked, check it on
real images against PyTorch, and return a report (what ``echoseg export`` prints)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from echoseg.export import checks
from echoseg.export.images import GridImages
from echoseg.export.metadata import build_metadata, weights_digest
from echoseg.export.runners import onnx_runner, openvino_runner, run_batched

FORMATS = ("onnx", "openvino")
SUFFIXES = {"onnx": ".onnx", "openvino": ".xml"}


def export_model(segmenter, fmt: str, out: str | Path, *, verify: GridImages,
                 calibration: GridImages | None = None, opset: int = 17,
                 provenance: dict | None = None) -> dict:
    """Export ``segmenter`` (echoseg.inference.Segmenter: ``.model``, ``.config``, ``.name``)
    as ``fmt`` (onnx | openvino) to ``out``; int8 when ``calibration`` images are given.

    Checks the written model on ``verify`` (see echoseg.export.checks) and returns a JSON-able
    report: out, files, format, precision, opset, weights_sha256, verify (numbers and
    ``passed``), quantization (int8 only), passed and problem (one line, or None). The file
    stays written when the check fails.
    """
    from echoseg.export.to_onnx import export_onnx

    out = Path(out)
    model, config = segmenter.model, segmenter.config
    digest = weights_digest(model)
    metadata = build_metadata(config, name=str(segmenter.name), weights_sha256=digest,
                              provenance={**(provenance or {}), "opset": opset})
    reference = _pytorch_logits(segmenter, verify.images)
    report: dict = {"model": str(segmenter.name), "format": fmt,
                    "precision": "int8" if calibration is not None else "fp32",
                    "out": str(out), "files": [str(out)], "opset": opset,
                    "weights_sha256": digest}
    if fmt == "openvino":
        report["files"].append(str(out.with_suffix(".bin")))
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.",
                                     suffix=".tmp") as tmp:
        needs_staging = calibration is not None or fmt == "openvino"
        fp32_onnx = Path(tmp) / "fp32.onnx" if needs_staging else out
        export_onnx(model, config, fp32_onnx, metadata=metadata, opset=opset)
        if fmt == "openvino":
            from echoseg.export.to_openvino import export_openvino

            fp32_file = export_openvino(fp32_onnx, Path(tmp) / "fp32.xml"
                                        if calibration is not None else out)
            runner = openvino_runner
        else:
            fp32_file, runner = fp32_onnx, onnx_runner
        fp32 = checks.fp32_check(reference, run_batched(runner(fp32_file), verify.images))
        result = {"source": verify.source, "images": len(verify), "fp32": fp32}
        if calibration is not None:
            selection = _quantize(segmenter, fmt, fp32_file, out, calibration, metadata)
            report["quantization"] = {"calibration": calibration.source,
                                      "calibration_images": len(calibration),
                                      **selection.summary()}
            int8_labels = run_batched(runner(out), verify.images).argmax(1)
            result["int8"] = checks.int8_check(reference.argmax(1), int8_labels, verify.labels)
    report["verify"] = result
    problems = [checks.failure_reason(r) for r in (result["fp32"], result.get("int8")) if r]
    problems = [p for p in problems if p]
    report["passed"] = not problems
    report["problem"] = "; ".join(problems) or None
    return report


def _quantize(segmenter, fmt: str, fp32_file: Path, out: Path, calibration: GridImages,
              metadata: dict[str, str]):
    from echoseg.export.selection import probe_indices

    probe = calibration.images[probe_indices(len(calibration))]
    probe_labels = _pytorch_logits(segmenter, probe).argmax(1)
    if fmt == "openvino":
        from echoseg.export.quantize_openvino import quantize_openvino

        return quantize_openvino(fp32_file, out, calibration.images, probe, probe_labels)[1]
    from echoseg.export.quantize_onnx import quantize_onnx

    return quantize_onnx(fp32_file, out, calibration.images, probe, probe_labels, metadata)[1]


def _pytorch_logits(segmenter, grid: np.ndarray, batch_size: int = 4) -> np.ndarray:
    """The PyTorch model's logits (N, 4, S, S) float32 for grid images (N, S, S), on CPU."""
    return np.concatenate([segmenter.logits(grid[i:i + batch_size]).cpu().numpy()
                           for i in range(0, len(grid), batch_size)])
