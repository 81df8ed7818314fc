"""Turn a finished training run into bundled weights: src/echoseg/weights/<name>.pt + .json.

    python scripts/bundle_weights.py RUN --data DATA [--name lightweight] [--split val]

Scores the run's best checkpoint on DATA's split (native grid, the run's post-processing) and on
the bundled samples, and stores those metrics, the resolved config, the training provenance and
the CAMUS license beside the fp32 state dict. The tests reproduce the bundled-sample Dice.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import yaml

from echoseg.data.dataset import open_dataset
from echoseg.data.splits import resolve_splits
from echoseg.evaluation.evaluate import evaluate_model
from echoseg.inference import load_model
from echoseg.inference.bundle import save_bundled
from echoseg.inference.files import bundled_samples
from echoseg.inference.loading import WEIGHTS_DIR

LICENSE = (
    "Derived from CAMUS: CC BY-NC-SA 4.0, non-commercial scientific research only. Cite: "
    "S. Leclerc, E. Smistad, J. Pedrosa, A. Ostvik, et al., 'Deep Learning for Segmentation "
    "using an Open Large-Scale Dataset in 2D Echocardiography', IEEE Transactions on Medical "
    "Imaging, vol. 38, no. 9, pp. 2198-2210, Sept. 2019, doi: 10.1109/TMI.2019.2900516."
)


def metrics(summary: dict) -> dict:
    """The parts of an evaluation summary worth recording beside the weights."""
    keys = ("n_images", "dice", "dice_std", "hausdorff", "hausdorff_std", "hausdorff_nan",
            "hd95", "anatomical_outliers", "anatomical_failures", "postprocess", "grid",
            "hausdorff_unit")
    return {k: summary[k] for k in keys if k in summary}


def run_summary(run: Path) -> dict:
    """A run folder's config, history, best epoch, training seconds and provenance; for a
    fine-tuned run (train.init_from a run folder) the same for that run under ``init_from``."""
    with open(run / "history.csv") as f:
        history = list(csv.DictReader(f))
    best = max(history, key=lambda r: float(r["val_dice_mean"]))
    config = yaml.safe_load((run / "config.yaml").read_text())
    summary = {
        "run": run.name, "config": config,
        "epochs_run": sum(r["epoch"] != "swa" for r in history), "best_epoch": best["epoch"],
        "train_seconds": round(sum(float(r["seconds"]) for r in history)),
        "history": history, "provenance": json.loads((run / "provenance.json").read_text()),
    }
    init_from = config["train"].get("init_from")
    if init_from and Path(init_from).is_dir():
        summary["init_from"] = run_summary(Path(init_from))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--name", default="lightweight")
    args = parser.parse_args()

    segmenter = load_model(args.run / "best.pt")
    dataset = open_dataset(args.data)
    split = resolve_splits(dataset)[args.split]
    fold = evaluate_model(segmenter.predict_batch, dataset.select(split), batch_size=16,
                          prior_postprocess=segmenter.postprocess_spec, model=args.name)
    samples = evaluate_model(segmenter.predict_batch, open_dataset(bundled_samples()).samples,
                             batch_size=16, prior_postprocess=segmenter.postprocess_spec,
                             model=args.name)
    training = run_summary(args.run)
    validation = {
        "split": args.split, "data": Path(args.data).name, **metrics(fold.summary),
        "bundled_samples": {"dice": samples.summary["dice"],
                            "per_image_dice": {r["id"]: {s: r[f"dice_{s}"] for s in
                                                         ("LV", "MYO", "LA")}
                                               for r in samples.rows}},
    }
    save_bundled(segmenter.model, segmenter.config, WEIGHTS_DIR, args.name,
                 validation=validation, extra={"training": training, "license": LICENSE})
    print(json.dumps({k: validation[k] for k in ("dice", "hausdorff", "anatomical_outliers")}))


if __name__ == "__main__":
    main()
