"""Run file reading over a thread pool (decoders release the GIL, so threads overlap well)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Number of reader threads: twice the CPU count, at most 16."""
    return min(16, 2 * (os.cpu_count() or 1))


def thread_map(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> list[R]:
    """Return ``[fn(x) for x in items]`` computed on ``workers`` threads, in input order.

    The first exception raised by ``fn`` (in input order) propagates.
    """
    items = list(items)
    workers = workers or default_workers()
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))
