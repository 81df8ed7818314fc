"""A rich progress bar for training (epoch, ETA, loss, validation Dice) with a quiet mode."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainingProgress:
    """Context manager: ``advance(loss)`` per batch, ``end_epoch(...)`` per epoch."""

    def __init__(self, epochs: int, batches_per_epoch: int, start_epoch: int, quiet: bool):
        self.quiet = quiet
        self.batches = batches_per_epoch
        self.epochs = epochs
        self.console = Console(stderr=True, log_path=False)
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(),
            MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  val Dice {task.fields[dice]}"),
            console=self.console, disable=quiet, transient=False)
        remaining = max(0, epochs - start_epoch + 1) * batches_per_epoch
        self.task = self.progress.add_task("train", total=remaining, epoch=start_epoch,
                                           epochs=epochs, loss=float("nan"), dice="-")

    def __enter__(self) -> TrainingProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def advance(self, loss: float) -> None:
        """One training batch done with this loss."""
        self.progress.update(self.task, advance=1, loss=loss)

    def end_epoch(self, epoch: int, train_loss: float, metrics: dict[str, float]) -> None:
        """Show the epoch's validation Dice (LV/MYO/LA) and print a line that stays."""
        dice = "/".join(f"{metrics[k]:.3f}" for k in ("val_dice_LV", "val_dice_MYO", "val_dice_LA"))
        self.progress.update(self.task, epoch=min(epoch + 1, self.epochs), dice=dice)
        if not self.quiet:
            self.console.log(f"epoch {epoch}: train loss {train_loss:.4f}, "
                             f"val loss {metrics['val_loss']:.4f}, val Dice LV/MYO/LA {dice}")
