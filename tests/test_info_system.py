"""`echoseg info --system`: the machine, versions, runtimes and fast paths, text and JSON."""

from __future__ import annotations

import json
import os

import torch

from echoseg import native, system_info
from echoseg.cli import main
from echoseg.inference.runtimes import resolve_runtime


def test_json_describes_this_machine(capsys):
    assert main(["info", "--system", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cpu"]["cores"] == os.cpu_count()
    assert report["cpu"]["torch_threads"] == torch.get_num_threads()
    assert report["packages"]["torch"] == torch.__version__
    assert report["runtimes"]["auto_cpu"] == resolve_runtime("auto", "cpu")
    assert "torch" in report["runtimes"]["installed"]
    assert set(report["fast_paths"]["kernels"]) == {"bn_mish", "class_sums", "interleave"}
    assert report["gpu"] == ([] if not torch.cuda.is_available() else report["gpu"])


def test_text_names_kernels_not_in_use_and_why(capsys, monkeypatch):
    monkeypatch.setattr(native, "_loaded", {"bn_mish": None})
    monkeypatch.setattr(native, "_why_not", {"bn_mish": native.NO_VECTORS})
    monkeypatch.setattr(system_info, "kernel_status", native.status)
    assert main(["info", "--system"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["CPU", "GPU", "Python", "Packages",
                                                   "Runtimes", "C", "Fused"]
    assert lines[5] == f"C kernels  none; not used: bn_mish ({native.NO_VECTORS})"


def test_info_without_data_or_system_is_one_line(capsys):
    assert main(["info"]) == 2
    assert capsys.readouterr().err.strip() == "echoseg: error: give a dataset folder DATA, or " \
                                              "--system"
