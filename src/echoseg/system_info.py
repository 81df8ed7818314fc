"""What this machine gives echoseg: CPU and its vector flags, threads, GPU, package versions,
which inference runtimes are installed and which one ``--runtime auto`` takes, and which C
kernels build and load here (``echoseg info --system``)."""

from __future__ import annotations

import os
import platform

from echoseg.provenance import cpu_flags, cpu_model, git_commit, package_versions

PACKAGES = ("echoseg", "torch", "numpy", "scipy", "SimpleITK", "opencv-python-headless",
            "albumentations", "pydicom", "onnx", "onnxruntime", "openvino", "nncf", "ray")


def kernel_status() -> dict[str, dict]:
    """Build (once, cached) and load every C kernel; {name: {"in_use": bool, "reason"?}}.
    A kernel not in use means PyTorch's own operators run instead (same results)."""
    from echoseg import native
    from echoseg.losses import class_sums
    from echoseg.models import bn_mish, upconv

    for module in (bn_mish, class_sums, upconv):
        module._library()
    return native.status()


def system_report(probe_kernels: bool = True) -> dict:
    """A JSON-able description of the machine and of the paths echoseg takes on it."""
    import torch

    from echoseg.inference.runtimes import RUNTIMES, installed, resolve_runtime
    from echoseg.models import mish

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] \
        if torch.cuda.is_available() else []
    report = {
        "cpu": {"model": cpu_model(), "flags": cpu_flags(), "cores": os.cpu_count(),
                "torch_threads": torch.get_num_threads(), "machine": platform.machine()},
        "gpu": gpus,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "packages": package_versions(PACKAGES),
        "runtimes": {"installed": [r for r in RUNTIMES[1:] if installed(r)],
                     "auto_cpu": resolve_runtime("auto", "cpu"),
                     "auto_cuda": resolve_runtime("auto", "cuda") if gpus else None},
        "fast_paths": {
            "cuda_graph_inference": bool(gpus),
            "fused_mish_compile": bool(mish._fused_ok and mish._have_cxx()),
            "kernels": kernel_status() if probe_kernels else {},
        },
    }
    return report


def render_system(report: dict) -> str:
    """The report as a few aligned text lines."""
    cpu = report["cpu"]
    kernels = report["fast_paths"]["kernels"]
    in_use = [k for k, v in kernels.items() if v["in_use"]]
    not_used = {k: v.get("reason", "") for k, v in kernels.items() if not v["in_use"]}
    packages = ", ".join(f"{k} {v}" for k, v in report["packages"].items() if v)
    lines = [
        ("CPU", f"{cpu['model']} ({', '.join(cpu['flags']) or 'no vector flags known'}), "
                f"{cpu['cores']} cores, torch uses {cpu['torch_threads']} threads"),
        ("GPU", ", ".join(report["gpu"]) or "none (CUDA not available)"),
        ("Python", f"{report['python']} on {report['platform']}"),
        ("Packages", packages),
        ("Runtimes", f"{', '.join(report['runtimes']['installed'])}; --runtime auto: "
                     f"{report['runtimes']['auto_cpu']} on the CPU"
                     + (f", {report['runtimes']['auto_cuda']} on CUDA (CUDA graphs)"
                        if report["runtimes"]["auto_cuda"] else "")),
        ("C kernels", (", ".join(in_use) or "none") + (
            "; not used: " + "; ".join(f"{k} ({r})" for k, r in not_used.items())
            if not_used else "")),
        ("Fused Mish", "torch.compile fusion on" if report["fast_paths"]["fused_mish_compile"]
         else "off (no C++ compiler or disabled): PyTorch's Mish"),
    ]
    return "\n".join(f"{name:<11}{value}" for name, value in lines)
