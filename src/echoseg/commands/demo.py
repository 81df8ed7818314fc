"""`echoseg demo`: segment the bundled CAMUS samples and write a small report.

Writes, under --out (default ``demo_out/``): ``figures/<id>.png`` (image | ground truth |
prediction), ``report.json`` and ``report.md`` (per-image Dice against the bundled ground truth,
means, anatomical outliers, ms per frame measured here, the model's recorded validation
metrics); prints a short summary. Needs nothing but the installed package.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from echoseg.outdir import prepare_output_dir, removes_unused_output_dirs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `echoseg demo`."""
    from echoseg.inference.runtimes import PRECISION_HELP, PRECISIONS, RUNTIME_HELP

    parser.add_argument("--out", default="demo_out", metavar="DIR",
                        help="output folder (default demo_out/)")
    parser.add_argument("--model", default="lightweight",
                        help="bundled model name, run folder, checkpoint or exported .onnx/.xml "
                        "file (default lightweight)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:i] (default auto)")
    parser.add_argument("--runtime", default="auto", help=RUNTIME_HELP)
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help=PRECISION_HELP)


def _check_model(name: str) -> None:
    """Fail clearly when the requested bundled model is not installed."""
    from echoseg.errors import EchosegError
    from echoseg.inference import loading

    bundled = loading.bundled_models()
    if name in bundled or Path(name).exists():
        return
    raise EchosegError(
        f"the bundled model '{name}' is not available: {loading.WEIGHTS_DIR / (name + '.pt')} "
        "does not exist (the shipped weights are not trained or not installed yet); bundled "
        f"models: {', '.join(bundled) or 'none'}. Give a trained run folder or checkpoint "
        "with --model")


def _timed(predict_batch, times: list[float]):
    """Wrap ``predict_batch`` to record the seconds of each call (one frame per call)."""
    import time

    def timed(images):
        start = time.perf_counter()
        labels = predict_batch(images, batch_size=1)
        times.append((time.perf_counter() - start) / max(len(images), 1))
        return labels

    return timed


def _recorded_validation(model: str):
    """The ``validation`` entry of the weights' JSON file, or None."""
    import json

    from echoseg.inference.loading import resolve_model_path

    meta = resolve_model_path(model).with_suffix(".json")
    if not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text()).get("validation")
    except (OSError, ValueError, AttributeError):
        return None


def segment_samples(model: str, out: Path, device: str = "auto", warmup: int = 2,
                    runtime: str = "auto", precision: str = "fp32") -> dict:
    """Segment and score the bundled samples, draw one figure each; returns the report dict.

    ``runtime`` (auto, torch, onnxruntime, openvino) runs the network in ``precision`` (fp32,
    int8); the report's ``inference.runtime`` says which one did.

    Dice per structure (both empty -> 1) is computed at the samples' native 224x224 grid by
    ``echoseg.evaluation``; ``ms_per_frame`` is the median time of ``predict`` on one image
    (resampling, network, post-processing), after ``warmup`` calls.
    """
    import statistics
    import time

    import torch

    from echoseg.data.dataset import open_dataset
    from echoseg.data.readers import read_image
    from echoseg.devices import resolve_device
    from echoseg.evaluation.evaluate import evaluate_model
    from echoseg.evaluation.figures import case_figure
    from echoseg.inference import load_model
    from echoseg.inference.files import bundled_samples
    from echoseg.labels import STRUCTURES

    started = time.perf_counter()
    samples = open_dataset(bundled_samples()).samples
    torch_device = resolve_device(device)
    segmenter = load_model(model, device=str(torch_device), runtime=runtime, precision=precision)
    warm = [read_image(s.image_path)[0] for s in samples[:warmup]]
    for image in warm:
        segmenter.predict(image)
    times: list[float] = []
    evaluation = evaluate_model(_timed(segmenter.predict_batch, times), samples, batch_size=1,
                                prior_postprocess=segmenter.postprocess_spec or "none",
                                model=segmenter.name, worst=len(samples))
    images = []
    for case in sorted(evaluation.worst, key=lambda c: c.row["id"]):
        row = case.row
        figure = Path("figures") / f"{row['id']}.png"
        scores = ", ".join(f"{s} {row[f'dice_{s}']:.3f}" for s in STRUCTURES)
        case_figure(case.image, case.gt, case.pred, out / figure, f"{row['id']}: Dice {scores}")
        images.append({"id": row["id"], **{f"dice_{s}": row[f"dice_{s}"] for s in STRUCTURES},
                       "anatomical_outlier": row["anatomical_outlier"],
                       "figure": figure.as_posix()})
    summary = evaluation.summary
    return {
        "model": segmenter.name,
        "postprocess": segmenter.postprocess_spec,
        "grid": segmenter.size,
        "samples": str(bundled_samples()),
        "n_images": len(images),
        "n_patients": len({s.patient for s in samples}),
        "mean_dice": dict(summary["dice"]),
        "mean_hausdorff_px": dict(summary["hausdorff"]),
        "anatomical_outliers": [im["id"] for im in images if im["anatomical_outlier"]],
        "inference": {"ms_per_frame": 1000 * statistics.median(times),
                      "batch_size": 1, "warmup": warmup,
                      "frames": len(times), "device": str(segmenter.device),
                      "runtime": segmenter.runtime,
                      "threads": torch.get_num_threads()},
        "recorded_validation": _recorded_validation(model),
        "images": images,
        "seconds": round(time.perf_counter() - started, 2),
    }


