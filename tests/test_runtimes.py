"""One model, any runtime: --runtime rules, the same labels from PyTorch, ONNX Runtime and
OpenVINO, exported files as models, and the export cache."""

from __future__ import annotations

import csv
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import echoseg
from echoseg.cli import main
from echoseg.config import to_dict
from echoseg.data.dataset import open_dataset
from echoseg.data.preprocess import image_to_grid
from echoseg.data.readers import read_image
from echoseg.errors import ConfigError, EchosegError
from echoseg.inference import runtimes
from echoseg.inference.runtimes import resolve_runtime

MIN_AGREEMENT = 0.999  # share of pixels with the same label, per image
MISSING = {"openvino": "--runtime openvino needs OpenVINO: pip install 'echoseg[openvino]'",
           "onnxruntime": "--runtime onnxruntime needs ONNX Runtime: pip install 'echoseg[onnx]'"}


def missing(monkeypatch, *names: str) -> None:
    """Make ``import name`` fail for each name, as when the package is not installed."""
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


def present(monkeypatch, *names: str) -> None:
    """Make ``import name`` succeed for each name (an empty stand-in module)."""
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))


@pytest.fixture(scope="module")
def images():
    """8 sample images (224x224 uint8) of tests/data/camus224: one per patient, the views and
    phases taken in turn (all 32 take too long on two busy cores)."""
    root = Path(__file__).resolve().parent / "data" / "camus224"
    samples = open_dataset(root).samples
    return [read_image(s.image_path)[0] for s in samples[::len(samples) // 8]]


@pytest.fixture(scope="module")
def torch_model():
    return echoseg.load_model("lightweight", runtime="torch")


@pytest.fixture(scope="module")
def torch_labels(torch_model, images):
    """Raw argmax label maps (N, 224, 224) of the PyTorch model on the sample images."""
    return predict_raw(torch_model, images)


@pytest.fixture(scope="module")
def torch_predictions(torch_model, images):
    """Post-processed label maps of the PyTorch model on the sample images."""
    return torch_model.predict_batch(images)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, torch_model):
    """lightweight exported by the exporter: {"onnx": path, "xml": path or None}."""
    from echoseg.export.metadata import build_metadata, weights_digest
    from echoseg.export.to_onnx import export_onnx

    folder = tmp_path_factory.mktemp("exported")
    meta = build_metadata(torch_model.config, name="lightweight",
                          weights_sha256=weights_digest(torch_model.model))
    onnx_path = export_onnx(torch_model.model, torch_model.config, folder / "lw.onnx",
                            metadata=meta)
    xml = None
    if runtimes.installed("openvino"):
        from echoseg.export.to_openvino import export_openvino

        xml = export_openvino(onnx_path, folder / "lw.xml")
    return {"onnx": onnx_path, "xml": xml}


def predict_raw(segmenter, images) -> np.ndarray:
    grid = np.stack([image_to_grid(im, segmenter.size) for im in images])
    return np.concatenate([segmenter.predict_grid(grid[i:i + 8]) for i in range(0, len(grid), 8)])


def assert_agree(labels: np.ndarray, reference: np.ndarray) -> None:
    agreement = (labels == reference).reshape(len(labels), -1).mean(1)
    assert agreement.min() >= MIN_AGREEMENT, agreement.min()


def need(runtime: str) -> None:
    pytest.importorskip(runtime)
    if runtime == "onnxruntime" or runtime == "openvino":
        pytest.importorskip("onnx")


# --- which runtime ---------------------------------------------------------------------------

def test_auto_is_torch_on_cuda_and_the_fastest_installed_on_the_cpu(monkeypatch):
    present(monkeypatch, "openvino", "onnxruntime")
    assert resolve_runtime("auto", "cuda") == resolve_runtime("auto", "cuda:1") == "torch"
    assert resolve_runtime("auto", "cpu") == "openvino"
    missing(monkeypatch, "openvino")
    assert resolve_runtime("auto", "cpu") == "onnxruntime"
    missing(monkeypatch, "onnxruntime")
    assert resolve_runtime("auto", "cpu") == "torch"
    assert resolve_runtime("torch", "cpu") == "torch"


def test_a_named_runtime_is_kept_or_refused_in_one_line(monkeypatch):
    present(monkeypatch, "openvino", "onnxruntime")
    assert resolve_runtime("onnxruntime", "cuda") == "onnxruntime"
    assert resolve_runtime("openvino", "cpu") == "openvino"
    missing(monkeypatch, "openvino", "onnxruntime")
    for name, message in MISSING.items():
        with pytest.raises(ConfigError) as info:
            resolve_runtime(name, "cpu")
        assert str(info.value) == message
    with pytest.raises(ConfigError, match="unknown runtime; valid: auto, torch, onnxruntime"):
        resolve_runtime("tensorrt", "cpu")


@pytest.mark.parametrize("runtime", ["openvino", "onnxruntime"])
@pytest.mark.parametrize("command", ["predict", "evaluate", "demo"])
def test_commands_refuse_a_missing_runtime_in_one_line(monkeypatch, tmp_path, capsys,
                                                       samples_root, command, runtime):
    missing(monkeypatch, runtime)
    out = tmp_path / "out"
    image = next(samples_root.rglob("*_ED.png"))
    args = {"predict": ["predict", "lightweight", str(image), "--out", str(out)],
            "evaluate": ["evaluate", "lightweight", "--data", str(samples_root), "--split",
                         "val", "--out", str(out)],
            "demo": ["demo", "--out", str(out)]}[command]
    assert main([*args, "--runtime", runtime, "--device", "cpu"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"echoseg: error: {MISSING[runtime]}\n" and not captured.out
    assert not out.exists()


def test_exported_files_refuse_runtimes_that_cannot_run_them(exported, tmp_path, capsys):
    image = tmp_path / "a.png"
    image.write_bytes(b"")  # never read: the model is refused first
    assert main(["predict", str(exported["onnx"]), str(image), "--out", str(tmp_path / "o"),
                 "--runtime", "torch", "--device", "cpu"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "cannot run with --runtime torch" in lines[0]
    if exported["xml"] is not None:
        with pytest.raises(ConfigError, match="cannot run with --runtime onnxruntime"):
            echoseg.load_model(exported["xml"], runtime="onnxruntime")


# --- the same labels whatever the runtime ----------------------------------------------------

@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_bundled_model_labels_agree_across_runtimes(runtime, images, torch_labels):
    need(runtime)
    segmenter = echoseg.load_model("lightweight", runtime=runtime)
    assert segmenter.runtime == runtime and segmenter.name == "lightweight"
    assert segmenter.model is not None  # the PyTorch model stays at hand (decoder outputs)
    assert_agree(predict_raw(segmenter, images), torch_labels)


@pytest.mark.parametrize("runtime", ["auto", "onnxruntime"])  # auto: OpenVINO when installed
def test_an_onnx_file_alone_is_the_bundled_model(runtime, exported, images, torch_model,
                                                 torch_predictions):
    need("onnxruntime" if runtime == "auto" else runtime)
    segmenter = echoseg.load_model(exported["onnx"], runtime=None if runtime == "auto" else runtime)
    assert segmenter.runtime in ("onnxruntime", "openvino") and segmenter.model is None
    assert segmenter.name == "lightweight" and segmenter.size == 224
    assert segmenter.postprocess_spec == "cca"
    assert to_dict(segmenter.config) == to_dict(torch_model.config)
    predictions = segmenter.predict_batch(images)
    for labels, reference in zip(predictions, torch_predictions, strict=True):
        assert labels.shape == reference.shape and labels.dtype == np.uint8
        assert np.mean(labels == reference) >= MIN_AGREEMENT
    with pytest.raises(EchosegError, match="decoder outputs need the PyTorch model"):
        segmenter.decoder_outputs(images[0])


def test_an_openvino_xml_file_alone_is_the_bundled_model(exported, images, torch_labels):
    if exported["xml"] is None:
        pytest.skip("OpenVINO is not installed")
    segmenter = echoseg.load_model(exported["xml"])
    assert segmenter.runtime == "openvino" and segmenter.name == "lightweight"
    assert_agree(predict_raw(segmenter, images), torch_labels)


# --- the export cache ------------------------------------------------------------------------

def test_the_export_cache_is_made_once_and_reused(monkeypatch, tmp_path):
    need("onnxruntime")
    from echoseg.export import to_onnx
    from echoseg.inference.exported import export_dir

    calls = []
    real = to_onnx.export_onnx
    monkeypatch.setattr(to_onnx, "export_onnx", lambda *a, **k: calls.append(a) or real(*a, **k))
    first = echoseg.load_model("lightweight", runtime="onnxruntime")
    second = echoseg.load_model("lightweight", runtime="onnxruntime")
    assert len(calls) == 1 and first.runtime == second.runtime == "onnxruntime"
    if runtimes.installed("openvino"):
        echoseg.load_model("lightweight", runtime="openvino")  # converts the cached .onnx
        echoseg.load_model("lightweight", runtime="openvino")
        assert len(calls) == 1
    entries = sorted(p.name for p in export_dir().iterdir())
    assert not [name for name in entries if name.startswith(".")]  # no temporaries left
    assert any(name.endswith(".onnx") for name in entries)


def test_auto_falls_back_to_torch_when_the_export_fails(monkeypatch):
    if resolve_runtime("auto", "cpu") == "torch" or not runtimes.installed("onnx"):
        pytest.skip("neither OpenVINO nor ONNX Runtime with ONNX is installed")
    from echoseg.export import to_onnx

    def broken(model, config, path, **kwargs):
        raise EchosegError(f"{path}: ONNX export failed (broken on purpose)")

    monkeypatch.setattr(to_onnx, "export_onnx", broken)
    with pytest.warns(UserWarning, match=r"broken on purpose\); running on PyTorch instead"):
        segmenter = echoseg.load_model("lightweight", runtime="auto")
    assert segmenter.runtime == "torch"
    with pytest.raises(EchosegError, match="broken on purpose"):
        echoseg.load_model("lightweight", runtime="onnxruntime")


# --- int8 of PyTorch weights ----------------------------------------------------------------

@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_int8_is_quantized_once_and_labels_like_fp32(runtime, monkeypatch, images,
                                                      torch_predictions):
    need(runtime)
    from echoseg.export import quantize_onnx, quantize_openvino, selection
    from echoseg.inference.exported import export_dir

    builds = []

    def counted(*args, **kwargs):
        builds.append(args)
        return selection.choose_float_layers(*args, **kwargs)

    for module in (quantize_onnx, quantize_openvino):
        monkeypatch.setattr(module, "choose_float_layers", counted)
    first = echoseg.load_model("lightweight", runtime=runtime, precision="int8")
    second = echoseg.load_model("lightweight", runtime=runtime, precision="int8")
    assert len(builds) == 1  # quantized once, then read from the cache
    assert first.runtime == second.runtime == f"{runtime} int8" and first.precision == "int8"
    assert [p.name for p in export_dir().iterdir() if ".int8." in p.name]
    assert not [p.name for p in export_dir().iterdir() if p.name.startswith(".")]
    for labels, reference in zip(first.predict_batch(images), torch_predictions, strict=True):
        assert labels.shape == reference.shape and labels.dtype == np.uint8
        inter = [((labels == k) & (reference == k)).sum() for k in (1, 2, 3)]
        sizes = [(labels == k).sum() + (reference == k).sum() for k in (1, 2, 3)]
        assert min(2 * i / n for i, n in zip(inter, sizes, strict=True)) > 0.95


def test_int8_needs_an_exporting_runtime_and_pytorch_weights(exported):
    with pytest.raises(ConfigError, match="--precision int8 needs --runtime openvino or "
                                          "onnxruntime"):
        echoseg.load_model("lightweight", runtime="torch", precision="int8")
    with pytest.raises(ConfigError, match="is an exported file, which runs in the precision"):
        echoseg.load_model(exported["onnx"], precision="int8")
    with pytest.raises(ConfigError, match="--precision fp16: unknown; valid: fp32, int8"):
        echoseg.load_model("lightweight", precision="fp16")


def test_predict_records_int8_in_the_runtime_column(tmp_path, samples_root, capsys):
    need("onnxruntime")
    source = samples_root / "patient0200" / "patient0200_2CH_ED.png"
    out = tmp_path / "out"
    assert main(["predict", "lightweight", str(source), "--out", str(out), "--runtime",
                 "onnxruntime", "--precision", "int8", "--quiet"]) == 0
    with open(out / "predictions.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["runtime"] == "onnxruntime int8"
    assert main(["predict", "lightweight", str(source), "--out", str(tmp_path / "t"),
                 "--runtime", "torch", "--precision", "int8"]) == 2
    assert "--precision int8 needs --runtime" in capsys.readouterr().err


# --- echoseg predict -------------------------------------------------------------------------

def test_predict_writes_the_same_labels_with_onnxruntime(tmp_path, samples_root, capsys):
    need("onnxruntime")
    image = next(samples_root.rglob("*_ES.png"))
    for runtime in ("torch", "onnxruntime"):
        assert main(["predict", "lightweight", str(image), "--out", str(tmp_path / runtime),
                     "--runtime", runtime, "--device", "cpu", "--quiet"]) == 0
        with open(tmp_path / runtime / "predictions.csv", newline="") as f:
            (row,) = csv.DictReader(f)
        assert row["runtime"] == runtime
    seg = f"{image.stem}_seg.png"
    torch_labels = read_image(tmp_path / "torch" / seg)[0]
    ort_labels = read_image(tmp_path / "onnxruntime" / seg)[0]
    np.testing.assert_array_equal(ort_labels, torch_labels)


def _tiny_model():
    import torch

    from echoseg.config import from_dict
    from echoseg.models import build_model

    torch.manual_seed(0)
    config = from_dict({"data": {"size": 32}, "model": {"encoder": [4, 8], "decoder": [4]}})
    return build_model(config.model)


def test_torch_backend_captures_no_graph_on_the_cpu():
    backend = runtimes.TorchBackend(_tiny_model(), "cpu")
    x = np.random.default_rng(0).random((2, 1, 32, 32), dtype=np.float32)
    assert backend(x).shape == (2, 4, 32, 32)
    assert not backend.cuda_graphs and backend._graphs == {}


@pytest.mark.cuda
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_torch_backend_replays_cuda_graphs_with_eager_logits():
    model = _tiny_model()
    graphs = runtimes.TorchBackend(model, "cuda")
    eager = runtimes.TorchBackend(model, "cuda", cuda_graphs=False)
    rng = np.random.default_rng(0)
    for batch in (1, 1, 3, 1, 2, 4, 5):  # 1 replayed; the fifth new shape runs eagerly
        x = rng.random((batch, 1, 32, 32), dtype=np.float32)
        np.testing.assert_allclose(graphs(x), eager(x), atol=1e-4)
    assert sorted(k[0] for k, v in graphs._graphs.items() if v is not None) == [1, 2, 3, 4]
    assert (5, 1, 32, 32) not in graphs._graphs
