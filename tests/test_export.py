"""ONNX / OpenVINO export of the bundled model: round trips against PyTorch on real images,
the graph's shape, metadata, int8, and the `echoseg export` command's exit codes and errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from echoseg.cli import main  # noqa: E402
from echoseg.errors import EchosegError  # noqa: E402
from echoseg.export.checks import mean_dice  # noqa: E402
from echoseg.export.images import load_grid_images  # noqa: E402
from echoseg.export.metadata import (  # noqa: E402
    build_metadata,
    config_from_metadata,
    read_metadata,
    weights_digest,
)
from echoseg.export.runners import onnx_runner, run_batched  # noqa: E402
from echoseg.export.to_onnx import export_onnx  # noqa: E402

# the samples_root fixture's folder, for the module-scoped fixtures (built once: they are slow)
SAMPLES = Path(__file__).resolve().parent / "data" / "camus224"


@pytest.fixture(scope="module")
def segmenter():
    from echoseg.inference import load_model

    return load_model("lightweight", device="cpu")


@pytest.fixture(scope="module")
def grids(segmenter):
    return load_grid_images(SAMPLES, segmenter.size, 8, split="val")


@pytest.fixture(scope="module")
def reference(segmenter, grids) -> np.ndarray:
    return np.concatenate([segmenter.logits(grids.images[i:i + 4]).numpy()
                           for i in range(0, len(grids), 4)])


@pytest.fixture(scope="module")
def exported(segmenter, tmp_path_factory) -> Path:
    meta = build_metadata(segmenter.config, name="lightweight",
                          weights_sha256=weights_digest(segmenter.model),
                          provenance={"source": "lightweight"})
    return export_onnx(segmenter.model, segmenter.config,
                       tmp_path_factory.mktemp("onnx") / "lw.onnx", metadata=meta)


def test_onnx_matches_pytorch_on_real_images(exported, grids, reference):
    logits = run_batched(onnx_runner(exported), grids.images)
    assert logits.shape == reference.shape == (len(grids), 4, 224, 224)
    assert np.abs(logits - reference).max() < 1e-3
    assert np.mean(logits.argmax(1) == reference.argmax(1)) > 0.999


def test_onnx_graph_is_folded_with_one_dynamic_batch_input(exported, grids):
    import onnx

    graph = onnx.load(str(exported)).graph
    assert not [n for n in graph.node if n.op_type == "BatchNormalization"]
    assert [i.name for i in graph.input] == ["image"]
    assert [o.name for o in graph.output] == ["logits"]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 224, 224]
    run = onnx_runner(exported)
    assert run(grids.images[:1]).shape == (1, 4, 224, 224)
    assert run(grids.images[:3]).shape == (3, 4, 224, 224)


def test_metadata_round_trip(exported, segmenter):
    meta = read_metadata(exported)
    assert config_from_metadata(meta, str(exported)) == segmenter.config
    assert meta["echoseg.size"] == "224"
    assert json.loads(meta["echoseg.classes"]) == ["background", "LV", "MYO", "LA"]
    assert "CC BY-NC-SA 4.0" in meta["echoseg.license"] and "Leclerc" in meta["echoseg.license"]
    assert meta["echoseg.weights_sha256"] == weights_digest(segmenter.model)
    assert meta["echoseg.postprocess"] == segmenter.config.postprocess
    assert meta["echoseg.precision"] == "fp32"
    assert json.loads(meta["echoseg.provenance"]) == {"source": "lightweight"}


def test_weights_digest_follows_the_weights(segmenter):
    import copy

    import torch

    other = copy.deepcopy(segmenter.model)
    assert weights_digest(other) == weights_digest(segmenter.model)
    with torch.no_grad():
        other.head.bias[0] += 1e-6
    assert weights_digest(other) != weights_digest(segmenter.model)


def test_read_metadata_refuses_foreign_files(tmp_path, segmenter):
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    with pytest.raises(EchosegError, match="notes.onnx: not an ONNX model file"):
        read_metadata(text)
    xml = tmp_path / "page.xml"
    xml.write_text("<html/>")
    with pytest.raises(EchosegError, match="page.xml: not an OpenVINO model file"):
        read_metadata(xml)
    plain = export_onnx(segmenter.model, segmenter.config, tmp_path / "plain.onnx")
    with pytest.raises(EchosegError, match="plain.onnx: no echoseg metadata"):
        read_metadata(plain)


def test_openvino_round_trip(exported, grids, reference, tmp_path):
    pytest.importorskip("openvino")
    from echoseg.export.runners import openvino_runner
    from echoseg.export.to_openvino import export_openvino

    xml = export_openvino(exported, tmp_path / "lw.xml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lw.bin", "lw.xml"]
    logits = run_batched(openvino_runner(xml), grids.images)
    assert np.abs(logits - reference).max() < 1e-3
    assert np.mean(logits.argmax(1) == reference.argmax(1)) > 0.999
    assert read_metadata(xml) == read_metadata(exported)


def test_int8_onnx_gives_valid_label_maps(exported, segmenter, grids, reference, tmp_path):
    from echoseg.export.quantize_onnx import quantize_onnx

    calibration = load_grid_images(SAMPLES, segmenter.size, 4, split="train")
    probe_labels = segmenter.logits(calibration.images).numpy().argmax(1)
    out, selection = quantize_onnx(exported, tmp_path / "int8.onnx", calibration.images,
                                   calibration.images, probe_labels, read_metadata(exported))
    labels = run_batched(onnx_runner(out), grids.images).argmax(1)
    assert labels.shape == (len(grids), 224, 224) and set(np.unique(labels)) <= {0, 1, 2, 3}
    dice = mean_dice(labels, reference.argmax(1))
    print(f"int8 vs fp32 mean Dice {dice:.4f}; selection {selection.summary()}")
    assert dice > 0.9
    assert selection.chosen in ("all", "float_ends") and set(selection.dice) == {"all",
                                                                                  "float_ends"}
    meta = read_metadata(out)
    assert meta["echoseg.precision"] == "int8"
    assert json.loads(meta["echoseg.quantization"])["chosen"] == selection.chosen
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8.onnx"]  # no temporaries left


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("extra, expected", [
    (["--format", "tflite"], "echoseg: error: --format tflite: unknown format"),
    (["--int8"], "echoseg: error: --int8 needs --calibration DATA"),
    (["--format", "openvino"], "echoseg: error: --out"),
])
def test_export_refuses_bad_options(extra, expected, tmp_path, capsys):
    assert main(["export", "lightweight", "--out", str(tmp_path / "m.onnx"), *extra]) == 2
    assert _one_error_line(capsys.readouterr().err).startswith(expected)
    assert not list(tmp_path.iterdir())


def test_export_names_the_missing_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    code = main(["export", "lightweight", "--format", "openvino", "--out",
                 str(tmp_path / "m.xml")])
    assert code == 2
    assert _one_error_line(capsys.readouterr().err) == (
        "echoseg: error: --format openvino needs OpenVINO: pip install 'echoseg[openvino]'")


def test_export_refuses_an_unknown_model(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nothing.pt"), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "no such model" in _one_error_line(capsys.readouterr().err)


def test_export_command_checks_itself(samples_root, tmp_path, monkeypatch, capsys):
    from echoseg.commands import export as command
    from echoseg.export import checks

    monkeypatch.setattr(command, "VERIFY_IMAGES", 4)
    out = tmp_path / "lw.onnx"
    assert main(["export", "lightweight", "--out", str(out), "--verify", str(samples_root),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    quality = tmp_path / "lw.quality.json"
    assert report["passed"] and report["files"] == [str(out), str(quality)] and out.is_file()
    assert report["verify"]["images"] == 4
    from echoseg.inference import load_model  # the file alone flags frames as its weights do

    assert load_model(out).quality == load_model("lightweight").quality
    assert report["verify"]["fp32"]["max_abs_logit_diff"] <= 1e-3

    monkeypatch.setattr(checks, "MAX_LOGIT_DIFF", 0.0)  # no export can pass this
    assert main(["export", "lightweight", "--out", str(out), "--verify", str(samples_root)]) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out and str(out) in captured.out
    assert "failed its check: max |Δlogit|" in _one_error_line(captured.err)
    assert out.is_file()

