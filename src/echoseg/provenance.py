"""Where a run came from: git commit, package versions, machine, seed, the ``ECHOSEG_*``
switches, start and end time (and, written at the end, which C kernels ran)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("echoseg", "torch", "numpy", "scipy", "albumentations", "SimpleITK", "onnxruntime")


def git_commit(repo: Path | None = None) -> str | None:
    """The git commit of the echoseg source tree (with ``-dirty`` if modified), or None.

    ``ECHOSEG_GIT_COMMIT``, when set, wins: a tree copied to another machine (e.g. a rented GPU) may
    carry no ``.git`` or a stale one, so the caller names the commit it shipped.
    """
    if os.environ.get("ECHOSEG_GIT_COMMIT"):
        return os.environ["ECHOSEG_GIT_COMMIT"]
    repo = repo or Path(__file__).resolve().parents[3]
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "describe", "--always", "--dirty", "--abbrev=40"],
            capture_output=True, text=True, timeout=5, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions (None: not installed) of ``names``, by default the packages that
    decide a run's numbers."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_description(device: str) -> str:
    """A human description of the device: the GPU name, or the CPU model and thread count."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"{cpu_model()}, {torch.get_num_threads()} threads"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else the machine architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} CPU"


SIMD_FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "VNNI",
              "avx512_bf16": "BF16", "amx_tile": "AMX", "asimd": "NEON"}


def cpu_flags() -> list[str]:
    """The vector-instruction flags of the CPU that decide kernel speed (AVX2, AVX-512, VNNI,
    BF16, AMX, NEON), from /proc/cpuinfo; empty where it cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                have = set(line.split(":", 1)[1].split())
                return [name for flag, name in SIMD_FLAGS.items() if flag in have]
    except OSError:
        pass
    return []


def machine_description() -> str:
    """One line naming the CPU, its vector flags and core count, e.g. 'AMD EPYC (AVX2 only;
    no AVX-512), 2 cores'."""
    flags = cpu_flags()
    kind = ", ".join(flags) if flags else "flags unknown"
    if "AVX2" in flags and "AVX-512" not in flags:
        kind = "AVX2 only, no AVX-512"
    return f"{cpu_model()} ({kind}), {os.cpu_count()} cores"


def now() -> str:
    """The current UTC time as an ISO 8601 string (seconds)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def collect(device: str, seed: int) -> dict:
    """The provenance record written to provenance.json and into every checkpoint."""
    return {
        "git_commit": git_commit(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "device_name": device_description(device),
        "seed": seed,
        "environment": switches(),
        "start_time": now(),
        "end_time": None,
    }


# set by the caller or the machine, not switches of the computation
_NOT_SWITCHES = ("ECHOSEG_CACHE", "ECHOSEG_KERNEL_CACHE", "ECHOSEG_GIT_COMMIT")


def switches() -> dict[str, str]:
    """The ``ECHOSEG_*`` environment variables that choose between computation paths (fast
    kernels on or off, compiler flags), as set for this run."""
    return {k: v for k, v in sorted(os.environ.items())
            if k.startswith("ECHOSEG_") and k not in _NOT_SWITCHES}
