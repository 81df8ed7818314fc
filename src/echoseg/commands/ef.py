"""`echoseg ef DATA [--pred DIR | --model MODEL]`: LV volumes and ejection fraction per patient
from the expert masks, from predictions (a folder, or a model run on the images) and from the
reference the dataset records (CAMUS Info cfg, EchoNet FileList.csv), and their agreement.

Exit code 0 when every patient got an EF from every mask source, 1 when some did not (one line
per problem on stderr, the other patients computed and written), 2 on bad arguments or no data.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from echoseg.console import ProgressBar, count, number, summary
from echoseg.outdir import prepare_output_dir, removes_unused_output_dirs

SWAPPED_PREFIX = "EF < 0"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `echoseg ef`."""
    from echoseg.inference.runtimes import PRECISION_HELP, PRECISIONS, RUNTIME_HELP, TTA_HELP

    parser.add_argument("data", metavar="DATA", help="dataset folder (CAMUS release, "
                        "image/label folder such as camus224, EchoNet-Dynamic)")
    parser.add_argument("--pred", metavar="DIR", help="also measure the predicted label maps "
                        "in DIR (<id>.png, <id>_seg.* as echoseg predict writes them)")
    parser.add_argument("--model", metavar="MODEL", help="also measure the predictions of "
                        "MODEL (bundled name, run folder, checkpoint, .onnx/.xml), run here")
    parser.add_argument("--split", metavar="NAME", help="only the patients of this split "
                        "(train, val, test; default: all patients)")
    parser.add_argument("--out", metavar="DIR", help="write ef.csv, agreement.csv, report.md, "
                        "Bland-Altman and scatter plots, provenance.json here")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or closing "
                        "summary on stderr (the table or JSON still prints); problems still do")
    parser.add_argument("--postprocess", metavar="SPEC",
                        help="with --model: post-processing (default: the model's own)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N",
                        help="with --model: images per model call (default 8)")
    parser.add_argument("--device", default="auto", help="with --model: auto | cpu | cuda[:i]")
    parser.add_argument("--runtime", default="auto", help=f"with --model: {RUNTIME_HELP}")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help=f"with --model: {PRECISION_HELP}")
    parser.add_argument("--tta", action="store_true", help=f"with --model: {TTA_HELP}")


def _check(args: argparse.Namespace) -> None:
    """Raise ConfigError (one line) for options that do not go together."""
    from echoseg.errors import ConfigError
    from echoseg.postprocess import parse_postprocess

    if args.pred and args.model:
        raise ConfigError("give --pred DIR or --model MODEL, not both")
    if args.batch_size < 1:
        raise ConfigError("--batch-size must be >= 1")
    if not args.model and (args.postprocess or args.runtime != "auto" or args.tta):
        raise ConfigError("--postprocess, --runtime and --tta need --model")
    parse_postprocess(args.postprocess)
    if args.model:
        from echoseg.devices import resolve_device
        from echoseg.inference.runtimes import resolve_runtime

        resolve_runtime(args.runtime, resolve_device(args.device))


def _groups(args: argparse.Namespace):
    """The dataset and its patients' samples (restricted to --split); DataError when none."""
    from echoseg.clinical.sources import by_patient
    from echoseg.data.dataset import open_dataset
    from echoseg.data.splits import resolve_splits
    from echoseg.errors import DataError

    dataset = open_dataset(args.data, strict=False)
    for problem in dataset.problems:
        print(f"echoseg: warning: {problem}", file=sys.stderr)
    samples = dataset.samples
    if args.split:
        splits = resolve_splits(dataset)
        if args.split not in splits:
            raise DataError(f"{args.data}: no split named '{args.split}' (available: "
                            f"{', '.join(splits) or 'none'})")
        samples = dataset.select(splits[args.split])
    groups = by_patient(samples)
    if not groups:
        where = f"split '{args.split}' of {args.data}" if args.split else str(args.data)
        raise DataError(f"{where}: no ED/ES views to measure (expected images named like "
                        "patient0001_4CH_ED with their label maps)")
    return dataset, groups


def _model(args: argparse.Namespace):
    from echoseg.devices import resolve_device
    from echoseg.inference import load_model

    return load_model(args.model, device=str(resolve_device(args.device)),
                      postprocess=args.postprocess, runtime=args.runtime,
                      precision=args.precision, tta=args.tta)


