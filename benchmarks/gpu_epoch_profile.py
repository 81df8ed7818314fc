"""Where a training run's time goes on a GPU, with real data: start-up, making batches, the
steps, validation, checkpoints, and the GPU kernels of a few eager steps.

    python benchmarks/gpu_epoch_profile.py DATA [--set KEY=VALUE ...]

DATA is a CAMUS PNG copy; the config is ``lightweight`` with ``train.compile=cuda-graph``
unless ``--set`` says otherwise. Prints seconds (sync'ed with the GPU) for each part.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

T_START = time.perf_counter()
import torch  # noqa: E402  (the import is timed)

T_TORCH = time.perf_counter()


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(label: str, fn, repeats: int = 1):
    """Run ``fn`` ``repeats`` times; print the median seconds (GPU work included); return the
    last result."""
    times, result = [], None
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        result = fn()
        sync()
        times.append(time.perf_counter() - t0)
    print(f"{label}: {sorted(times)[len(times) // 2]:.4f} s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of this script")
    args = parser.parse_args()
    dev = torch.device(args.device)
    print(f"import torch: {T_TORCH - T_START:.2f} s")
    timed("device context", lambda: torch.zeros(1, device=dev))
    t0 = time.perf_counter()
    from echoseg.checkpoint import save_checkpoint
    from echoseg.config import load_config
    from echoseg.losses.class_sums import _binned_label_sums, _masked_label_sums, softmax_parts
    from echoseg.models import build_model
    from echoseg.training.batches import BatchSource
    from echoseg.training.data import load_training_arrays
    from echoseg.training.loop import prepare_device, step_parts
    from echoseg.training.validate import validate
    print(f"import echoseg: {time.perf_counter() - t0:.2f} s")

    config = load_config("lightweight", [f"data.root={args.data}", "train.compile=cuda-graph",
                                         *args.set])
    prepare_device(dev)
    arrays = timed("load the arrays (PNG decoding, resizing)", lambda: load_training_arrays(config))
    model, step, loss_fn, optimizer, amp = timed(
        "model, step, optimiser", lambda: step_parts(config, build_model(config.model), dev))
    cl = config.train.channels_last
    batches = timed("dataset to the GPU", lambda: BatchSource(
        arrays.train_images, arrays.train_labels, config.train.batch_size, "affine", dev,
        config.seed, on_device=True))
    val = (torch.as_tensor(arrays.val_images, device=dev),
           torch.as_tensor(arrays.val_labels, device=dev))

    def run_epoch(epoch, data=None):
        model.train()
        losses = [step(x, y) for x, y in (data or batches.epoch(epoch))]
        return float(torch.stack(losses).mean())

    timed("epoch 1 steps (warm-up, cuDNN search, capture)", lambda: run_epoch(1))
    timed("validation, first (cuDNN search)",
          lambda: validate(model, *val, loss_fn, dev, amp, cl))
    timed("making one epoch's batches (index, augment)", lambda: list(batches.epoch(2)), 3)
    ready = list(batches.epoch(3))
    timed("one epoch's steps on ready batches", lambda: run_epoch(3, ready), 3)
    timed("one epoch: batches made and stepped", lambda: run_epoch(4), 3)
    timed("validation", lambda: validate(model, *val, loss_fn, dev, amp, cl), 3)
    with tempfile.TemporaryDirectory() as tmp:
        timed("checkpoint save", lambda: save_checkpoint(Path(tmp) / "last.pt", {
            "model": model.state_dict(), "optimizer": optimizer.state_dict()}), 3)

    y = ready[0][1]
    logits = torch.randn(len(y), 4, *y.shape[1:], device=dev, requires_grad=True)
    logits_cl = logits.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    for name, sums in (("label sums, class masks", _masked_label_sums),
                       ("label sums, bins (scatter_add, bincount)", _binned_label_sums)):
        for layout, z in (("NCHW", logits), ("channels_last", logits_cl)):
            def fwd_bwd(sums=sums, z=z):
                inter, p_sum, _, ce = sums(*softmax_parts(z, y), y, False)
                (inter.sum() + p_sum.sum() + ce).backward()
            timed(f"{name}, {layout}, forward + backward (real labels)", fwd_bwd, 10)

    eager = step.step_fn if hasattr(step, "step_fn") else step
    for x, y in ready[:2]:
        eager(x, y)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if dev.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for x, y in ready[:3]:
            eager(x, y)
        sync()
    sort = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=25, max_name_column_width=60)
    print("3 eager steps, kernels by total GPU time:\n" + table)
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    print(f"GPU kernels per step: {len(kernels) / 3:.0f}")


if __name__ == "__main__":
    main()
