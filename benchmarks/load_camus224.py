"""Time loading all of camus224 onto the model grid: cold (decode PNGs) and warm (array cache).

Usage: python benchmarks/load_camus224.py [DATA] [--size 256] [--cache-dir DIR]
Without --cache-dir a fresh temporary cache is used, so the first load really decodes (the
operating system's file cache is left as it is).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from echoseg.data.cache import load_arrays
from echoseg.data.dataset import open_dataset

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "camus224"
WARM_BUDGET_S = 5.0


def timed_load(root: Path, size: int, cache_dir: Path) -> tuple[float, float, int]:
    """Open the dataset and load its arrays; returns (open s, load s, bytes loaded)."""
    start = time.perf_counter()
    dataset = open_dataset(root)
    opened = time.perf_counter()
    images, labels = load_arrays(dataset.samples, size, cache_dir)
    return opened - start, time.perf_counter() - opened, images.nbytes + labels.nbytes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--size", type=int, default=256, help="model grid side (default 256)")
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="echoseg-bench-") as tmp:
        cache = args.cache_dir or Path(tmp)
        print(f"data {args.data}, grid {args.size}x{args.size}, cache {cache}")
        for name in ("cold", "warm"):
            t_open, t_load, nbytes = timed_load(args.data, args.size, cache)
            print(f"{name}: {t_open + t_load:6.2f} s (open_dataset {t_open:.2f} s, "
                  f"load_arrays {t_load:.2f} s), {nbytes / 1e6:.0f} MB of uint8 arrays")
    ok = t_open + t_load < WARM_BUDGET_S
    print(f"warm load {'within' if ok else 'OVER'} the {WARM_BUDGET_S:.0f} s budget")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