def report_markdown(report: dict) -> str:
    """The report as a short markdown page: means, timing, per-image table."""
    from echoseg.labels import STRUCTURES

    timing = report["inference"]
    lines = [
        "# echoseg demo", "",
        f"Model **{report['model']}** (post-processing {report['postprocess']}, "
        f"{report['grid']}x{report['grid']} grid) on the {report['n_images']} bundled CAMUS "
        f"images of {report['n_patients']} patients of the official validation subgroup. These "
        "patients were used to select the checkpoint of the bundled weights (not to train "
        "them), so the scores are slightly optimistic.", "",
        "| | " + " | ".join(STRUCTURES) + " |",
        "|---|" + "---|" * len(STRUCTURES),
        "| mean Dice | " + " | ".join(f"{report['mean_dice'][s]:.3f}" for s in STRUCTURES)
        + " |",
    ]
    recorded = report.get("recorded_validation") or {}
    if isinstance(recorded.get("dice"), dict):
        lines.append("| recorded validation Dice | " + " | ".join(
            _fmt(recorded["dice"].get(s)) for s in STRUCTURES) + " |")
    outliers = report["anatomical_outliers"]
    lines += [
        "", f"Anatomical outliers: {len(outliers)} / {report['n_images']}"
        + (f" ({', '.join(outliers)})" if outliers else ""), "",
        f"Inference on this machine ({timing.get('runtime', 'torch')} on {timing['device']}, "
        f"{timing['threads']} threads, batch 1, "
        f"median over {timing['frames']} frames after {timing['warmup']} warm-up calls): "
        f"{timing['ms_per_frame']:.1f} ms/frame end to end (resampling, network, "
        "post-processing; `echoseg bench` times the network alone).", "",
        "| image | " + " | ".join(f"Dice {s}" for s in STRUCTURES) + " | outlier | figure |",
        "|---|" + "---|" * (len(STRUCTURES) + 2),
    ]
    for im in report["images"]:
        lines.append(f"| {im['id']} | " + " | ".join(f"{im[f'dice_{s}']:.3f}" for s in STRUCTURES)
                     + f" | {'yes' if im['anatomical_outlier'] else 'no'} "
                     f"| [{im['figure']}]({im['figure']}) |")
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def _print_summary(report: dict, out: Path) -> None:
    means = report["mean_dice"]
    timing = report["inference"]
    outliers = report["anatomical_outliers"]
    shown = ", ".join(outliers[:4]) + (", ..." if len(outliers) > 4 else "")
    lines = [
        f"echoseg demo: {report['model']} on {report['n_images']} bundled CAMUS validation "
        f"images ({report['n_patients']} patients), device {timing['device']}, runtime "
        f"{timing.get('runtime', 'torch')}",
        "Mean Dice: " + ", ".join(f"{s} {v:.3f}" for s, v in means.items()),
        f"Anatomical outliers: {len(outliers)} / {report['n_images']}"
        + (f" ({shown})" if outliers else ""),
        f"Inference: {timing['ms_per_frame']:.1f} ms/frame (median, batch 1, end to end, "
        f"{report['grid']}x{report['grid']} grid, {timing['threads']} threads)",
    ]
    recorded = report.get("recorded_validation") or {}
    if isinstance(recorded.get("dice"), dict):
        lines.append("Recorded validation Dice of these weights: " + ", ".join(
            f"{s} {v:.3f}" for s, v in recorded["dice"].items() if isinstance(v, (int, float))))
    lines.append(f"Wrote {out}/: report.md, report.json and {report['n_images']} figures "
                 "in figures/")
    print("\n".join(lines))


@removes_unused_output_dirs
def run(args: argparse.Namespace) -> int:
    """Check the model is there, segment and score the samples, write the report; returns 0."""
    from echoseg.devices import resolve_device
    from echoseg.evaluation.writers import summary_json, write_text
    from echoseg.inference.runtimes import resolve_runtime

    _check_model(args.model)
    resolve_runtime(args.runtime, resolve_device(args.device))  # fails before any work
    out = Path(args.out)
    prepare_output_dir(out)  # a bad --out fails before the work, not after it
    report = segment_samples(args.model, out, device=args.device, runtime=args.runtime,
                             precision=args.precision)
    write_text(out / "report.json", summary_json(report))
    write_text(out / "report.md", report_markdown(report))
    _print_summary(report, out)
    return 0
