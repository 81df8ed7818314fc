"""`echoseg export`: write a model as ONNX or OpenVINO IR (fp32 or int8), checked on real images.

Every export checks itself against PyTorch on up to 16 images of ``--verify`` (default: the
bundled samples) and prints the numbers; an export that fails its check prints why and exits 1
(the file is still written).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from echoseg.console import ProgressBar, count, stage_columns, summary

VERIFY_IMAGES = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `echoseg export`."""
    parser.add_argument("model", help="bundled name (e.g. lightweight), run folder or checkpoint")
    parser.add_argument("--format", default="onnx", metavar="FORMAT",
                        help="onnx (default) or openvino (.xml + .bin)")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="the file to write: .onnx, or .xml for openvino")
    parser.add_argument("--int8", action="store_true",
                        help="static int8 quantization calibrated on --calibration images")
    parser.add_argument("--calibration", metavar="DATA", help="dataset folder of calibration "
                        "images (its train split when it has one, else all)")
    parser.add_argument("--calibration-images", type=int, default=100, metavar="N",
                        help="calibrate on at most N images (default 100)")
    parser.add_argument("--verify", metavar="DATA", help="dataset folder to check the export "
                        "on (up to 16 images; default: the bundled samples)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors (and "
                        "the JSON object with --json); a failed check still exits 1")


def _check_options(args: argparse.Namespace) -> None:
    from echoseg.errors import ConfigError
    from echoseg.export.pipeline import FORMATS, SUFFIXES

    if args.format not in FORMATS:
        raise ConfigError(f"--format {args.format}: unknown format (choose onnx or openvino)")
    suffix = SUFFIXES[args.format]
    if not args.out.lower().endswith(suffix):
        raise ConfigError(f"--out {args.out}: a {args.format} model file must end in {suffix}")
    if args.int8 and not args.calibration:
        raise ConfigError("--int8 needs --calibration DATA (a dataset folder of real images)")
    if args.calibration and not args.int8:
        raise ConfigError("--calibration is only used with --int8")
    if args.calibration_images < 1:
        raise ConfigError("--calibration-images must be >= 1")
    if not 13 <= args.opset <= 21:
        raise ConfigError(f"--opset {args.opset}: choose an opset from 13 to 21")
    _require_extras(args.format, args.int8)


def _require_extras(fmt: str, int8: bool) -> None:
    from echoseg.export.to_onnx import require_onnx
    from echoseg.export.to_openvino import require_openvino

    if fmt == "onnx":
        require_onnx()
        return
    require_openvino()
    require_onnx("--format openvino")  # the IR is converted from an ONNX export
    if int8:
        from echoseg.export.quantize_openvino import require_nncf

        require_nncf()


def run(args: argparse.Namespace) -> int:
    """Check the options and extras, load the model and images, export, check, report."""
    from echoseg.export.images import load_grid_images
    from echoseg.export.pipeline import export_model
    from echoseg.export.provenance import model_provenance
    from echoseg.inference import load_model
    from echoseg.inference.files import bundled_samples

    _check_options(args)
    stages = 4 if args.int8 else 3
    with ProgressBar(stages, "loading the model", args.quiet, columns=stage_columns()) as bar:
        segmenter = load_model(args.model, device="cpu")
        bar.advance(label="reading the images to check on")
        verify = load_grid_images(args.verify or bundled_samples(), segmenter.size,
                                  VERIFY_IMAGES)
        calibration = None
        if args.int8:
            bar.advance(label="reading the calibration images")
            calibration = load_grid_images(args.calibration, segmenter.size,
                                           args.calibration_images, split="train")
        bar.advance(label=_pipeline_stages(args, len(verify)))
        report = export_model(segmenter, args.format, args.out, verify=verify,
                              calibration=calibration, opset=args.opset,
                              provenance=model_provenance(args.model))
        bar.advance()
    if segmenter.quality is not None:  # the file alone must flag frames as its weights did
        from echoseg.metrics.quality import save_thresholds

        quality = Path(args.out).with_suffix(".quality.json")
        save_thresholds(segmenter.quality, quality)
        report["files"].append(str(quality))
    if args.json:
        print(json.dumps(report, sort_keys=False))
    elif not args.quiet:
        print(report_text(report))
    if not report["passed"]:
        print(f"echoseg: error: {args.out}: the export failed its check: {report['problem']} "
              "(the file is written)", file=sys.stderr)
        return 1
    if not args.json:
        summary(summary_text(report), args.quiet)
    return 0


