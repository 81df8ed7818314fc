"""`echoseg evaluate`: score a model, or a folder of predicted label maps, on a dataset split,
on the structures the dataset labels (EchoNet-Dynamic: LV only)."""

from __future__ import annotations

import argparse
from pathlib import Path

from echoseg.console import ProgressBar, count, numbers, summary
from echoseg.outdir import prepare_output_dir, removes_unused_output_dirs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `echoseg evaluate`."""
    from echoseg.inference.runtimes import PRECISION_HELP, PRECISIONS, RUNTIME_HELP, TTA_HELP

    parser.add_argument("model", nargs="?", help="bundled name, run folder, checkpoint or "
                        "exported .onnx/.xml file (omit with --pred)")
    parser.add_argument("--data", required=True, help="dataset folder holding the ground truth")
    parser.add_argument("--split", help="split to score (default: test)")
    parser.add_argument("--pred", metavar="DIR", help="score predicted label maps from DIR "
                        "(<id>.png, <id>.nii.gz, <id>_pred.* or <id>_seg.* as echoseg predict "
                        "writes them, searched recursively) "
                        "instead of running a model")
    parser.add_argument("--postprocess", metavar="SPEC", help="post-processing, e.g. "
                        "'cca+close:5' or 'none' (default: the model's own; 'none' with --pred)")
    parser.add_argument("--grid", default="native", help="where to compute metrics: native "
                        "(ground-truth size, HD in mm when spacing is known), model (the "
                        "model's grid, 256 with --pred) or a size in pixels")
    parser.add_argument("--out", metavar="DIR", help="write per_image.csv, summary.json, "
                        "summary.md (and worst/) here")
    parser.add_argument("--worst", type=int, default=0, metavar="N",
                        help="draw the N images with the lowest mean Dice (over the labelled "
                        "structures) into OUT/worst/")
    parser.add_argument("--batch-size", type=int, default=8, help="images per model call")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    parser.add_argument("--runtime", default="auto", help=RUNTIME_HELP)
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help=PRECISION_HELP)
    parser.add_argument("--tta", action="store_true", help=f"with MODEL: {TTA_HELP}")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON only")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or closing "
                        "summary on stderr (the table or JSON still prints); errors still do")


def _samples(args: argparse.Namespace) -> tuple[list, tuple[str, ...]]:
    """The samples of the chosen split and the structures the dataset labels."""
    from echoseg.data.dataset import open_dataset
    from echoseg.data.splits import resolve_splits
    from echoseg.errors import DataError

    dataset = open_dataset(args.data)
    splits = resolve_splits(dataset)
    name = args.split or "test"
    if name not in splits:
        raise DataError(f"{args.data}: no split named '{name}' (available: "
                        f"{', '.join(splits) or 'none'}); choose one with --split")
    samples = dataset.select(splits[name])
    if not samples:
        raise DataError(f"{args.data}: split '{name}' has no images")
    return samples, dataset.structures


def _check_runtime(args: argparse.Namespace) -> None:
    """Raise ConfigError (one line) for an unknown --runtime or one that is not installed."""
    from echoseg.devices import resolve_device
    from echoseg.inference.runtimes import resolve_runtime

    resolve_runtime(args.runtime, resolve_device(args.device))


def _load_model(args: argparse.Namespace):
    from echoseg.errors import EchosegError

    try:
        from echoseg.inference import load_model
    except ImportError as exc:
        raise EchosegError(f"model inference is not available in this version ({exc}); "
                           "score prediction files with --pred DIR") from None
    from echoseg.devices import resolve_device

    device = str(resolve_device(args.device))
    return load_model(args.model, device=device, postprocess=args.postprocess,
                      runtime=args.runtime, precision=args.precision, tta=args.tta)


@removes_unused_output_dirs
def run(args: argparse.Namespace) -> int:
    """Validate every option, score, then write files (nothing is written on error)."""
    from echoseg.errors import ConfigError
    from echoseg.evaluation.evaluate import evaluate_folder, evaluate_model
    from echoseg.evaluation.figures import write_worst_cases
    from echoseg.evaluation.grid import MODEL_GRID, parse_grid
    from echoseg.evaluation.summary import summary_markdown
    from echoseg.evaluation.writers import json_text, write_evaluation
    from echoseg.postprocess import parse_postprocess

    if (args.model is None) == (args.pred is None):
        raise ConfigError("give either MODEL or --pred DIR (not both)")
    if args.worst < 0 or args.batch_size < 1:
        raise ConfigError("--worst must be >= 0 and --batch-size >= 1")
    if args.tta and not args.model:
        raise ConfigError("--tta needs MODEL (prediction files are scored as they are)")
    if args.worst and not args.out:
        raise ConfigError("--worst needs --out DIR to write the figures into")
    parse_postprocess(args.postprocess)  # fail on a bad spec before reading any data
    if args.model:
        _check_runtime(args)
    grid = parse_grid(args.grid)
    if args.out:
        prepare_output_dir(args.out)  # a bad --out fails before the work, not after it
    samples, structures = _samples(args)
    model = None if args.pred else _load_model(args)
    with ProgressBar(len(samples), "scoring", args.quiet) as bar:
        if args.pred:
            evaluation = evaluate_folder(
                args.pred, samples, postprocess=args.postprocess or "none",
                grid=MODEL_GRID if grid == "model" else grid, worst=args.worst,
                structures=structures, track=bar.track)
        else:
            if grid == "model":
                grid = int(getattr(model, "size", MODEL_GRID))
            evaluation = evaluate_model(
                _counted(model.predict_batch, bar), samples, batch_size=args.batch_size,
                grid=grid, prior_postprocess=getattr(model, "postprocess_spec", None)
                or args.postprocess or "none", model=str(getattr(model, "name", args.model)),
                worst=args.worst, structures=structures)
            evaluation.summary["runtime"] = getattr(model, "runtime", None)
    markdown = summary_markdown(evaluation.summary)
    if args.out:
        write_evaluation(args.out, evaluation.rows, evaluation.summary, markdown)
        if evaluation.worst:
            write_worst_cases(evaluation.worst, Path(args.out) / "worst")
            if args.model:
                _write_decoder_figures(model, evaluation.worst, Path(args.out) / "worst")
    if args.json:
        print(json_text(evaluation.summary))
    else:
        print(markdown, end="")
        summary(summary_text(evaluation.summary, args), args.quiet)
    return 0


def _counted(predict_batch, bar: ProgressBar):
    """``predict_batch`` advancing ``bar`` by the images of each call."""
    def predict(images):
        labels = predict_batch(images)
        bar.advance(len(images))
        return labels

    return predict


def summary_text(result: dict, args: argparse.Namespace) -> str:
    """The closing paragraph: what was scored with what, mean Dice and Hausdorff per
    structure, anatomical outliers, where the tables went. ``result`` is summary.json's dict."""
    split = args.split or "test"
    if args.pred:
        what = f"{count(result['n_images'], 'prediction')} from {args.pred}"
    else:
        runtime = f" ({result['runtime']})" if result.get("runtime") else ""
        what = f"{count(result['n_images'], 'image')} with {result['model']}{runtime}"
    unit = result.get("hausdorff_unit") or "px"
    parts = [f"Scored {what} on split {split} of {args.data}: mean Dice "
             f"{numbers(result['dice'])}; mean Hausdorff {numbers(result['hausdorff'], 1)} "
             f"{unit}"]
    if result.get("anatomical_outliers") is not None:
        parts.append(f"{count(result['anatomical_outliers'], 'anatomical outlier')}")
    where = f"tables written to {args.out}" if args.out else "nothing written (no --out)"
    return "; ".join(parts) + f"; {where}."


def _write_decoder_figures(model, cases, out_dir: Path) -> None:
    """For a deep-supervision model, each worst case's decoder outputs (the paper's Fig. 2)."""
    from echoseg.evaluation.figures import deep_supervision_figure

    if getattr(model, "model", None) is None:  # an exported model has the final output only
        return
    for rank, case in enumerate(cases, start=1):
        logits = model.decoder_outputs(case.image)
        if len(logits) < 2:
            return
        titles = ["final"] + [f"auxiliary {i}" for i in range(1, len(logits))]
        deep_supervision_figure(logits, out_dir / f"{rank:02d}_{case.row['id']}_decoder.png",
                                image=case.image, titles=titles)

