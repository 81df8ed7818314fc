"""Frames per second of `echoseg predict` on a 2D+t sequence, end to end, per runtime.

Usage: python benchmarks/sequence_predict.py [SEQUENCE] [--model lightweight]
           [--runtimes torch,onnxruntime,openvino] [--precision fp32|int8] [--frames 100]
           [--repeats 3] [--json]

End to end is what `echoseg predict` does to one file after the model is loaded: read it,
resample every frame to the model grid, run the network, post-process, map the labels back to
the native size and write the label map, the overlays and the table. The default input is the
real Echo-Toolkit A4C sequence (560x480, 20 frames), repeated in time to --frames frames so
one timing covers enough frames; without ../shared a synthetic sequence of that size is used.
Each runtime loads the model once (export cache included) before its timed runs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from echoseg.data.readers import read_image, write_image
from echoseg.inference import load_model
from echoseg.inference.files import find_inputs
from echoseg.inference.pipeline import FilePredictor
from echoseg.inference.runtimes import RUNTIMES, installed
from echoseg.provenance import machine_description

DEFAULT_SEQUENCE = (Path(__file__).resolve().parents[1].parent / "shared" / "data"
                    / "echo_toolkit" / "a4c_sequence.nii.gz")


def make_input(source: Path, frames: int, folder: Path) -> Path:
    """A NIfTI sequence of ``frames`` frames: ``source`` repeated in time (or a synthetic
    480x560 sequence when it is absent), with its spacing; returns its path."""
    if source.exists():
        array, spacing = read_image(source)
    else:
        rng = np.random.default_rng(0)
        array, spacing = rng.integers(0, 256, (20, 480, 560)).astype(np.uint8), (0.4, 0.4)
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    reps = -(-frames // len(array))
    path = folder / "sequence.nii.gz"
    write_image(path, np.concatenate([array] * reps)[:frames], spacing)
    return path


def time_runtime(model: str, runtime: str, path: Path, repeats: int, batch: int,
                 precision: str = "fp32") -> dict:
    """Best-of-``repeats`` end-to-end time of one file; returns a result row."""
    segmenter = load_model(model, runtime=runtime, precision=precision)
    files = find_inputs([path]).files
    walls, segment = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="echoseg-seq-") as out:
            predictor = FilePredictor(segmenter, Path(out), batch)
            start = time.perf_counter()
            predictor.run(files)
            predictor.write_csv()
            walls.append(time.perf_counter() - start)
            if predictor.failures:
                raise SystemExit(f"{runtime}: {predictor.failures[0]}")
            segment.append(sum(float(r["seconds"]) for r in predictor.rows))
    best = int(np.argmin(walls))
    frames = len(predictor.rows)
    return {"model": model, "runtime": segmenter.runtime, "batch": batch, "frames": frames,
            "seconds": round(walls[best], 3), "frames_per_s": round(frames / walls[best], 1),
            "segment_ms_per_frame": round(1000 * segment[best] / frames, 1),
            "io_ms_per_frame": round(1000 * (walls[best] - segment[best]) / frames, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sequence", nargs="?", type=Path, default=DEFAULT_SEQUENCE)
    parser.add_argument("--model", default="lightweight")
    parser.add_argument("--runtimes", default=",".join(r for r in RUNTIMES[1:] if installed(r)))
    parser.add_argument("--precision", default="fp32", choices=("fp32", "int8"),
                        help="int8: PyTorch weights as their cached int8 copy (not on torch)")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="echoseg-seq-in-") as tmp:
        path = make_input(args.sequence, args.frames, Path(tmp))
        results = [time_runtime(args.model, runtime, path, args.repeats, args.batch_size,
                                args.precision)
                   for runtime in args.runtimes.split(",")]
    report = {"machine": machine_description(), "input": str(args.sequence), "results": results}
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{report['machine']}; {args.sequence.name} as {args.frames} frames")
    for r in results:
        print(f"{r['runtime']:12s} {r['frames_per_s']:6.1f} frames/s end to end "
              f"(segmentation {r['segment_ms_per_frame']} ms/frame, reading and writing "
              f"{r['io_ms_per_frame']} ms/frame)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
