"""`echoseg predict`: segment image files, sequences and folders of them.

Writes, under --out, ``<name>_seg.<ext>`` (label map at native size, same format family),
``<name>_overlay.png`` (plus ``<name>_overlay/frame_NNN.png`` for sequences) and one
``predictions.csv`` (a row per image or frame). Exit code 0 when every input was segmented,
1 when some failed (one line each on stderr), 2 when none could be or the arguments are bad.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from echoseg.console import ProgressBar
from echoseg.outdir import prepare_output_dir, removes_unused_output_dirs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `echoseg predict`."""
    from echoseg.inference.runtimes import PRECISION_HELP, PRECISIONS, RUNTIME_HELP, TTA_HELP

    parser.add_argument("model", help="bundled name (e.g. lightweight), run folder, checkpoint "
                        "or exported .onnx/.xml file")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="PNG/JPEG/TIFF images, NIfTI or MetaImage images or 2D+t "
                        "sequences, or folders of them (searched recursively; label maps *_gt.* "
                        "and echoseg's own outputs skipped)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--postprocess", metavar="SPEC",
                        help="post-processing, e.g. 'cca+close:5' or 'none' (default: the "
                        "model's own)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N",
                        help="frames per model call (default 8)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:i] (default auto)")
    parser.add_argument("--runtime", default="auto", help=RUNTIME_HELP)
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help=PRECISION_HELP)
    parser.add_argument("--tta", action="store_true", help=TTA_HELP)
    parser.add_argument("--executor", default="local", choices=("local", "ray"),
                        help="local (this process) or ray: files spread over Ray actors, one "
                        "model load each, writing into --out (needs echoseg[ray]; on a "
                        "cluster --out must be on a filesystem every node sees)")
    parser.add_argument("--address", metavar="ADDR",
                        help="Ray cluster to join (default: start a local Ray instance)")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="Ray actors (default: cluster CPUs / --cpus-per-worker)")
    parser.add_argument("--cpus-per-worker", type=int, default=1, metavar="N",
                        help="CPUs (inference threads) per Ray actor (default 1)")
    parser.add_argument("--files-per-task", type=int, default=8, metavar="N",
                        help="files a Ray actor takes at a time (default 8)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar, notes or summary; errors are still printed")


class _Reporter(ProgressBar):
    """stderr lines (one per problem) and a rich progress bar that they print above."""

    def __init__(self, total: int, quiet: bool) -> None:
        super().__init__(total, "segmenting", quiet)

    def advance(self, _path: Path) -> None:  # type: ignore[override]
        """One input file done (the FilePredictor's ``on_file`` callback)."""
        super().advance()


@removes_unused_output_dirs
def run(args: argparse.Namespace) -> int:
    """Check the arguments, find the inputs, segment them; returns the exit code."""
    from echoseg.errors import ConfigError, DataError
    from echoseg.inference.files import find_inputs
    from echoseg.postprocess import parse_postprocess

    if args.batch_size < 1:
        raise ConfigError("--batch-size must be >= 1")
    parse_postprocess(args.postprocess)  # a bad spec fails before any work
    from echoseg.devices import resolve_device
    from echoseg.inference.runtimes import resolve_runtime

    if args.executor == "ray":
        from echoseg.ray_cluster import import_ray

        import_ray()  # a missing extra fails before any work
    device = resolve_device(args.device)
    resolve_runtime(args.runtime, device)  # an unknown or missing runtime fails before any work
    out_dir = Path(args.out)
    prepare_output_dir(out_dir)  # a bad --out fails before any input is read
    found = find_inputs(args.inputs, exclude=out_dir)
    for problem in found.problems:
        print(f"echoseg: error: {problem}", file=sys.stderr)
    if found.skipped_labels and not args.quiet:
        n = len(found.skipped_labels)
        print(f"echoseg: note: skipped {n} label map{'s' * (n > 1)} by name (*_gt.*, *_seg.*)",
              file=sys.stderr)
    if found.skipped_outputs and not args.quiet:
        n = len(found.skipped_outputs)
        print(f"echoseg: note: skipped {n} earlier output{'s' * (n > 1)} of echoseg "
              "(*_overlay.png, *_curve.png, *_temporal.png, *_overlay/, folders with its "
              "predictions.csv)", file=sys.stderr)
    if not found.files:
        skipped = [f"{len(items)} {what}" for items, what in (
            (found.skipped_labels, "label maps"), (found.skipped_outputs, "outputs of echoseg"))
            if items]
        raise DataError("nothing to segment among the inputs"
                        + (f" ({' and '.join(skipped)} skipped by name)" if skipped else ""))

    reporter = _Reporter(len(found.files), args.quiet)
    on_error = lambda line: reporter.line(f"echoseg: error: {line}")  # noqa: E731
    on_note = (lambda line: None) if args.quiet else (  # noqa: E731
        lambda line: reporter.line(f"echoseg: note: {line}"))
    if args.executor == "ray":
        rows, failures, (name, runtime, where) = _predict_on_ray(args, device, found.files,
                                                                  out_dir, reporter, on_error,
                                                                  on_note)
        from echoseg.evaluation.writers import per_image_csv, write_text
        from echoseg.inference.pipeline import CSV_NAME

        csv_path = write_text(out_dir / CSV_NAME, per_image_csv(rows)) if rows else None
    else:
        from echoseg.inference import load_model
        from echoseg.inference.pipeline import FilePredictor

        segmenter = load_model(args.model, device=str(device), postprocess=args.postprocess,
                               runtime=args.runtime, precision=args.precision, tta=args.tta)
        name, runtime, where = segmenter.name, segmenter.runtime, segmenter.device
        predictor = FilePredictor(segmenter, out_dir, args.batch_size, on_error=on_error,
                                  on_file=reporter.advance, on_note=on_note)
        try:
            with reporter:
                predictor.run(found.files)
        finally:
            csv_path = predictor.write_csv()  # also after an interrupt: rows for what was written
        rows, failures = predictor.rows, predictor.failures
    failed = len(found.problems) + len(failures)
    if csv_path is None:
        print(f"echoseg: error: nothing could be segmented ({failed} input"
              f"{'s' * (failed != 1)} failed)", file=sys.stderr)
        return 2
    if not args.quiet:
        n_files = len(found.files) - len(failures)
        print(f"Segmented {len(rows)} frame{'s' * (len(rows) != 1)} from "
              f"{n_files} file{'s' * (n_files != 1)} with {name} "
              f"({runtime} on {where}{' over Ray' * (args.executor == 'ray')}) into "
              f"{out_dir}/ (table: {csv_path.name})" + (f"; {failed} failed" if failed else ""))
    return 1 if failed else 0


def _predict_on_ray(args, device, files, out_dir, reporter, on_error, on_note):
    """Run the files on Ray actors; returns (rows, failures, (name, runtime, device))."""
    from echoseg.inference.archive import ModelSpec, predict_on_ray

    spec = ModelSpec(args.model, str(device), args.postprocess, args.runtime, args.precision,
                     args.tta)
    with reporter:
        result = predict_on_ray(files, spec, out_dir, batch_size=args.batch_size,
                                address=args.address, workers=args.workers,
                                cpus_per_worker=args.cpus_per_worker,
                                files_per_task=args.files_per_task, on_error=on_error,
                                on_note=on_note, on_file=reporter.advance)
    return result.rows, result.failures, result.described
