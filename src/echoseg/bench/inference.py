"""Inference speed of models side by side across runtimes (PyTorch, ONNX Runtime, OpenVINO),
precisions (fp32, int8) and batch sizes, all measured in one process so that ratios hold."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from echoseg.bench.timing import _sync
from echoseg.errors import ConfigError

BENCH_RUNTIMES = ("all", "auto", "torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "int8", "all")
CALIBRATION_IMAGES = 16  # images calibrating an int8 model in the bench


@dataclass
class Subject:
    """One model to bench: ``model`` (a torch module, None for an exported file), its
    ``config``, ``path`` (the exported file, else None) and whether its weights are random."""

    name: str
    config: object
    model: torch.nn.Module | None = None
    path: Path | None = None
    random_weights: bool = False
    stats: dict = field(default_factory=dict)


def machine() -> dict:
    """{"cpu", "flags", "threads", "gpu"} of this machine (gpu: CUDA device name or None)."""
    from echoseg.provenance import cpu_flags, cpu_model

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"cpu": cpu_model(), "flags": cpu_flags(), "threads": torch.get_num_threads(),
            "gpu": gpu}


def parse_batch_sizes(text: str) -> list[int]:
    """``1,8,32`` -> [1, 8, 32]; ConfigError (one line) for anything else."""
    from echoseg.commands.bench import check_count

    sizes = []
    for part in str(text).split(","):
        try:
            value = int(part.strip())
        except ValueError:
            shown = text if len(text) <= 40 and text.isprintable() else repr(text[:40])
            raise ConfigError(f"--batch-sizes {shown}: expected integers separated by commas, "
                              "e.g. 1,8,32") from None
        sizes.append(check_count("--batch-sizes", value))
    return list(dict.fromkeys(sizes))


def runtimes_for(choice: str, device: torch.device, warn=None) -> list[str]:
    """The runtimes ``--runtime CHOICE`` benches. ``all``: every installed one, each missing
    one skipped with one line through ``warn``; otherwise as resolve_runtime says (a named
    runtime that is missing raises its one-line ConfigError)."""
    from echoseg.inference.runtimes import INSTALL_HINTS, installed, resolve_runtime

    if choice != "all":
        if choice not in BENCH_RUNTIMES:
            resolve_runtime(choice, device)  # raises: unknown runtime
        return [resolve_runtime(choice, device)]
    chosen = ["torch"]
    for runtime in ("onnxruntime", "openvino"):
        missing = [m for m in (runtime, "onnx") if not installed(m)]
        if missing:
            if warn is not None:
                warn(f"echoseg bench: skipping {runtime} ({' and '.join(missing)} not "
                     f"installed: {INSTALL_HINTS[runtime]})")
            continue
        chosen.append(runtime)
    return chosen


def time_calls(call: Callable[[], object], device: torch.device, repeats: int,
               warmup: int = 3) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``call`` after ``warmup`` untimed ones, the
    CUDA device synchronised around each."""
    times = []
    for i in range(warmup + repeats):
        _sync(device)
        t0 = time.perf_counter()
        call()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, linear interpolation."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), 100 * q))


def subject_stats(config) -> dict:
    """{"params", "gflops"} of the model of ``config`` at its own grid (GFLOPs = 2 x MACs)."""
    from echoseg.models import model_stats

    return model_stats(config.model, size=config.data.size)


def bench_subject(subject: Subject, runtimes: list[str], precisions: list[str],
                  batch_sizes: list[int], device: torch.device, repeats: int,
                  warn=None) -> list[dict]:
    """One result row per runtime x precision x batch size of ``subject`` that can run."""
    if not subject.stats:
        subject.stats = subject_stats(subject.config)
    rows = []
    with tempfile.TemporaryDirectory(prefix="echoseg-bench-") as tmp:
        for runtime in runtimes:
            if subject.path is not None and (runtime == "torch" or (
                    runtime == "onnxruntime" and subject.path.suffix.lower() == ".xml")):
                continue  # an exported file runs only on its runtimes
            for precision in precisions:
                if precision == "int8" and (runtime == "torch" or subject.model is None):
                    continue
                calibration = None
                if precision == "int8":
                    call_factory, calibration = _int8_backend(subject, runtime, device,
                                                              Path(tmp))
                else:
                    call_factory = _fp32_backend(subject, runtime, device)
                for batch in batch_sizes:
                    call, where = call_factory(batch)
                    times = time_calls(call, device if runtime == "torch" else
                                       torch.device("cpu"), repeats)
                    rows.append(_row(subject, runtime, precision, batch, times, where,
                                     calibration))
    return rows


def _row(subject: Subject, runtime: str, precision: str, batch: int, times: list[float],
         device: str, calibration: str | None) -> dict:
    p50 = 1000 * percentile(times, 0.5) / batch
    p90 = 1000 * percentile(times, 0.9) / batch
    fps = 1000 / p50
    gflops = float(subject.stats["gflops"])
    return {"model": subject.name, "runtime": runtime, "precision": precision, "batch": batch,
            "ms_per_frame_p50": p50, "ms_per_frame_p90": p90, "frames_per_s": fps,
            "params": int(subject.stats["params"]), "gflops": gflops,
            "gflops_per_s": gflops * fps, "size": subject.config.data.size, "device": device,
            "calibration": calibration}


def _inputs(subject: Subject, batch: int) -> np.ndarray:
    size = subject.config.data.size
    rng = np.random.default_rng(0)
    return rng.random((batch, subject.config.model.in_channels, size, size), dtype=np.float32)


