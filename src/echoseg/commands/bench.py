"""`echoseg bench`: training images/s (`--train`) or inference ms/frame of models."""

from __future__ import annotations

import argparse
import json


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
    from echoseg.bench.timing import inference_latency, training_throughput
    from echoseg.config import load_config
    from echoseg.training.loop import autocast_dtype, resolve_device

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
        print(json.dumps(results))
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


def _model_or_preset(name: str, overrides: list[str]):
    """A trained model (bundled name, run, checkpoint) or, failing that, a config/preset name
    built with random weights (speed does not depend on the weights). Returns (model, config)."""
    from echoseg.config import load_config
    from echoseg.errors import EchosegError
    from echoseg.inference import load_model
    from echoseg.models import build_model

    try:
        seg = load_model(name)
        return seg.model, seg.config
    except EchosegError as model_error:
        try:
            config = load_config(name, overrides)
        except EchosegError:
            raise model_error from None
        return build_model(config.model), config

