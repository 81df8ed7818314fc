"""echoseg's C kernels: compiled on first use with the system C compiler, loaded with ctypes.

Each ``NAME.c`` here (with the ``*.h`` headers beside it) is built once per source, compiler,
flags and CPU into ``$ECHOSEG_KERNEL_CACHE`` (default: ``kernels/`` in echoseg's cache,
``$ECHOSEG_CACHE`` or ``~/.cache/echoseg``), with ``-O3 -march=native`` and OpenMP (then
``$ECHOSEG_NATIVE_FLAGS``, e.g. ``-mno-avx512bf16``), and the shared library is written
atomically so that concurrent processes never load a half-written file. Building takes under
a second; it needs no PyTorch headers and no build system, only ``cc`` (or ``$CC``), which
``torch.compile`` on CPU needs as well. The libraries link ``libgomp.so.1``, the OpenMP
runtime PyTorch has already loaded, so both share one thread pool.

:func:`load` returns ``None`` when no compiler or no OpenMP is available, when the build has
no vector path (the CPU lacks AVX-512 F/BW/VL: the kernels' scalar loops alone would be slower
than PyTorch's operators) or ``ECHOSEG_NATIVE=0``; callers then use PyTorch's own operators.
That is the normal case on many machines, so it is silent: :func:`status` (stored in every
run's provenance.json) records why. Only when a setting of the user's did not take effect (a
``$CC`` that does not build, ``$ECHOSEG_NATIVE_FLAGS`` that leave no vector path, or
``ECHOSEG_NATIVE=1`` asking for the kernels) does one RuntimeWarning say why.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from importlib import resources
from pathlib import Path

_FLAGS = ["-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-shared", "-fPIC"]
_X86_FLAGS = ["-mprefer-vector-width=512"]  # gcc would use 256-bit vectors on some AVX-512 CPUs
_loaded: dict[str, ctypes.CDLL | None] = {}
_why_not: dict[str, str] = {}  # library -> why it is not in use
NO_VECTORS = "this CPU or compiler has no AVX-512 (F, BW, VL) vector path"

# ctypes shorthands for signatures: a pointer (a tensor's data_ptr(), or None for NULL), int64,
# int and float
PTR, I64, INT, FLOAT = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_float


def load(name: str, signatures: dict[str, tuple[list, object]]) -> ctypes.CDLL | None:
    """The shared library built from ``NAME.c`` in this package, its functions typed by
    ``signatures`` ({function: (argtypes, restype)}), or None where it cannot be built or has no
    vector path (see the module docstring: :func:`status` says why; the result is remembered
    for the process)."""
    if name not in _loaded:
        _loaded[name] = _build_and_load(name, signatures)
    return _loaded[name]


def call(lib: ctypes.CDLL, function: str, *args):
    """``lib.function(threads, *args)``: every kernel takes PyTorch's intra-op thread count
    first; tensors are passed as their data pointers (None is NULL). Returns the result."""
    import torch

    values = [a.data_ptr() if isinstance(a, torch.Tensor) else a for a in args]
    return getattr(lib, function)(torch.get_num_threads(), *values)


def status() -> dict[str, dict]:
    """The libraries this process has asked for so far: {name: {"in_use": True}} or
    {name: {"in_use": False, "reason": why}} (PyTorch's operators ran instead)."""
    return {name: {"in_use": True} if lib is not None
            else {"in_use": False, "reason": _why_not.get(name, "unavailable")}
            for name, lib in sorted(_loaded.items())}


def _build_and_load(name: str, signatures: dict[str, tuple[list, object]]) -> ctypes.CDLL | None:
    if os.environ.get("ECHOSEG_NATIVE", "1") == "0":
        return _unavailable(name, "turned off by ECHOSEG_NATIVE=0", asked=False)
    try:
        lib = ctypes.CDLL(str(_build(name)))
    except (OSError, subprocess.SubprocessError) as exc:
        return _unavailable(name, _first_line(exc), asked="CC" in os.environ)
    try:
        if lib.echoseg_vector_lanes() == 0:
            return _unavailable(name, NO_VECTORS, asked="ECHOSEG_NATIVE_FLAGS" in os.environ)
        for function, (argtypes, restype) in signatures.items():
            getattr(lib, function).argtypes = argtypes
            getattr(lib, function).restype = restype
    except AttributeError as exc:  # a library without a function it must have: a bug, say it
        return _unavailable(name, _first_line(exc), asked=True)
    _why_not.pop(name, None)
    return lib


def _unavailable(name: str, reason: str, asked: bool) -> None:
    """Record why library ``name`` is not used; warn when the user's setting caused it."""
    _why_not[name] = reason
    if asked or os.environ.get("ECHOSEG_NATIVE") == "1":
        warnings.warn(f"echoseg: C kernel {name!r} unavailable ({reason}); using PyTorch's "
                      "operators instead", RuntimeWarning, stacklevel=4)
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _build(name: str) -> Path:
    """Path of the compiled library for ``NAME.c``, compiling it if the cache lacks it."""
    package = resources.files(__name__)
    source = package.joinpath(f"{name}.c").read_bytes()
    headers = {f.name: f.read_bytes() for f in package.iterdir() if f.name.endswith(".h")}
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        raise OSError(f"no C compiler {compiler!r} on PATH (set CC)")
    flags = _FLAGS + (_X86_FLAGS if platform.machine().lower() in ("x86_64", "amd64") else [])
    flags += os.environ.get("ECHOSEG_NATIVE_FLAGS", "").split()
    parts = [source, *(headers[h] for h in sorted(headers)),
             *(text.encode() for text in (compiler, " ".join(flags), _version(compiler), _cpu()))]
    key = hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]
    from echoseg.paths import default_cache_dir

    cache = Path(os.environ.get("ECHOSEG_KERNEL_CACHE") or default_cache_dir() / "kernels")
    target = cache / f"{name}-{key}.so"
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        src, out = Path(tmp) / f"{name}.c", Path(tmp) / f"{name}.so"
        src.write_bytes(source)
        for header, text in headers.items():
            (Path(tmp) / header).write_bytes(text)
        done = subprocess.run([compiler, *flags, "-o", str(out), str(src), "-lm"],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise OSError(f"{compiler} failed on {name}.c: "
                          f"{(done.stderr.strip().splitlines() or ['no message'])[0]}")
        os.replace(out, target)
    return target


@functools.cache
def _version(compiler: str) -> str:
    return subprocess.run([compiler, "--version"], capture_output=True, text=True,
                          timeout=60).stdout


@functools.cache
def _cpu() -> str:
    """What -march=native depends on: the CPU's feature flags on Linux, else its name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()