def _fp32_backend(subject: Subject, runtime: str, device: torch.device):
    """A function batch -> (zero-argument call running one batch, device name)."""
    if runtime == "torch":
        model = subject.model.to(device).eval()

        def torch_factory(batch: int):
            x = torch.from_numpy(_inputs(subject, batch)).to(device)

            def call():
                with torch.no_grad():
                    model(x)
            return call, str(device)
        return torch_factory
    if subject.path is not None:
        from echoseg.inference.loading import open_backend

        backend = open_backend(subject.path, runtime, str(device))
    else:
        from echoseg.inference.loading import exported_backend

        backend = exported_backend(subject.model, subject.config, subject.name, runtime,
                                   str(device))
    return _backend_factory(subject, backend)


def _backend_factory(subject: Subject, backend):
    def factory(batch: int):
        x = _inputs(subject, batch)
        return (lambda: backend(x)), backend.device
    return factory


def calibration_images(subject: Subject) -> tuple[np.ndarray, str]:
    """Grid images (N, S, S) calibrating an int8 model and where they came from: the bundled
    samples for trained weights, random images for random weights."""
    size = subject.config.data.size
    if subject.random_weights:
        rng = np.random.default_rng(0)
        images = rng.random((CALIBRATION_IMAGES, size, size), dtype=np.float32)
        return images, f"{CALIBRATION_IMAGES} random images (random weights)"
    from echoseg.export.images import load_grid_images
    from echoseg.inference.files import bundled_samples

    grid = load_grid_images(bundled_samples(), size, CALIBRATION_IMAGES)
    return grid.images, f"{len(grid)} bundled sample images ({bundled_samples().name})"


def _int8_backend(subject: Subject, runtime: str, device: torch.device, tmp: Path):
    """(factory as _fp32_backend, calibration description) of an int8 copy of ``subject``
    quantized as ``echoseg export --int8`` does, into ``tmp``."""
    from echoseg.export.selection import probe_indices
    from echoseg.inference.exported import cached_onnx, cached_openvino
    from echoseg.inference.loading import open_backend

    images, source = calibration_images(subject)
    probe = images[probe_indices(len(images))]
    model = subject.model.cpu().eval()
    with torch.no_grad():
        probe_labels = np.concatenate([
            model(torch.from_numpy(probe[i:i + 4, None])).float().argmax(1).numpy()
            for i in range(0, len(probe), 4)])
    if runtime == "openvino":
        from echoseg.export.quantize_openvino import quantize_openvino

        fp32 = cached_openvino(subject.model, subject.config, subject.name)
        path, _ = quantize_openvino(fp32, tmp / f"{len(list(tmp.iterdir()))}-int8.xml",
                                    images, probe, probe_labels)
    else:
        from echoseg.export.quantize_onnx import quantize_onnx

        fp32 = cached_onnx(subject.model, subject.config, subject.name)
        path, _ = quantize_onnx(fp32, tmp / f"{len(list(tmp.iterdir()))}-int8.onnx",
                                images, probe, probe_labels, {})
    backend = open_backend(path, runtime, str(device))
    return _backend_factory(subject, backend), source


def ratio_lines(rows: list[dict]) -> list[str]:
    """For each model, its best result against torch fp32 batch 1; and lightweight's best
    against nnunet2d's best at batch 1 when both were benched."""
    lines = []
    models = list(dict.fromkeys(r["model"] for r in rows))
    for name in models:
        mine = [r for r in rows if r["model"] == name]
        best = min(mine, key=lambda r: r["ms_per_frame_p50"])
        ref = [r for r in mine if r["runtime"] == "torch" and r["precision"] == "fp32"
               and r["batch"] == 1]
        if ref:
            ratio = ref[0]["ms_per_frame_p50"] / best["ms_per_frame_p50"]
            lines.append(f"{name}: best {_label(best)} is {ratio:.2f}x the frames/s of "
                         "torch fp32 batch 1")
    pair = [_best_at_1(rows, n) for n in ("lightweight", "nnunet2d")]
    if all(pair):
        light, nn = pair
        ratio = nn["ms_per_frame_p50"] / light["ms_per_frame_p50"]
        lines.append(f"lightweight ({_label(light)}, {light['size']}²) vs nnunet2d "
                     f"({_label(nn)}, {nn['size']}²) at batch 1: {ratio:.2f}x the frames/s")
    return lines


def _best_at_1(rows: list[dict], name: str) -> dict | None:
    mine = [r for r in rows if r["model"] == name and r["batch"] == 1]
    return min(mine, key=lambda r: r["ms_per_frame_p50"]) if mine else None


def _label(row: dict) -> str:
    return f"{row['runtime']} {row['precision']} batch {row['batch']}"


def table_lines(rows: list[dict]) -> list[str]:
    """A plain-text table, one line per result."""
    head = (f"{'model':<16} {'runtime':<12} {'prec':<5} {'batch':>5} {'p50 ms':>9} "
            f"{'p90 ms':>9} {'frames/s':>9} {'params':>11} {'GFLOPs':>8} {'GFLOP/s':>8}")
    lines = [head]
    for r in rows:
        lines.append(f"{r['model'][:16]:<16} {r['runtime']:<12} {r['precision']:<5} "
                     f"{r['batch']:>5} {r['ms_per_frame_p50']:>9.2f} "
                     f"{r['ms_per_frame_p90']:>9.2f} {r['frames_per_s']:>9.1f} "
                     f"{r['params']:>11,} {r['gflops']:>8.2f} {r['gflops_per_s']:>8.1f}")
    for name, source in dict.fromkeys((r["model"], r["calibration"]) for r in rows
                                      if r["calibration"]):
        lines.append(f"{name} int8 calibration: {source}")
    return lines


def stderr_line(text: str) -> None:
    print(text, file=sys.stderr)
