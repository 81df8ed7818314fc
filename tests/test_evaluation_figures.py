"""Figures: overlay colours, case panels, deep-supervision panels, boxplots (files written)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from echoseg.evaluation.figures import (
    boxplots,
    case_figure,
    deep_supervision_figure,
    overlay,
)


def test_overlay_colours_blend_over_the_image():
    labels = np.array([[0, 1], [2, 3]], np.uint8)
    rgb = overlay(np.zeros((2, 2)), labels, alpha=0.5)
    np.testing.assert_allclose(rgb[0, 0], [0, 0, 0])
    np.testing.assert_allclose(rgb[0, 1], [0.5, 0, 0])  # LV red
    assert rgb[1, 0, 1] > 0 and rgb[1, 0, 0] == 0 == rgb[1, 0, 2]  # MYO green
    assert rgb[1, 1, 2] > 0 and rgb[1, 1, 0] == 0  # LA blue
    bright = overlay(np.full((4, 4), 200, np.uint8), np.zeros((2, 2), np.uint8))
    assert bright.shape == (2, 2, 3)  # image resized to the label map


def test_case_figure_writes_a_png(tmp_path):
    gt = np.zeros((32, 32), np.uint8)
    gt[8:20, 10:20] = 1
    path = case_figure(np.random.default_rng(0).random((64, 64)), gt, np.roll(gt, 2, 0),
                       tmp_path / "case.png", title="case")
    assert Image.open(path).size[0] > 300


def test_deep_supervision_figure_takes_logit_arrays(tmp_path):
    rng = np.random.default_rng(0)
    logits = [rng.random((4, 8, 8)), rng.random((4, 16, 16)), rng.random((1, 4, 32, 32))]
    path = deep_supervision_figure(logits, tmp_path / "ds.png", image=rng.random((64, 64)))
    assert path.is_file()
    with pytest.raises(ValueError, match="shape"):
        deep_supervision_figure([rng.random((8, 8))], tmp_path / "bad.png")


def test_boxplots_skip_nans(tmp_path):
    values = {m: {f"{k}_{s}": [0.8, 0.9, float("nan")] for k in ("dice", "hd")
                  for s in ("LV", "MYO", "LA")} for m in ("A", "B")}
    assert boxplots(values, tmp_path / "box.png", "px").is_file()
