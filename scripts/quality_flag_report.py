"""How often the CAMUS plausibility flag and the calibrated quality flag fire on a split, for
the expert masks and for a model's predictions, and the mean Dice of flagged vs unflagged
predictions.

    python scripts/quality_flag_report.py --data ../shared/data/camus224 [--split val]
        [--model lightweight] [--thresholds FILE] [--json OUT]

Both flags are measured as ``echoseg predict`` measures them: on the label map resampled to
the model's grid (``plausibility_map``). Dice (per image, mean of LV, MYO, LA) is computed at
the images' native size, with the model's own post-processing, as ``echoseg evaluate`` does.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from echoseg.data.dataset import open_dataset
from echoseg.data.preprocess import label_to_grid
from echoseg.data.readers import read_image, read_label_map
from echoseg.data.splits import resolve_splits
from echoseg.inference import load_model
from echoseg.labels import STRUCTURES
from echoseg.metrics import anatomical_errors, dice
from echoseg.metrics.quality import flags_from_errors, load_thresholds


def flags(label_map: np.ndarray, size: int, thresholds) -> tuple[bool, bool, list[str]]:
    """(CAMUS outlier, quality-flagged, failed quality criteria) on the model grid."""
    errors = anatomical_errors(label_to_grid(label_map, size))
    ok, failed = flags_from_errors(errors, thresholds)
    return bool(errors["outlier"]), not ok, failed


def share(mask: list[bool]) -> dict:
    """How many of the images are flagged, and which share."""
    return {"n": int(sum(mask)), "share": round(float(np.mean(mask)), 4)}


def failed_counts(results: list[tuple[bool, bool, list[str]]]) -> dict[str, int]:
    """Criterion -> how many images fail it (quality flag)."""
    counts: dict[str, int] = {}
    for _, _, failed in results:
        for name in failed:
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def _mean(values: np.ndarray) -> float | None:
    return round(float(values.mean()), 4) if values.size else None


def split_dice(values: np.ndarray, flagged: list[bool]) -> dict:
    """Mean Dice of the flagged and of the unflagged images."""
    f = np.asarray(flagged, dtype=bool)
    return {"flagged": _mean(values[f]), "unflagged": _mean(values[~f])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", default="lightweight")
    parser.add_argument("--thresholds", help="default: the model's own (<weights>.quality.json)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", metavar="OUT", help="also write the result here")
    args = parser.parse_args()
    model = load_model(args.model)
    thresholds = load_thresholds(args.thresholds) if args.thresholds else model.quality
    if thresholds is None:
        raise SystemExit(f"{args.model}: no quality thresholds stored; give --thresholds")
    dataset = open_dataset(args.data)
    samples = dataset.select(resolve_splits(dataset)[args.split])
    gts = [read_label_map(s.label_path)[0] for s in samples]
    images = [read_image(s.image_path)[0] for s in samples]
    preds = model.predict_batch(images, batch_size=args.batch_size)
    size = model.size
    expert = [flags(g, size, thresholds) for g in gts]
    predicted = [flags(p, size, thresholds) for p in preds]
    dices = np.array([np.mean([dice(p, g, k) for k in STRUCTURES.values()])
                      for p, g in zip(preds, gts, strict=True)])
    result = {
        "data": args.data, "split": args.split, "n": len(samples), "model": model.name,
        "grid": size, "thresholds": thresholds.source,
        "expert": {"camus": share([c for c, _, _ in expert]),
                   "quality": share([q for _, q, _ in expert]),
                   "quality_failed": failed_counts(expert)},
        "predicted": {"camus": share([c for c, _, _ in predicted]),
                      "quality": share([q for _, q, _ in predicted]),
                      "quality_failed": failed_counts(predicted)},
        "mean_dice": round(float(dices.mean()), 4),
        "dice_by_flag": {"camus": split_dice(dices, [c for c, _, _ in predicted]),
                         "quality": split_dice(dices, [q for _, q, _ in predicted])},
        "lowest_dice_flagged": {
            f"lowest_{k}": int(sum(q for (_, q, _), d in zip(predicted, dices, strict=True)
                                   if d <= np.sort(dices)[k - 1]))
            for k in (5, 10, 20)},
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
