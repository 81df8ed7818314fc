"""Test-time augmentation: view matrices, probabilities mapped back, the --tta option."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import echoseg
from echoseg.cli import main
from echoseg.inference import tta
from echoseg.inference.runtimes import TorchBackend


def test_view_matrix_rotates_and_zooms_about_the_centre_then_shifts():
    assert np.allclose(tta.view_matrix(65, 0.0, 1.0, 0.0, 0.0), [[1, 0, 0], [0, 1, 0]])
    centre = np.array([32.0, 32.0, 1.0])
    for rotate, zoom in [(8.0, 1.0), (-8.0, 0.9), (0.0, 1.05)]:
        assert np.allclose(tta.view_matrix(65, rotate, zoom, 0.0, 0.0) @ centre, [32, 32])
    # +5% of a 100-pixel side moves every pixel by 5 pixels right and down
    assert np.allclose(tta.view_matrix(100, 0.0, 1.0, 0.05, 0.05) @ [10.0, 20.0, 1.0], [15, 25])
    zoomed = tta.view_matrix(65, 0.0, 0.9, 0.0, 0.0) @ [42.0, 32.0, 1.0]
    assert np.allclose(zoomed, [32 + 0.9 * 10, 32])


def _pixelwise_logits(images: np.ndarray) -> np.ndarray:
    """A 'network' whose logits depend on each pixel's intensity only: it commutes with any
    warp, so averaging over views must give back its own probabilities."""
    x = images[:, 0]
    return np.stack([-8 * x, 8 * x - 2, 8 * x - 4, 8 * x - 6], axis=1).astype(np.float32)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_a_warp_equivariant_network_gets_its_own_probabilities_back():
    size = 64
    yy, xx = np.mgrid[:size, :size] / size
    grid = np.stack([0.5 + 0.4 * np.sin(3 * xx) * np.cos(2 * yy), 0.2 + 0.6 * xx * yy])
    calls = []

    def logits_of(images):
        calls.append(images.shape)
        return _pixelwise_logits(images)

    averaged = tta.averaged_probabilities(logits_of, grid.astype(np.float32))
    assert calls == [(2, 1, size, size)] * len(tta.VIEWS)  # one call per view, whole batch
    assert averaged.shape == (2, 4, size, size) and averaged.dtype == np.float32
    assert np.allclose(averaged.sum(1), 1.0, atol=1e-5)
    plain = _softmax(_pixelwise_logits(grid[:, None].astype(np.float32)))
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))  # away from warp borders
    assert np.abs(averaged[inner] - plain[inner]).max() < 0.02
    # borders that some views leave get the others' votes: still a probability everywhere
    assert np.abs(averaged - plain).max() < 0.2


def test_a_position_dependent_network_is_averaged_over_views():
    """Logits that mark the image's left half: views that rotate or shift the image move that
    half, so near the midline the average is a mixture, not the identity view alone."""
    size = 64

    def left_half(images):
        n = images.shape[0]
        left = np.zeros((n, 4, size, size), np.float32)
        left[:, 1, :, : size // 2] = 10.0
        left[:, 0, :, size // 2:] = 10.0
        return left

    averaged = tta.averaged_probabilities(left_half, np.zeros((1, size, size), np.float32))
    row = averaged[0, 1, size // 2]
    assert row[0] > 0.99 and row[-1] < 0.01  # far from the midline every view agrees
    assert 0.1 < averaged[0, 1, 10, size // 2] < 0.9  # the identity alone would give ~0


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    import torch

    from echoseg.config import from_dict
    from echoseg.inference import loading
    from echoseg.inference.bundle import save_bundled
    from echoseg.models import build_model

    torch.manual_seed(0)
    config = from_dict({"data": {"size": 32}, "model": {"encoder": [4, 4, 8],
                                                        "decoder": [4, 4]}})
    save_bundled(build_model(config.model), config, tmp_path / "weights", "tiny")
    monkeypatch.setattr(loading, "WEIGHTS_DIR", tmp_path / "weights")
    return "tiny"


def test_segmenter_with_tta_runs_every_view_and_says_so(tiny, monkeypatch):
    plain = echoseg.load_model(tiny, runtime="torch")
    seg = echoseg.load_model(tiny, runtime="torch", tta=True)
    assert (plain.runtime, seg.runtime) == ("torch", "torch tta") and seg.tta
    calls = []
    original = TorchBackend.__call__

    def counting(self, x):
        calls.append(x.shape[0])
        return original(self, x)

    monkeypatch.setattr(TorchBackend, "__call__", counting)
    image = (np.random.default_rng(0).random((40, 50)) * 255).astype(np.uint8)
    label = seg.predict(image)
    assert calls == [1] * len(tta.VIEWS)
    assert label.shape == (40, 50) and set(np.unique(label)) <= {0, 1, 2, 3}
    log_probs = seg.logits(np.zeros((2, 32, 32), np.float32)).numpy()
    assert log_probs.shape == (2, 4, 32, 32)
    assert np.allclose(np.exp(log_probs).sum(1), 1.0, atol=1e-4)


def test_predict_records_tta_in_its_table(tiny, tmp_path, capsys):
    image = tmp_path / "in" / "frame.png"
    image.parent.mkdir()
    import cv2

    cv2.imwrite(str(image), (np.random.default_rng(1).random((40, 50)) * 255).astype(np.uint8))
    assert main(["predict", tiny, str(image.parent), "--out", str(tmp_path / "out"),
                 "--runtime", "torch", "--tta", "--quiet"]) == 0
    with open(tmp_path / "out" / "predictions.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["runtime"] == "torch tta"


def test_evaluate_with_tta_reports_the_runtime(tiny, samples_root, tmp_path, capsys):
    assert main(["evaluate", tiny, "--data", str(samples_root), "--split", "val",
                 "--runtime", "torch", "--tta", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["runtime"] == "torch tta"


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--pred", "{tmp}", "--data", "{tmp}", "--tta"],
     "echoseg: error: --tta needs MODEL (prediction files are scored as they are)"),
    (["ef", "{tmp}", "--pred", "{tmp}", "--tta"],
     "echoseg: error: --postprocess, --runtime and --tta need --model"),
])
def test_tta_without_a_model_is_refused_in_one_line(argv, message, tmp_path, capsys):
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    assert capsys.readouterr().err.strip() == message


def test_tta_on_the_bundled_model_keeps_its_accuracy_on_real_images():
    """The 4 images of a bundled CAMUS validation patient: TTA's labels score as well as the
    plain ones (within 0.005 of mean Dice) and change only boundary pixels."""
    from echoseg.data.readers import read_image
    from echoseg.inference.files import bundled_samples
    from echoseg.metrics.overlap import dice

    images = sorted(p for p in (bundled_samples() / "patient0230").glob("*.png")
                    if not p.stem.endswith("_gt"))
    assert len(images) == 4
    truth = [read_image(p.with_name(f"{p.stem}_gt.png"))[0] for p in images]
    pixels = [read_image(p)[0] for p in images]
    labels = {use_tta: echoseg.load_model("lightweight", runtime="torch",
                                          tta=use_tta).predict_batch(pixels)
              for use_tta in (False, True)}
    scores = {use_tta: np.mean([dice(lbl, gt, k) for lbl, gt in zip(maps, truth, strict=True)
                                for k in (1, 2, 3)]) for use_tta, maps in labels.items()}
    changed = np.mean([np.mean(a != b) for a, b in zip(labels[False], labels[True],
                                                        strict=True)])
    assert 0 < changed < 0.02
    assert scores[False] > 0.9 and scores[True] > scores[False] - 0.005


def test_predict_batch_with_views_matches_predict_batch_and_gives_every_view(tiny):
    seg = echoseg.load_model(tiny, runtime="torch", tta=True)
    rng = np.random.default_rng(2)
    images = [(rng.random(shape) * 255).astype(np.uint8) for shape in ((40, 50), (32, 32))]
    labels, views = seg.predict_batch_with_views(images)
    for plain, with_views in zip(seg.predict_batch(images), labels, strict=True):
        np.testing.assert_array_equal(plain, with_views)
    assert [len(v) for v in views] == [len(tta.VIEWS)] * 2
    assert all(v.shape == im.shape and v.dtype == np.uint8
               for per_image, im in zip(views, images, strict=True) for v in per_image)
    with pytest.raises(ValueError, match="needs a Segmenter with tta=True"):
        echoseg.load_model(tiny, runtime="torch").predict_batch_with_views(images)
