"""The shipped `lightweight` weights: load by name, reproduce their recorded Dice, metadata."""

import json

import numpy as np
import pytest
import torch

import echoseg
from echoseg.data.dataset import open_dataset
from echoseg.evaluation.evaluate import evaluate_model
from echoseg.inference.files import bundled_samples
from echoseg.inference.loading import WEIGHTS_DIR, bundled_models
from echoseg.models import count_parameters


@pytest.fixture(scope="module")
def model():
    return echoseg.load_model("lightweight")


@pytest.fixture(scope="module")
def meta():
    return json.loads((WEIGHTS_DIR / "lightweight.json").read_text())


def test_bundled_weights_are_small_fp32_and_load_by_name(model):
    path = bundled_models()["lightweight"]
    assert path.stat().st_size <= 10 * 2**20
    state = torch.load(path, weights_only=True)["model"]
    assert all(v.dtype in (torch.float32, torch.int64) for v in state.values())
    assert count_parameters(model.model) == 1_979_828  # the lightweight preset
    assert model.postprocess_spec == "cca" and model.size == 224


def test_reproduces_recorded_dice_on_bundled_samples(model, meta):
    recorded = meta["validation"]["bundled_samples"]["dice"]
    samples = open_dataset(bundled_samples()).samples
    result = evaluate_model(model.predict_batch, samples, prior_postprocess="cca")
    for structure in ("LV", "MYO", "LA"):
        assert result.summary["dice"][structure] == pytest.approx(recorded[structure], abs=2e-3)
    assert result.summary["dice"]["LV"] > 0.9  # a trained model, not random weights


def test_metadata_carries_config_provenance_and_license(meta):
    assert meta["config"]["model"]["norm"] == "batch" and meta["config"]["model"]["act"] == "mish"
    assert meta["validation"]["split"] == "val" and meta["validation"]["n_images"] == 200
    assert meta["training"]["provenance"]["packages"]["torch"]
    assert "CC BY-NC-SA 4.0" in meta["license"] and "Leclerc" in meta["license"]


def test_predict_keeps_any_size(model):
    image = np.random.default_rng(0).integers(0, 255, (300, 180), dtype=np.uint8)
    labels = model.predict(image)
    assert labels.shape == (300, 180) and labels.dtype == np.uint8
    assert set(np.unique(labels).tolist()) <= {0, 1, 2, 3}
