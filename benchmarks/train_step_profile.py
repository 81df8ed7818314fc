"""Where a training step's time goes, and the speed the convolutions alone allow.

    .venv/bin/python benchmarks/train_step_profile.py [CONFIG] [--steps 3] [--set KEY=VALUE]

Runs the real training step of CONFIG (default configs/lightweight.yaml: 256², batch 32, bf16
+ channels_last on CPU) under torch.profiler after two warm-up steps, on random images, and
prints seconds per step, the operators that take most of it, the share of the convolutions
(forward and backward) and the images/s a step would reach if everything but the convolutions
were free. On 2 Zen 4 cores the convolutions were 1.7-1.9 s of a profiled step; everything else is
listed by operator (echoseg's C kernels appear as _BatchNormMish*, _FusedClassSums*).
Profiling adds overhead: read images/s from ``echoseg bench --train``, shares from here.
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from echoseg.bench.timing import training_step
from echoseg.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="lightweight")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--top", type=int, default=12, help="operators to list")
    args = parser.parse_args()

    config = load_config(args.config, args.set)
    cfg, size = config.train, config.data.size
    step, amp = training_step(config, torch.device("cpu"))
    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    events = prof.key_averages()
    per_step = {e.key: e.self_cpu_time_total / 1e6 / args.steps for e in events}
    total = sum(per_step.values())
    conv = sum(t for name, t in per_step.items() if "conv" in name)
    print(f"{args.config}: {size}², batch {cfg.batch_size}, {amp or 'fp32'}, "
          f"{torch.get_num_threads()} threads")
    print(f"step {total:.2f} s ({cfg.batch_size / total:.1f} images/s under the profiler); "
          f"convolutions {conv:.2f} s ({100 * conv / total:.0f}%) -> at most "
          f"{cfg.batch_size / conv:.1f} images/s if everything else were free")
    for name, seconds in sorted(per_step.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"  {seconds * 1000:8.0f} ms  {name}")


if __name__ == "__main__":
    main()
