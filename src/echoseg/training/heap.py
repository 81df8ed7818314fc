"""Keep freed memory in the process on glibc, so training steps do not page-fault it back in.

By default glibc returns large freed blocks (the activations of every step) to the OS, and the
next step faults them in again; on a 2-core CPU that halves training speed. Measured on an AMD
Zen 4, 2 threads, lightweight at 256x256 bf16: 3.9-4.2 -> 7.2-7.6 images/s.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Set glibc's M_MMAP_MAX=0 and M_TRIM_THRESHOLD=1 GiB; returns False where not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**30))
