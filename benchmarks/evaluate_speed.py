"""Time the scoring of 200 prediction/ground-truth pairs of 224x224 (inference excluded).

    .venv/bin/python benchmarks/evaluate_speed.py [--data DIR] [--n 200] [--repeat 3]

Ground truths are the real CAMUS maps in DATA (default tests/data/camus224), reused in turn;
predictions are those maps shifted by 1-4 px with a few pixels of noise, so every metric does
real work (Dice, Hausdorff and HD95 for three structures, twelve anatomical criteria).
Prints the best of ``--repeat`` runs, total and per image; the budget is 10 s for 200 images.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from echoseg.data.readers import read_image
from echoseg.evaluation import EvalItem, evaluate_predictions
from echoseg.metrics import anatomical_errors, dice, hausdorff

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "camus224"
BUDGET_S = 10.0


def make_items(data: Path, n: int, seed: int = 0) -> list[EvalItem]:
    """``n`` items: real ground truths with shifted, speckled copies as predictions."""
    gts = [read_image(p)[0] for p in sorted(data.glob("**/*_gt.png"))]
    if not gts:
        raise SystemExit(f"no *_gt.png under {data}")
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        gt = gts[i % len(gts)]
        pred = np.roll(gt, tuple(rng.integers(-4, 5, size=2)), axis=(0, 1))
        noise = rng.random(gt.shape) < 0.002
        pred[noise] = rng.integers(0, 4, size=int(noise.sum()))
        items.append(EvalItem(f"img{i:04d}", f"p{i}", "4CH", "ED", pred, gt, (0.3, 0.3)))
    return items


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    items = make_items(args.data, args.n)

    total = best_of(args.repeat, lambda: evaluate_predictions(items))
    parts = {
        "dice (3 structures)": lambda: [dice(it.pred, it.gt, k) for it in items for k in (1, 2, 3)],
        "hausdorff (3 structures)": lambda: [hausdorff(it.pred, it.gt, k, (0.3, 0.3))
                                             for it in items for k in (1, 2, 3)],
        "anatomical criteria": lambda: [anatomical_errors(it.pred) for it in items],
    }
    print(f"{args.n} images of {items[0].gt.shape[0]}x{items[0].gt.shape[1]}, best of "
          f"{args.repeat}")
    print(f"  evaluate_predictions: {total:.2f} s ({1000 * total / args.n:.1f} ms/image; "
          f"budget {BUDGET_S:.0f} s: {'ok' if total < BUDGET_S else 'OVER'})")
    for name, fn in parts.items():
        t = best_of(args.repeat, fn)
        print(f"  {name}: {t:.2f} s ({1000 * t / args.n:.1f} ms/image)")


if __name__ == "__main__":
    main()
