"""keep_freed_memory: memory a training step frees stays in the process for the next step."""

from __future__ import annotations

import ctypes
import sys

import pytest

from echoseg.training.heap import keep_freed_memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def test_a_freed_block_larger_than_a_gib_stays_in_the_heap():
    if not keep_freed_memory():
        pytest.skip("not glibc")
    libc = ctypes.CDLL("libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc older than 2.33")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.mallinfo2.restype = _MallInfo2
    size = 3 * 2**29  # 1.5 GiB of address space, never touched: costs no memory
    block = libc.malloc(size)
    assert block, "malloc failed"
    libc.free(block)
    # keepcost: the free space at the top of the heap that glibc could hand back to the OS.
    # A 1 GiB trim threshold handed such a block back, and the next step page-faulted it in.
    assert libc.mallinfo2().keepcost >= size
