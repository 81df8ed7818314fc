"""What long commands show on stderr: one rich progress bar while they work, then one plain
summary paragraph. The bar is drawn only when stderr is a terminal (logs and tests see the
summary alone) and never with ``quiet``; ``quiet`` also silences the summary. Errors are
the callers' to print, always.

    with ProgressBar(len(images), "scoring", quiet) as bar:
        for image in bar.track(images):
            ...
    summary("Scored 16 images ...", quiet)
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")


def stderr_console(highlight: bool = False) -> Console:
    """A rich console writing to ``sys.stderr`` (looked up at each write, so a redirected or
    captured stderr gets the text)."""
    return Console(stderr=True, highlight=highlight, log_path=False)


def default_columns() -> tuple[ProgressColumn, ...]:
    """label, bar, done/total, elapsed time, time remaining."""
    return (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn())


def stage_columns() -> tuple[ProgressColumn, ...]:
    """For a few named stages of unknown length: spinner, stage name, bar, done/total,
    elapsed time."""
    return (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
            MofNCompleteColumn(), TimeElapsedColumn())


class ProgressBar:
    """A context manager: one rich bar over ``total`` steps (None: unknown) named ``label``.

    Shown when not ``quiet``, stderr is a terminal and there is more than one step; otherwise
    every method still works and draws nothing. ``columns`` replaces the default columns
    (``fields`` are the task fields they read); the bar vanishes when done unless
    ``transient`` is False. Lines printed with :meth:`line` go above a shown bar.
    """

    def __init__(self, total: int | None, label: str, quiet: bool = False, *,
                 columns: Sequence[ProgressColumn] | None = None, transient: bool = True,
                 console: Console | None = None, **fields: Any) -> None:
        self.console = console or stderr_console()
        self.quiet = quiet
        self.shown = not quiet and self.console.is_terminal and (total is None or total > 1)
        self.total, self.completed = total, 0
        self.progress = Progress(*(columns or default_columns()), console=self.console,
                                 disable=not self.shown, transient=transient,
                                 redirect_stdout=False)  # stdout may be a --json object
        self.task = self.progress.add_task(label, total=total, **fields)

    def __enter__(self) -> ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def advance(self, steps: int = 1, *, label: str | None = None, **fields: Any) -> None:
        """``steps`` more done (the label and task fields updated too); an estimated total
        that turns out too small grows with the count."""
        self.completed += steps
        if label is not None:
            fields["description"] = label
        if self.total is not None and self.completed > self.total:
            self.total = self.completed
            fields["total"] = self.total
        self.progress.update(self.task, advance=steps, **fields)

    def update(self, *, label: str | None = None, total: int | None = None,
               **fields: Any) -> None:
        """Change the label, the total or the task fields, without advancing."""
        if total is not None:
            self.total = fields["total"] = total
        if label is not None:
            fields["description"] = label
        self.progress.update(self.task, **fields)

    def track(self, items: Iterable[T]) -> Iterator[T]:
        """Yield ``items``, advancing one step after each."""
        for item in items:
            yield item
            self.advance()

    def line(self, text: str) -> None:
        """Print ``text`` (plain, one line) on stderr, above the bar when it is shown."""
        if self.shown:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, file=sys.stderr, flush=True)


def summary(text: str, quiet: bool = False) -> None:
    """Print ``text`` on stderr as one paragraph (newlines become spaces) unless ``quiet``."""
    if not quiet:
        print(" ".join(text.splitlines()), file=sys.stderr, flush=True)


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 image"``, ``"16 images"``: ``n`` and ``noun``, plural when n != 1 (``plural``
    for irregular nouns)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def numbers(values: dict[str, float | None], digits: int = 3) -> str:
    """``"LV 0.941, MYO 0.884, LA 0.921"``: each key and its value (see :func:`number`)."""
    return ", ".join(f"{k} {number(v, digits)}" for k, v in values.items())


def number(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals, or ``"n/a"`` when it is None or NaN."""
    if value is None or value != value:
        return "n/a"
    return f"{value:.{digits}f}"


def duration(seconds: float) -> str:
    """``"42 s"``, ``"3 min 5 s"``, ``"2 h 4 min"``: a time span for people."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
