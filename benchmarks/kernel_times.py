"""Time spent in echoseg's C kernels inside real training steps.

    .venv/bin/python benchmarks/kernel_times.py [CONFIG] [--steps 4] [--set KEY=VALUE]

Runs the training step of CONFIG (default configs/lightweight.yaml: 256², batch 32, bf16 +
channels_last on CPU) on random data, with a timer around every call into echoseg/native's
libraries, and prints milliseconds per step for each kernel function, their total and the
whole step's time. On 2 Zen 4 cores the BatchNorm + Mish kernels (pooling included) took
316-331 ms of a 2.09 s step at 256², all kernels 375 ms (the convolutions take ~1.64 s;
``ONEDNN_VERBOSE=1`` shows them). Nothing is timed when the kernels are unavailable (no C
compiler, no AVX-512).
"""

from __future__ import annotations

import argparse
import collections
import time

import torch

from echoseg import native
from echoseg.bench.timing import training_step
from echoseg.config import load_config


class _TimedLibrary:
    """A loaded kernel library whose functions add their wall time to ``totals``."""

    def __init__(self, lib, totals: dict[str, list[float]]):
        self._lib, self._totals = lib, totals

    def __getattr__(self, name: str):
        function = getattr(self._lib, name)

        def timed(*args):
            start = time.perf_counter()
            result = function(*args)
            entry = self._totals[name]
            entry[0] += time.perf_counter() - start
            entry[1] += 1
            return result

        return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="lightweight")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    totals: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0])
    load = native.load

    def timed_load(name, signatures):
        lib = load(name, signatures)
        return None if lib is None else _TimedLibrary(lib, totals)

    native.load = timed_load
    config = load_config(args.config, args.set)
    step, _ = training_step(config, torch.device("cpu"))
    for _ in range(2):  # warm-up: kernels built, memory settled
        step()
    totals.clear()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    per_step = (time.perf_counter() - start) / args.steps
    print(f"{args.config}: {config.data.size}², batch {config.train.batch_size}, "
          f"{torch.get_num_threads()} threads, step {per_step * 1000:.0f} ms")
    kernels = 0.0
    for name, (seconds, calls) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
        kernels += seconds / args.steps
        print(f"  {seconds / args.steps * 1000:7.1f} ms  {calls // args.steps:3d} calls  {name}")
    print(f"  {kernels * 1000:7.1f} ms  in all kernels ({100 * kernels / per_step:.0f}% of a step)")


if __name__ == "__main__":
    main()
