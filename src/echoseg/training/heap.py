"""Keep freed memory in the process on glibc, so training steps do not page-fault it back in.

By default glibc returns large freed blocks (the activations of every step) to the OS, and the
next step faults them in again; on a 2-core CPU that halves training speed. Measured on an AMD
Zen 4, 2 threads, lightweight at 256x256 bf16: 3.9-4.2 -> 7.2-7.6 images/s. Trimming is switched
off altogether (a threshold of -1): with a finite one (1 GiB) the ~1-2 GiB of activations freed
at the end of a step were still handed back now and then, 60-230k page faults and 0.2-0.3 s in
one step out of two (a step takes 2.7-2.8 s without them).
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Set glibc's M_MMAP_MAX=0 (large blocks come from the heap too) and M_TRIM_THRESHOLD=-1
    (the heap never shrinks); returns False where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, -1))
