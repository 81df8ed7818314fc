"""`echoseg bench`: training images/s (`--train`) or inference ms/frame of models."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `echoseg bench`."""
    parser.add_argument("models", nargs="*", default=[],
                        help="models (bundled name, run, .pt) or configs/presets (random weights)")
    parser.add_argument("--train", action="store_true", help="measure training images/s")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config override, e.g. train.precision=fp32")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (default 5)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="one inference batch size (same as --batch-sizes N)")
    parser.add_argument("--batch-sizes", default=None, metavar="N,N,...",
                        help="inference batch sizes (default 1,8,32)")
    parser.add_argument("--runtime", default="auto",
                        help="all | auto | torch | onnxruntime | openvino (default auto; all: "
                             "every installed one, side by side)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "int8", "all"),
                        help="fp32 | int8 | all (int8: ONNX Runtime and OpenVINO only, "
                             "calibrated on the bundled samples, or random images for random "
                             "weights)")
    parser.add_argument("--repeats", type=int, default=20,
                        help="timed inference calls per result (default 20)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    """Measure every model given and print a table (or JSON); returns 0."""
    check_count("--steps", args.steps)
    if args.batch_size is not None:
        check_count("--batch-size", args.batch_size)
    from echoseg.devices import resolve_device

    device = resolve_device(args.device)
    if not args.train:
        return _run_inference(args, device)
    from echoseg.bench.timing import training_throughput
    from echoseg.config import load_config

    results = {}
    for name in args.models or ["lightweight"]:
        config = load_config(name, args.overrides)
        results[name] = training_throughput(config, device, steps=args.steps)
    if args.json:
        from echoseg.evaluation.writers import json_text

        print(json_text(results))
        return 0
    for name, r in results.items():
        peak = r["peak_memory_gb"]
        print(f"{name}: {r['images_per_s']:.1f} training images/s ({r['size']}², batch "
              f"{r['batch_size']}, {r['precision']}, channels_last={r['channels_last']}, "
              f"{r['device']}, {r['threads']} threads"
              + (f", peak memory {peak:.1f} GB)" if peak is not None else ")"))
    return 0


def _run_inference(args: argparse.Namespace, device) -> int:
    """Inference ms/frame of every model x runtime x precision x batch size; table or JSON."""
    from echoseg.bench import inference as bench
    from echoseg.errors import ConfigError

    check_count("--repeats", args.repeats)
    if args.batch_sizes is not None:
        batch_sizes = bench.parse_batch_sizes(args.batch_sizes)
    elif args.batch_size is not None:
        batch_sizes = [args.batch_size]
    else:
        batch_sizes = [1, 8, 32]
    runtimes = bench.runtimes_for(args.runtime, device, warn=bench.stderr_line)
    precisions = ["fp32", "int8"] if args.precision == "all" else [args.precision]
    if precisions == ["int8"] and not set(runtimes) - {"torch"}:
        raise ConfigError("--precision int8 runs on onnxruntime or openvino only; give "
                          "--runtime onnxruntime, openvino or all")
    subjects = [_subject(name, args.overrides) for name in args.models or ["lightweight"]]
    rows = []
    for subject in subjects:
        rows += bench.bench_subject(subject, runtimes, precisions, batch_sizes, device,
                                    args.repeats, warn=bench.stderr_line)
    if args.json:
        from echoseg.evaluation.writers import json_text

        print(json_text({"machine": bench.machine(), "results": rows}))
        return 0
    m = bench.machine()
    print(f"{m['cpu']} ({', '.join(m['flags']) or 'flags unknown'}), {m['threads']} threads"
          + (f", GPU {m['gpu']}" if m["gpu"] else ""))
    for line in bench.table_lines(rows) + bench.ratio_lines(rows):
        print(line)
    return 0


def _subject(name: str, overrides: list[str]):
    """The echoseg.bench.inference.Subject of ``name``: an exported .onnx/.xml file, a trained
    model, or a config/preset with random weights (seeded, so its cached export is reused)."""
    from pathlib import Path

    from echoseg.bench.inference import Subject

    path = Path(name)
    if path.suffix.lower() in (".onnx", ".xml") and path.is_file():
        from echoseg.export.metadata import config_from_metadata, read_metadata

        config = config_from_metadata(read_metadata(path), str(path))
        return Subject(name, config, path=path)
    model, config, random_weights = _model_or_preset(name, overrides)
    return Subject(name, config, model=model, random_weights=random_weights)


def check_count(option: str, value: int, high: int = 100_000) -> int:
    """``value`` if 1 <= value <= ``high``; else ConfigError ``<option> N: must be ...``."""
    from echoseg.errors import ConfigError

    if not 1 <= value <= high:
        raise ConfigError(f"{option} {value}: must be between 1 and {high}")
    return value


def _model_or_preset(name: str, overrides: list[str]):
    """A trained model (bundled name, run folder, checkpoint) or else a config/preset name built
    with random weights (speed does not depend on the weights). Returns (model, config,
    random_weights); the error of whichever ``name`` names, e.g. a checkpoint that does not load."""
    from pathlib import Path

    from echoseg.config import load_config, resolve_config_path
    from echoseg.errors import ConfigError
    from echoseg.inference import load_model
    from echoseg.inference.loading import bundled_models, resolve_model_path
    from echoseg.models import build_model

    path = Path(name)
    is_config = path.suffix in (".yaml", ".yml")
    if not is_config and (name in bundled_models() or path.is_dir() or path.is_file()):
        seg = load_model(name)
        return seg.model, seg.config, False
    try:
        resolve_config_path(name)
    except ConfigError:
        if not is_config:
            resolve_model_path(name)  # raises: no such model, listing the bundled ones
        raise
    import torch

    config = load_config(name, overrides)
    torch.manual_seed(0)
    return build_model(config.model), config, True