def _finish(m, drop: tuple[str, ...] = ()):
    """A measurement ready to report: EF < 0 left out with the volumes (their values in the
    problem: ED and ES are swapped, so neither volume is what it says), an
    'EF not computed' line when there is no EF, and the problems ending in ``drop`` removed."""
    from echoseg.clinical.volumes import SWAPPED

    m.problems = [p for p in m.problems if not p.endswith(drop)] if drop else m.problems
    if m.ef is not None and m.ef < 0:
        m.problems = [p for p in m.problems if p != SWAPPED]
        m.problems.append(f"{SWAPPED_PREFIX} ({m.ef:.1f}%; EDV {m.edv:.4g} < ESV {m.esv:.4g} "
                          f"{m.volume_unit}): ED and ES swapped? EF and volumes left out")
        m.ef = m.edv = m.esv = None
    elif m.ef is None and not any("EF not computed" in p for p in m.problems):
        seen = [p for p in ("ED", "ES") if any(k[1] == p for k in m.views)]
        lacking = [p for p in ("ED", "ES") if p not in seen]
        why = f"no {' or '.join(lacking)} measured" if lacking else "no view at both phases"
        m.problems.append(f"EF not computed ({why})")
    return m


def measure(dataset, groups, *, pred_dir=None, predict_batch=None, batch_size: int = 8,
            on_patient: Callable[[str], None] | None = None, views_batch=None) -> dict:
    """source -> patient -> PatientMeasurement for the expert masks, the predictions (when a
    source is given) and the dataset's reference values; ``on_patient(patient)`` is called
    after each patient is measured. ``views_batch`` (a TTA Segmenter's
    ``predict_batch_with_views``), instead of ``predict_batch``, also gives each predicted
    EF its spread over the views (``ef_tta_sd``)."""
    from echoseg.clinical import patient_measurements
    from echoseg.clinical.geometry import NO_LA
    from echoseg.clinical.sources import gather, reference_measurements

    lv_only = "LA" not in dataset.structures  # EchoNet: no LA drawn, the chord base is normal
    views_of: dict[int, tuple] = {}  # id(label map) -> (it, the label map of each TTA view)
    if views_batch is not None:
        def predict_batch(images):
            labels, views = views_batch(images)
            views_of.update({id(lbl): (lbl, v) for lbl, v in zip(labels, views, strict=True)})
            return labels

    results: dict[str, dict] = {"expert": {}}
    if pred_dir is not None or predict_batch is not None:
        results["prediction"] = {}
    for maps in gather(groups, pred_dir=pred_dir, predict_batch=predict_batch,
                       batch_size=batch_size):
        for source, views, problems in (("expert", maps.expert, maps.expert_problems),
                                        ("prediction", maps.prediction,
                                         maps.prediction_problems)):
            if views is None:
                continue
            m = patient_measurements(views, patient=maps.patient)
            m.problems = problems + m.problems
            drop = (NO_LA,) if lv_only and source == "expert" else ()
            results[source][maps.patient] = _finish(m, drop)
            if source == "prediction" and views_batch is not None and m.ef is not None:
                m.ef_tta_sd = view_spread(views, views_of)
        views_of.clear()
        if on_patient is not None:
            on_patient(maps.patient)
    reference = reference_measurements(dataset, list(groups))
    if reference:
        results["reference"] = reference
    return results


def view_spread(views: dict, views_of: dict) -> float | None:
    """SD (points, ddof 1) of the EF of each TTA view alone, from a patient's predicted
    ``views`` ((view, phase) -> (label map, spacing)) and ``views_of`` (id of a label map ->
    (it, its per-view label maps)); None when a map has no views or fewer than two views
    give an EF."""
    import numpy as np

    from echoseg.clinical import patient_measurements

    if not views or any(id(lbl) not in views_of for lbl, _ in views.values()):
        return None
    n_views = len(next(iter(views_of.values()))[1])
    efs = [patient_measurements({key: (views_of[id(lbl)][1][k], spacing)
                                 for key, (lbl, spacing) in views.items()}).ef
           for k in range(n_views)]
    efs = [ef for ef in efs if ef is not None and ef >= 0]
    return float(np.std(efs, ddof=1)) if len(efs) >= 2 else None


def _command(args: argparse.Namespace) -> str:
    parts = ["echoseg", "ef", str(args.data)]
    for option in ("pred", "model", "split", "out", "postprocess"):
        if getattr(args, option):
            parts += [f"--{option}", str(getattr(args, option))]
    if args.model:
        parts += ["--runtime", args.runtime, "--device", args.device]
    return " ".join(parts + (["--json"] if args.json else []))


def _report_problems(results: dict) -> int:
    """Print each problem on stderr (an error where the expert masks or the predictions gave
    no EF, else a warning) and a count of the patients without EF; returns that count."""
    failed: dict[str, int] = {}
    for source in ("expert", "prediction", "reference"):
        for patient, m in results.get(source, {}).items():
            level = "error" if m.ef is None and source != "reference" else "warning"
            if level == "error":
                failed[source] = failed.get(source, 0) + 1
            for problem in m.problems:
                print(f"echoseg: {level}: {patient} ({source}): {problem}", file=sys.stderr)
    if failed:
        counts = ", ".join(f"{n} of {len(results[s])} patients ({s})"
                           for s, n in failed.items())
        print(f"echoseg: EF not computed for {counts}", file=sys.stderr)
    return sum(failed.values())


