"""Latency of one model under PyTorch, ONNX Runtime and OpenVINO, fp32 and int8, on CPU.

    nice -n 10 .venv/bin/python benchmarks/export_runtimes.py [--model lightweight] \
        [--size 256] [--threads 2] [--rounds 20] [--calibration tests/data/camus224]

Batch 1. Every round runs each variant once (so that drift on a shared machine hits all of
them alike) after 3 warm-up calls; the median and minimum per variant are printed in ms.
Variants: PyTorch fp32 (eager, no_grad); ONNX Runtime fp32 at opset 17, and at opset 18 with
each Softplus-Tanh-Mul chain rewritten as one ``Mish`` node (the exporter never emits it);
ONNX Runtime int8 (``echoseg export --int8``'s settings, layers all quantized); OpenVINO fp32
(f32 inference precision) read straight from both ONNX files and as ``echoseg export``
converts it (its own Mish rewrite, see echoseg.export.to_openvino), and OpenVINO int8 (NNCF).
The model files are written to a temporary folder at ``--size`` (the U-Net is fully
convolutional).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def fuse_mish(path: Path, out: Path) -> int:
    """Rewrite ``x * tanh(softplus(x))`` chains of an opset-18 ONNX file as ``Mish``; returns
    how many were fused."""
    import onnx

    model = onnx.load(str(path))
    nodes = list(model.graph.node)
    by_input: dict[str, list] = {}
    for node in nodes:
        for name in node.input:
            by_input.setdefault(name, []).append(node)
    fused, drop, new_nodes = 0, set(), []
    for node in nodes:
        if node.op_type != "Softplus":
            continue
        x = node.input[0]
        tanh = by_input.get(node.output[0], [])
        if len(tanh) != 1 or tanh[0].op_type != "Tanh":
            continue
        mul = by_input.get(tanh[0].output[0], [])
        if len(mul) != 1 or mul[0].op_type != "Mul" or set(mul[0].input) != {x, tanh[0].output[0]}:
            continue
        drop.update(id(n) for n in (node, tanh[0], mul[0]))
        new_nodes.append((mul[0], onnx.helper.make_node("Mish", [x], list(mul[0].output),
                                                        name=f"{mul[0].name}_mish")))
        fused += 1
    replacement = {id(old): new for old, new in new_nodes}
    kept = [replacement.get(id(n), n) for n in nodes
            if id(n) not in drop or id(n) in replacement]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return fused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lightweight")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calibration", default="tests/data/camus224")
    parser.add_argument("--calibration-images", type=int, default=100)
    args = parser.parse_args()

    import openvino as ov
    import openvino.properties.hint as hints

    from echoseg.export.images import load_grid_images
    from echoseg.export.quantize_onnx import quantize_onnx
    from echoseg.export.quantize_openvino import quantize_openvino
    from echoseg.export.runners import onnx_runner
    from echoseg.export.to_onnx import export_onnx
    from echoseg.export.to_openvino import export_openvino
    from echoseg.inference import load_model

    torch.set_num_threads(args.threads)
    seg = load_model(args.model, device="cpu")
    config = dataclasses.replace(seg.config,
                                 data=dataclasses.replace(seg.config.data, size=args.size))
    cal = load_grid_images(args.calibration, args.size, args.calibration_images, split="train")
    probe = cal.images[:8]
    with torch.no_grad():
        probe_labels = seg.model(torch.from_numpy(probe[:, None])).argmax(1).numpy()
    x = cal.images[:1]
    tmp = Path(tempfile.mkdtemp(prefix="echoseg-bench-"))
    onnx17 = export_onnx(seg.model, config, tmp / "fp32_17.onnx", opset=17)
    onnx18 = export_onnx(seg.model, config, tmp / "fp32_18.onnx", opset=18)
    fused = fuse_mish(onnx18, tmp / "fp32_18_mish.onnx")
    int8 = quantize_onnx(onnx17, tmp / "int8.onnx", cal.images, probe, probe_labels, {})[0]
    ir17 = export_openvino(onnx17, tmp / "fp32_17.xml")
    ir8 = quantize_openvino(ir17, tmp / "int8.xml", cal.images, probe, probe_labels)[0]

    core = ov.Core()
    ov_config = {hints.inference_precision: ov.Type.f32, "INFERENCE_NUM_THREADS": args.threads,
                 hints.performance_mode: hints.PerformanceMode.LATENCY}

    def openvino(path: Path):
        compiled = core.compile_model(str(path), "CPU", ov_config)
        return lambda grid: compiled(grid[:, None])[0]

    def pytorch(grid):
        with torch.no_grad():
            return seg.model(torch.from_numpy(grid[:, None]))

    variants = {
        "pytorch fp32": pytorch,
        "onnxruntime fp32 opset17": onnx_runner(onnx17, args.threads),
        f"onnxruntime fp32 opset18+Mish ({fused} fused)": onnx_runner(tmp / "fp32_18_mish.onnx",
                                                                      args.threads),
        "onnxruntime int8": onnx_runner(int8, args.threads),
        "openvino fp32 opset17": openvino(onnx17),
        "openvino fp32 opset18+Mish": openvino(tmp / "fp32_18_mish.onnx"),
        "openvino fp32 IR (echoseg export)": openvino(ir17),
        "openvino int8": openvino(ir8),
    }
    reference = np.asarray(pytorch(x))
    for name, run in variants.items():
        for _ in range(3):
            out = np.asarray(run(x))
        if "int8" not in name:
            print(f"{name}: max |Δlogit| vs PyTorch {np.abs(out - reference).max():.2e}")
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, run in variants.items():
            start = time.perf_counter()
            run(x)
            times[name].append((time.perf_counter() - start) * 1000)
    print(f"{args.model}, batch 1, {args.size}x{args.size}, {args.threads} threads, "
          f"{args.rounds} rounds (ms: median, min)")
    for name, values in times.items():
        print(f"  {name:45s} {statistics.median(values):8.1f} {min(values):8.1f}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
