"""The training loop: one function that turns a Config into a run folder (see DESIGN.md).

RUN/config.yaml, provenance.json, splits.json, history.csv, last.pt (every epoch), best.pt
(when the validation Dice improves). ``resume=True`` continues a killed run exactly.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path

import torch

from echoseg import native, provenance
from echoseg.atomic import atomic_write_text
from echoseg.checkpoint import load_checkpoint, save_checkpoint, snapshot_checkpoint
from echoseg.config import Config, dump_config, to_dict
from echoseg.devices import resolve_device
from echoseg.errors import EchosegError
from echoseg.labels import STRUCTURES
from echoseg.losses import build_loss
from echoseg.models import build_model
from echoseg.restore import load_optimizer, load_weights, restoring
from echoseg.training import compiling, swa
from echoseg.training.batches import BatchSource
from echoseg.training.cuda_graph import CudaGraphStep
from echoseg.training.data import load_training_arrays
from echoseg.training.distill import Teachers, soft_cross_entropy
from echoseg.training.heap import keep_freed_memory
from echoseg.training.optim import EarlyStopping, build_optimizer, build_scheduler, step_scheduler
from echoseg.training.progress import TrainingProgress
from echoseg.training.resuming import check_resume
from echoseg.training.runfolder import run_folder

READ_EVERY = 10
HISTORY_COLUMNS = ["epoch", "seconds", "train_loss", "val_loss",
                   *[f"val_dice_{n}" for n in STRUCTURES], "val_dice_mean", "lr"]


def prepare_device(device: torch.device, threads: int = 0) -> None:
    """Process-wide settings for fast training on ``device``: on the CPU keep freed memory
    (see heap.py) and use ``threads`` intra-op threads (0 = all cores); on CUDA let cuDNN
    pick the fastest convolutions for the fixed shapes. Returns nothing."""
    if device.type == "cpu":
        keep_freed_memory()
        if threads:
            torch.set_num_threads(threads)
    else:
        torch.backends.cudnn.benchmark = True


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 when asked or (``auto``) when the hardware runs it fast; None means fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None


def step_parts(config: Config, model: torch.nn.Module, device: torch.device) -> tuple:
    """What a training step needs for ``config``: ``(model, step, loss_fn, optimizer, amp)``
    -- ``model`` moved to ``device`` in the run's memory layout; ``step(x, y, teachers=None,
    distill_weight=0.0)``, which runs one :func:`train_step` on a batch and returns its
    detached loss (through ``model``'s ``train.compile`` wrapper, or replayed from a CUDA
    graph: see :func:`~echoseg.training.compiling.resolve_mode`); the run's loss; its
    optimiser over ``model``'s parameters; and its autocast dtype (None: fp32). Training and
    ``echoseg bench --train`` both build their steps here. Raises ConfigError for a
    ``train.compile`` the device cannot run."""
    train_cfg = config.train
    mode = compiling.resolve_mode(train_cfg, device)
    model = model.to(device)
    if train_cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    stepping = compiling.for_training(model, mode)
    optimizer = build_optimizer(model.parameters(), train_cfg)
    loss_fn = build_loss(config.loss)
    amp = autocast_dtype(train_cfg.precision, device)

    def step(x, y, teachers=None, distill_weight: float = 0.0) -> torch.Tensor:
        return train_step(stepping, x, y, loss_fn, optimizer, amp, train_cfg.channels_last,
                          teachers, distill_weight)

    if mode == "cuda-graph":
        step = CudaGraphStep(step, optimizer)
    return model, step, loss_fn, optimizer, amp


def train(config: Config, out_dir: str | Path, *, resume: bool = False, device: str = "auto",
          quiet: bool = False) -> dict:
    """Train ``config`` into ``out_dir``; returns the last history row plus ``best_epoch``.

    The run folder is created if needed, proved writable and locked for the whole run; a
    start that fails before the first checkpoint leaves nothing behind (see runfolder.py).
    With ``resume`` the config may extend train.epochs but not change what was trained (see
    resuming.py). Raises EchosegError for bad data, an existing run without ``resume``, a
    folder another process trains in, such a change, or a NaN loss (the last good checkpoint
    is kept).
    """
    with run_folder(out_dir) as out:
        return _train(config, out, resume=resume, device=device, quiet=quiet)


def _train(config: Config, out: Path, *, resume: bool, device: str, quiet: bool) -> dict:
    """The body of :func:`train`, in the prepared and locked run folder ``out``."""
    dev = resolve_device(device)
    swa.check_swa_epochs(config.train.swa_epochs, config.train.epochs)
    compiling.resolve_mode(config.train, dev)  # a mode error before anything is written
    prepare_device(dev, config.train.threads)
    if (out / "last.pt").exists() and not resume:
        raise EchosegError(f"{out}: a run is already there; pass --resume or choose another --out")
    if resume and not (out / "last.pt").exists():
        raise EchosegError(f"{out}: nothing to resume (no last.pt)")
    if resume:  # before anything is read or written: a refused resume changes nothing
        trained = load_checkpoint(out / "last.pt")
        check_resume(out, config, trained.get("config") or {}, _epochs_done(trained))

    torch.manual_seed(config.seed)
    arrays = load_training_arrays(config, out)
    model = build_model(config.model)
    if config.train.init_from and not resume:
        _init_weights(model, config.train.init_from)
    model, step, loss_fn, optimizer, amp = step_parts(config, model, dev)
    cl = config.train.channels_last
    scheduler = build_scheduler(optimizer, config.train)
    stopper = EarlyStopping(config.train.early_stopping_patience)
    history: list[dict] = []
    prov = provenance.collect(str(dev), config.seed)
    start_epoch = 1
    average = swa.start_averaging(model, config.train.swa_epochs)
    teachers = Teachers(config.train.teachers, dev, cl) if config.train.teachers else None

    if resume:
        last = out / "last.pt"
        state = load_checkpoint(last, map_location=dev, resume=True)
        load_weights(model, state, last)
        load_optimizer(optimizer, state["optimizer"], last)
        if scheduler is not None and state.get("scheduler"):
            with restoring(last, "scheduler state"):
                scheduler.load_state_dict(state["scheduler"])
        with restoring(last, "early-stopping state"):
            stopper = EarlyStopping(**state["early_stopping"])
        if average is not None and state.get("swa"):
            with restoring(last, "weight average (swa)"):
                average.load_state_dict(state["swa"])
        with restoring(last, "history"):
            history = [row for row in state["history"] if row["epoch"] != "swa"]
            prov = {**state["provenance"],
                    "resumed": [*state["provenance"].get("resumed", []), provenance.now()]}
            start_epoch = state["epoch"] + 1
    atomic_write_text(out / "config.yaml", dump_config(config))
    atomic_write_text(out / "provenance.json", json.dumps(prov, indent=2))

    on_device = dev.type == "cuda" and config.augment.device in ("auto", "gpu") and \
        config.augment.preset in ("affine", "none")
    batches = BatchSource(arrays.train_images, arrays.train_labels, config.train.batch_size,
                          config.augment.preset, dev, config.seed, on_device=on_device,
                          max_batches=config.train.max_batches_per_epoch)
    # validation images stay on a GPU: an upload from host memory waits for the GPU to finish
    val_data = (arrays.val_images, arrays.val_labels) if dev.type == "cpu" else \
        (torch.as_tensor(arrays.val_images, device=dev),
         torch.as_tensor(arrays.val_labels, device=dev))
    with TrainingProgress(config.train.epochs, len(batches), start_epoch, quiet) as progress:
        for epoch in range(start_epoch, config.train.epochs + 1):
            if stopper.should_stop:
                break
            t0 = time.perf_counter()
            train_loss = _train_epoch(model, step, batches, epoch, progress, out, teachers,
                                      config.train.distill_weight)
            metrics = _validate(model, val_data, loss_fn, dev, amp, cl)
            lr = optimizer.param_groups[0]["lr"]
            step_scheduler(scheduler, metrics["val_dice_mean"])
            row = {"epoch": epoch, "seconds": round(time.perf_counter() - t0, 2),
                   "train_loss": train_loss, **metrics, "lr": lr}
            history.append(row)
            improved = stopper.update(metrics["val_dice_mean"], epoch)
            if swa.averages_epoch(epoch, config.train.swa_epochs, config.train.epochs):
                average.update_parameters(model)
            state = {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "early_stopping": vars(stopper).copy(), "epoch": epoch, "history": history,
                "config": to_dict(config), "provenance": prov,
                "swa": average.state_dict() if average is not None else None,
            }
            save_checkpoint(out / "last.pt", state)
            if improved:
                snapshot_checkpoint(out / "last.pt", out / "best.pt")
            _write_history(out / "history.csv", history)
            progress.end_epoch(epoch, train_loss, metrics)

    if average is not None and int(average.n_averaged) > 0 and \
            history and history[-1]["epoch"] == config.train.epochs:
        _finish_swa(average, batches, val_data, loss_fn, dev, amp, cl, stopper, history, config,
                    prov, out)

    prov["end_time"] = provenance.now()
    prov["native_kernels"] = native.status()  # known only once the steps have asked for them
    atomic_write_text(out / "provenance.json", json.dumps(prov, indent=2))
    return {**(history[-1] if history else {}), "best_epoch": stopper.best_epoch,
            "best_val_dice_mean": stopper.best}


def train_step(model, x: torch.Tensor, y: torch.Tensor, loss_fn, optimizer,
               amp: torch.dtype | None, channels_last: bool, teachers=None,
               distill_weight: float = 0.0) -> torch.Tensor:
    """One optimisation step on a batch; returns the fp32 loss as a 0-dim tensor on the device.

    With ``teachers`` (:class:`~echoseg.training.distill.Teachers`) the loss is
    ``(1 - distill_weight) * loss + distill_weight * soft cross-entropy`` to their mean softmax.

    The loss is not read back here, so a GPU step does not wait for the previous one: the
    caller checks it (a non-finite loss has already corrupted the weights in memory, which is
    why the loop then stops without saving them).
    """
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    # no autocast cache: each weight is cast once per step anyway, and a CUDA graph capture
    # forbids it
    with torch.autocast(x.device.type, dtype=amp or torch.float32, enabled=amp is not None,
                        cache_enabled=False):
        outputs = model(x)
    loss = loss_fn(outputs, y)  # float32 inside, whatever the logits' dtype (see losses/)
    if teachers is not None:
        final = outputs[0] if isinstance(outputs, list) else outputs
        soft = soft_cross_entropy(final, teachers.probabilities(x, amp))
        loss = (1 - distill_weight) * loss + distill_weight * soft
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def _train_epoch(model, step, batches: BatchSource, epoch: int, progress: TrainingProgress,
                 out: Path, teachers=None, distill_weight: float = 0.0) -> float:
    model.train()
    read_every = _read_interval(batches.device)
    total, count, pending = 0.0, 0, []
    for b, (x, y) in enumerate(batches.epoch(epoch), start=1):
        loss = step(x, y, teachers, distill_weight)
        pending.append((b, len(x), loss))
        if b % read_every and b < len(batches):
            continue
        for batch, n, loss in pending:
            value = float(loss)
            if not math.isfinite(value):
                raise EchosegError(
                    f"epoch {epoch}, batch {batch}: the loss is {value}; training stopped, "
                    f"the last good checkpoint is {out / 'last.pt'} (try a lower train.lr)")
            total += value * n
            count += n
            progress.advance(value)
        pending.clear()
    return total / max(count, 1)


def _finish_swa(average, batches, val_data, loss_fn, dev, amp, cl, stopper, history, config,
                prov, out: Path) -> None:
    """BatchNorm statistics and validation of the averaged weights: a history row with epoch
    ``swa``, RUN/swa.pt, and best.pt too when the average beats every epoch."""
    t0 = time.perf_counter()
    swa_model = swa.finish_averaging(average, batches.epoch(config.train.epochs + 1), amp, cl)
    metrics = _validate(swa_model, val_data, loss_fn, dev, amp, cl)
    history.append({"epoch": "swa", "seconds": round(time.perf_counter() - t0, 2),
                    "train_loss": float("nan"), **metrics, "lr": float("nan")})
    state = {"model": swa_model.state_dict(), "epoch": "swa", "history": history,
             "config": to_dict(config), "provenance": prov,
             "swa_epochs": int(average.n_averaged)}
    save_checkpoint(out / "swa.pt", state)
    if stopper.update(metrics["val_dice_mean"], config.train.epochs + 1):
        stopper.best_epoch = "swa"
        snapshot_checkpoint(out / "swa.pt", out / "best.pt")
    _write_history(out / "history.csv", history)


def _read_interval(device: torch.device) -> int:
    """Steps between reads of the loss. A read waits for the GPU, so on CUDA the loss is read
    every READ_EVERY steps (the GPU stays busy, a diverging run still stops within a few
    batches); on the CPU every step, for a live progress bar."""
    return 1 if device.type == "cpu" else READ_EVERY


def _validate(model, val_data, loss_fn, dev, amp, cl) -> dict[str, float]:
    from echoseg.training.validate import validate

    images, labels = val_data
    if len(images) == 0:
        return {"val_loss": float("nan"), **{f"val_dice_{n}": float("nan") for n in STRUCTURES},
                "val_dice_mean": float("nan")}
    return validate(model, images, labels, loss_fn, dev, amp, cl)


def _init_weights(model: torch.nn.Module, source: str) -> None:
    """Load the weights of ``source`` (bundled name, run folder or checkpoint) into ``model``."""
    from echoseg.inference.loading import resolve_model_path

    path = resolve_model_path(source)
    load_weights(model, load_checkpoint(path), path)


def _epochs_done(state: dict) -> int:
    """The last epoch a checkpoint saved (0 when it does not say)."""
    epoch = state.get("epoch")
    return epoch if isinstance(epoch, int) else 0


def _write_history(path: Path, history: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())