@removes_unused_output_dirs
def run(args: argparse.Namespace) -> int:
    """Check the options, measure every patient, print and write; returns the exit code."""
    from echoseg import provenance
    from echoseg.clinical.agreement import compare_sources
    from echoseg.clinical.report import console_text, write_report
    from echoseg.evaluation.writers import json_text

    _check(args)
    if args.out:
        prepare_output_dir(args.out)
    start, started = time.perf_counter(), provenance.now()
    dataset, groups = _groups(args)
    model = _model(args) if args.model else None
    prov = {**provenance.collect(str(getattr(model, "device", "cpu")), 0),
            "machine": provenance.machine_description()}
    label = "segmenting and measuring" if model is not None else "measuring"
    with ProgressBar(len(groups), label, args.quiet) as bar:
        results = measure(dataset, groups, pred_dir=args.pred, batch_size=args.batch_size,
                          predict_batch=None if model is None else model.predict_batch,
                          views_batch=model.predict_batch_with_views if args.tta else None,
                          on_patient=lambda _patient: bar.advance())
    agreements = compare_sources(results)
    failed = _report_problems(results)
    seconds = time.perf_counter() - start
    prov.update({"start_time": started, "end_time": provenance.now(), "seconds": round(seconds, 2),
                 "command": _command(args), "data": str(dataset.root),
                 "layout": dataset.layout, "split": args.split, "patients": len(groups),
                 "model": getattr(model, "name", None), "runtime": getattr(model, "runtime", None),
                 "postprocess": getattr(model, "postprocess_spec", None), "pred": args.pred})
    context = {"data": str(dataset.root), "split": args.split, "patients": len(groups),
               "sources": _sources_text(results, args, model), "command": _command(args),
               "seconds": seconds, "notes": _notes(dataset)}
    if args.out:
        write_report(args.out, results, agreements, context, prov)
    if args.json:
        print(json_text({"patients": _json_patients(results),
                         "agreement": [a.to_dict() for a in agreements if a.quantity == "ef"]}))
    else:
        print(console_text(results, agreements, context), end="")
        summary(summary_text(results, agreements, context, args.out), args.quiet)
    return 1 if failed else 0


def summary_text(results: dict, agreements: list, context: dict, out: str | None) -> str:
    """The closing paragraph: patients and sources, how many got an EF from each, the EF
    agreement (r, MAE) of each compared pair, and where the report went."""
    split = f" (split {context['split']})" if context["split"] else ""
    computed = [f"{sum(m.ef is not None for m in by.values())} of {len(by)} ({source})"
                for source, by in results.items() if source != "reference"]
    sentences = [f"Measured LV volumes and EF of {count(context['patients'], 'patient')} of "
                 f"{context['data']}{split} from {context['sources']}",
                 f"EF computed for {', '.join(computed)}"]
    pairs = [f"{a.a} vs {a.b} r {number(a.r)}, MAE {number(a.mae, 1)} points (n = {a.n})"
             for a in agreements if a.quantity == "ef" and a.n > 0]
    if pairs:
        sentences.append(f"EF agreement: {'; '.join(pairs)}")
    sentences.append(f"Report written to {out}" if out else "Nothing written (no --out)")
    return ". ".join(sentences) + "."


def _notes(dataset) -> list[str]:
    if "LA" in dataset.structures:
        return []
    return ["The expert masks outline the LV only (no LA): each base is the flattest basal LV "
            "chord, as expected, so that note is not listed among the problems."]


def _sources_text(results: dict, args: argparse.Namespace, model) -> str:
    names = ["expert masks"]
    if model is not None:
        names.append(f"prediction (model {model.name}, runtime {model.runtime})")
    elif args.pred:
        names.append(f"prediction (files in {args.pred})")
    if "reference" in results:
        names.append(f"reference ({next(iter(results['reference'].values())).method})")
    return ", ".join(names)


def _json_patients(results: dict) -> list[dict]:
    from echoseg.clinical.agreement import SOURCES

    patients = sorted({p for by in results.values() for p in by})
    return [{"patient": p, "source": s, "edv": m.edv, "esv": m.esv, "ef": m.ef,
             "volume_unit": m.volume_unit, "problems": list(m.problems)}
            for p in patients for s in SOURCES
            if (m := results.get(s, {}).get(p)) is not None]
