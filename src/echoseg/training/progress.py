"""A rich progress bar for training (epoch, ETA, loss, validation Dice) with a quiet mode."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from echoseg.console import ProgressBar, stderr_console


class TrainingProgress(ProgressBar):
    """Context manager: ``advance(loss)`` per batch, ``end_epoch(...)`` per epoch. The bar is
    drawn on a terminal only; the per-epoch lines print unless ``quiet``."""

    def __init__(self, epochs: int, batches_per_epoch: int, start_epoch: int, quiet: bool):
        self.batches = batches_per_epoch
        self.epochs = epochs
        columns = (
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(),
            MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  val Dice {task.fields[dice]}"))
        remaining = max(0, epochs - start_epoch + 1) * batches_per_epoch
        super().__init__(remaining, "train", quiet, columns=columns, transient=False,
                         console=stderr_console(highlight=True), epoch=start_epoch,
                         epochs=epochs, loss=float("nan"), dice="-")

    def __enter__(self) -> TrainingProgress:
        super().__enter__()
        return self

    def advance(self, loss: float) -> None:  # type: ignore[override]
        """One training batch done with this loss."""
        super().advance(1, loss=loss)

    def end_epoch(self, epoch: int, train_loss: float, metrics: dict[str, float]) -> None:
        """Show the epoch's validation Dice (LV/MYO/LA) and print a line that stays."""
        dice = "/".join(f"{metrics[k]:.3f}" for k in ("val_dice_LV", "val_dice_MYO", "val_dice_LA"))
        self.update(epoch=min(epoch + 1, self.epochs), dice=dice)
        if not self.quiet:
            self.console.log(f"epoch {epoch}: train loss {train_loss:.4f}, "
                             f"val loss {metrics['val_loss']:.4f}, val Dice LV/MYO/LA {dice}")
