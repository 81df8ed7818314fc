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
    parser.add_argument("--batch-size", type=int, default=1, help="inference batch (default 1)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    """Measure every model given and print a table (or JSON); returns 0."""
    for option, value in (("--steps", args.steps), ("--batch-size", args.batch_size)):
        check_count(option, value)
    from echoseg.bench.timing import inference_latency, training_throughput
    from echoseg.config import load_config
    from echoseg.devices import resolve_device
    from echoseg.training.loop import autocast_dtype

    device = resolve_device(args.device)
    results = {}
    if args.train:
        for name in args.models or ["lightweight"]:
            config = load_config(name, args.overrides)
            results[name] = training_throughput(config, device, steps=args.steps)
    else:
        for name in args.models or ["lightweight"]:
            model, config = _model_or_preset(name, args.overrides)
            amp = autocast_dtype(config.train.precision, device)
            size = config.data.size
            results[name] = {
                "fp32": inference_latency(model, size, device, args.batch_size),
                **({"bf16": inference_latency(model, size, device, args.batch_size,
                                              amp=amp)} if amp else {}),
            }
    if args.json:
        from echoseg.evaluation.writers import json_text

        print(json_text(results))
        return 0
    for name, r in results.items():
        if args.train:
            peak = r["peak_memory_gb"]
            print(f"{name}: {r['images_per_s']:.1f} training images/s ({r['size']}², batch "
                  f"{r['batch_size']}, {r['precision']}, channels_last={r['channels_last']}, "
                  f"{r['device']}, {r['threads']} threads"
                  + (f", peak memory {peak:.1f} GB)" if peak is not None else ")"))
        else:
            for prec, m in r.items():
                print(f"{name} [{prec}]: {m['ms_per_frame']:.2f} ms/frame ({m['fps']:.0f} fps, "
                      f"{m['size']}², batch {m['batch_size']}, {m['device']})")
    return 0


def check_count(option: str, value: int, high: int = 100_000) -> int:
    """``value`` if 1 <= value <= ``high``; else ConfigError ``<option> N: must be ...``."""
    from echoseg.errors import ConfigError

    if not 1 <= value <= high:
        raise ConfigError(f"{option} {value}: must be between 1 and {high}")
    return value


def _model_or_preset(name: str, overrides: list[str]):
    """A trained model (bundled name, run folder, checkpoint) or else a config/preset name built
    with random weights (speed does not depend on the weights). Returns (model, config); the
    error of whichever ``name`` names, e.g. a checkpoint that does not load."""
    from pathlib import Path

    from echoseg.config import load_config, resolve_config_path
    from echoseg.errors import ConfigError
    from echoseg.inference import load_model
    from echoseg.inference.loading import bundled_models, resolve_model_path
    from echoseg.models import build_model

    path = Path(name)
    is_config = path.suffix in (".yaml", ".yml")
    if not is_config and (name in bundled_models() or path.is_dir() or path.is_file()):
        if path.suffix.lower() in (".onnx", ".xml"):
            raise ConfigError(f"{name}: bench times PyTorch models; give the checkpoint or "
                              "bundled name it was exported from")
        seg = load_model(name)
        return seg.model, seg.config
    try:
        resolve_config_path(name)
    except ConfigError:
        if not is_config:
            resolve_model_path(name)  # raises: no such model, listing the bundled ones
        raise
    config = load_config(name, overrides)
    return build_model(config.model), config
