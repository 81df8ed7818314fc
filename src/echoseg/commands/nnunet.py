"""`echoseg nnunet export DATA --dataset-id N --out nnUNet_raw`: a dataset and its split as an
nnU-Net v2 raw dataset, with the commands that train, predict and score it; `echoseg nnunet
rename PRED --case-map F`: give nnU-Net's predictions their sample ids back."""

from __future__ import annotations

import argparse
import json
import shlex

from echoseg.outdir import prepare_output_dir, removes_unused_output_dirs

ABLATION_TRAINERS = ("nnUNetTrainer_100epochs", "nnUNetTrainerNoDA",
                     "nnUNetTrainerNoDeepSupervision")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `echoseg nnunet export` and `echoseg nnunet rename`."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = sub.add_parser("export", help="write DATA as nnUNet_raw/DatasetNNN_Name",
                            description="Write DATA as an nnU-Net v2 raw dataset (2D PNG) with "
                            "splits_final.json holding echoseg's train/val split as fold 0.")
    export.add_argument("data", metavar="DATA", help="dataset folder")
    export.add_argument("--dataset-id", type=int, required=True, metavar="N",
                        help="nnU-Net dataset id, 1..999")
    export.add_argument("--out", required=True, metavar="DIR",
                        help="the nnUNet_raw folder to write DatasetNNN_Name into")
    export.add_argument("--name", help="dataset name, letters and digits (default: CAMUS for "
                        "a CAMUS release, else from DATA's folder name)")
    export.add_argument("--split-file", metavar="F", help="JSON split file or CAMUS subgroup "
                        "folder (default: found in DATA, else a seeded 80/10/10 split)")
    export.add_argument("--seed", type=int, default=0,
                        help="seed of the 80/10/10 split used without a split file (default 0)")
    export.add_argument("--force", action="store_true",
                        help="replace an existing DatasetNNN_* folder of that id")
    export.add_argument("--json", action="store_true",
                        help='print {"dataset", "cases", "test_cases"} as JSON only')
    rename = sub.add_parser("rename", help="rename nnU-Net predictions <case>.png to <id>.png",
                            description="Rename nnU-Net's predictions of renamed cases to their "
                            "sample ids, as listed in the exported case_map.json.")
    rename.add_argument("pred", metavar="PRED", help="nnU-Net prediction folder")
    rename.add_argument("--case-map", required=True, metavar="F",
                        help="case_map.json of the exported dataset")


@removes_unused_output_dirs
def run(args: argparse.Namespace) -> int:
    """Run the chosen action; returns 0 (errors raise EchosegError)."""
    from echoseg.nnunet_export import dataset_folder_name, export_nnunet, rename_predictions

    if args.action == "rename":
        count = rename_predictions(args.pred, args.case_map)
        print(f"renamed {count} prediction{'s' * (count != 1)} in {args.pred}")
        return 0
    dataset_folder_name(args.dataset_id, args.name or "CAMUS")  # bad options fail first
    prepare_output_dir(args.out)
    result = export_nnunet(args.data, args.out, args.dataset_id, name=args.name,
                           split_file=args.split_file, seed=args.seed, force=args.force)
    if args.json:
        print(json.dumps({"dataset": str(result.folder), "cases": result.cases,
                          "test_cases": result.test_cases}))
    else:
        print(next_steps(result, args.data, args.dataset_id))
        if (args.split_file or args.seed) and not _evaluate_sees(result.splits, args.data):
            print("note: echoseg evaluate scores DATA's own split (or the seed-0 split), "
                  "which is not the one exported here")
    return 0


def _evaluate_sees(splits: dict[str, list[str]], data: str) -> bool:
    """Whether `echoseg evaluate --data DATA` resolves the same splits."""
    from echoseg.data.dataset import open_dataset
    from echoseg.data.splits import resolve_splits
    from echoseg.errors import DataError

    try:
        return resolve_splits(open_dataset(data, require_labels=False)) == splits
    except DataError:
        return False


def next_steps(result, data: str, dataset_id: int) -> str:
    """What was written and the nnU-Net v2 commands that plan, train (with the paper's
    ablation trainers), predict and score it, as text."""
    from echoseg.nnunet_export import CASE_MAP, SPLITS_FINAL

    q = shlex.quote
    folder, n = result.folder, dataset_id
    config = f"{n} 2d 0"
    lines = [f"wrote {folder}: {result.cases} training cases (imagesTr, labelsTr), "
             f"{result.test_cases} test cases (imagesTs)",
             f"{SPLITS_FINAL} (fold 0 = echoseg's train/val split) is in {folder}; copy it "
             f"to nnUNet_preprocessed/{folder.name}/ after planning, before training"]
    if result.left_out:
        lines.append(f"left out {len(result.left_out)} patients that are in no split")
    lines += ["", "next, with nnU-Net v2 installed:",
              f"  export nnUNet_raw={q(str(folder.parent.resolve()))} "
              "nnUNet_preprocessed=... nnUNet_results=...",
              f"  nnUNetv2_plan_and_preprocess -d {n} --verify_dataset_integrity -c 2d",
              f"  cp {q(str(folder / SPLITS_FINAL))} \"$nnUNet_preprocessed/{folder.name}/\"",
              f"  nnUNetv2_train {config}"]
    lines += [f"  nnUNetv2_train {config} -tr {trainer}   # ablation"
              for trainer in ABLATION_TRAINERS]

    def rename(pred: str) -> list[str]:
        return ([f"  echoseg nnunet rename {pred} --case-map {q(str(folder / CASE_MAP))}"]
                if result.case_map else [])

    if result.test_cases:
        lines += [f"  nnUNetv2_predict -i {q(str(folder / 'imagesTs'))} -o PRED -d {n} -c 2d "
                  "-f 0   # add -tr TRAINER for an ablation", *rename("PRED"),
                  f"  echoseg evaluate --pred PRED --data {q(data)} --split test"]
    validation = (f'"$nnUNet_results/{folder.name}/nnUNetTrainer__nnUNetPlans__2d/fold_0/'
                  'validation"')
    lines += ["  # fold 0's own validation predictions:",
              *rename(validation),
              f"  echoseg evaluate --pred {validation} --data {q(data)} --split val"]
    return "\n".join(lines)