def _pipeline_stages(args: argparse.Namespace, images: int) -> str:
    """The bar's label while export_model runs: its stages, in order."""
    stages = ["exporting to ONNX"]
    if args.format == "openvino":
        stages.append("converting to OpenVINO IR")
    if args.int8:
        stages.append("quantizing to int8")
    return ", ".join([*stages, f"checking on {count(images, 'image')}"])


def summary_text(report: dict) -> str:
    """The closing paragraph: what was written, in which format and precision, and the
    check's numbers (fp32 vs PyTorch, int8 vs fp32)."""
    fmt = _format_name(report)
    check = report["verify"]
    fp32 = check["fp32"]
    text = (f"Exported {report['model']} as {fmt} ({report['precision']}) to "
            f"{' + '.join(report['files'])}; the check on {count(check['images'], 'image')} "
            f"of {check['source']} {'passed' if report['passed'] else 'FAILED'}: fp32 vs "
            f"PyTorch max |Δlogit| {fp32['max_abs_logit_diff']:.2e}, label agreement "
            f"{fp32['label_agreement']:.5f}")
    int8 = check.get("int8")
    if int8:
        text += (f"; int8 vs fp32 mean Dice {int8['dice_int8_vs_fp32']:.4f}, label agreement "
                 f"{int8['label_agreement']:.5f}")
    return text + "."


def _format_name(report: dict) -> str:
    """``ONNX opset 17`` or ``OpenVINO IR``: the written format, for people."""
    return {"onnx": f"ONNX opset {report['opset']}", "openvino": "OpenVINO IR"}[report["format"]]


def report_text(report: dict) -> str:
    """A few lines for people: what was written, the quantization choice, the check."""
    fmt = _format_name(report)
    lines = [f"wrote {' + '.join(report['files'])} ({fmt}, {report['precision']}, "
             f"model {report['model']})"]
    quant = report.get("quantization")
    if quant:
        scores = ", ".join(f"{k} {v:.4f}" for k, v in quant["dice_vs_fp32"].items())
        kept = ", ".join(quant["float_layers"]) or "none"
        lines.append(f"int8: calibrated on {quant['calibration_images']} images of "
                     f"{quant['calibration']}; layers kept in float: {kept} (chose "
                     f"{quant['chosen']}; mean Dice vs fp32 on {quant['probe_images']} "
                     f"calibration images: {scores})")
    check = report["verify"]
    fp32 = check["fp32"]
    lines.append(f"check on {check['images']} images of {check['source']}: fp32 export vs "
                 f"PyTorch: max |Δlogit| {fp32['max_abs_logit_diff']:.2e}, label agreement "
                 f"{fp32['label_agreement']:.5f}: {'ok' if fp32['passed'] else 'FAILED'}")
    int8 = check.get("int8")
    if int8:
        truth = ""
        if "dice_fp32_vs_truth" in int8:
            truth = (f"; vs ground truth: fp32 {int8['dice_fp32_vs_truth']:.4f}, "
                     f"int8 {int8['dice_int8_vs_truth']:.4f}")
        lines.append(f"int8 vs fp32: mean Dice {int8['dice_int8_vs_fp32']:.4f}, label "
                     f"agreement {int8['label_agreement']:.5f}{truth}: "
                     f"{'ok' if int8['passed'] else 'FAILED'}")
    return "\n".join(lines)
