"""A/B of a fast-path switch in one process: training steps alternate between its settings.

    .venv/bin/python benchmarks/ab_train_step.py ECHOSEG_LOW_RES_UPCONV=off,auto \
        [--config lightweight] [--rounds 15] [--set KEY=VALUE]

On a shared machine whole-process timings drift by ±10% between runs, more than most of the
changes worth measuring. Here every round runs one step under each setting of the environment
variable, on the same model and batch, so drift hits all settings alike; the medians and
minima over the rounds are printed. Only switches read at every call can be compared this way
(``ECHOSEG_LOW_RES_UPCONV``, ``ECHOSEG_FUSED_BN_MISH``, ``ECHOSEG_FUSED_LOSS``; not
``ECHOSEG_FUSED_MISH``, read once at import). Examples, 2 Zen 4 cores, lightweight at 256²,
batch 32, bf16: the plain decoder (``ECHOSEG_LOW_RES_UPCONV=off``) 2.770 s per step against
2.351 s for the low-resolution decoder convolution (12 rounds); ``ECHOSEG_FUSED_LOSS=0,1``
2.220 against 2.113 s (10 rounds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from echoseg.bench.timing import training_step
from echoseg.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("switch", help="VARIABLE=value1,value2[,...]")
    parser.add_argument("--config", default="lightweight")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    variable, _, values = args.switch.partition("=")
    settings = [v for v in values.split(",") if v]
    if not variable or len(settings) < 2:
        parser.error("give a variable and at least two values: VARIABLE=a,b")

    config = load_config(args.config, args.set)
    step, _ = training_step(config, torch.device("cpu"))
    seconds: dict[str, list[float]] = {value: [] for value in settings}
    for round_ in range(args.rounds + 1):  # round 0 warms every setting up
        for value in settings:
            os.environ[variable] = value
            t0 = time.perf_counter()
            step()
            if round_:
                seconds[value].append(time.perf_counter() - t0)
    batch = config.train.batch_size
    print(f"{args.config}: {config.data.size}², batch {batch}, {torch.get_num_threads()} "
          f"threads, {args.rounds} rounds")
    for value, times in seconds.items():
        median = statistics.median(times)
        print(f"  {variable}={value}: median {median:.3f} s ({batch / median:.2f} images/s), "
              f"best {min(times):.3f} s ({batch / min(times):.2f} images/s)")


if __name__ == "__main__":
    main()
