"""Inference helpers: bundled-format weights, load_model by name, input discovery, outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import echoseg
from echoseg.config import from_dict
from echoseg.data.readers import read_image
from echoseg.inference import Segmenter, loading
from echoseg.inference.bundle import save_bundled
from echoseg.inference.files import bundled_samples, find_inputs, output_extension
from echoseg.inference.outputs import frame_row, overlay_png, write_label_map_atomic
from echoseg.models import build_model

TINY = {"data": {"size": 64}, "model": {"encoder": [8, 8, 16], "decoder": [8, 8]}}


@pytest.fixture
def tiny_weights(tmp_path, monkeypatch):
    """A random 3-level U-Net on a 64x64 grid saved as bundled model "tiny"."""
    torch.manual_seed(0)
    config = from_dict(TINY)
    weights = tmp_path / "weights"
    save_bundled(build_model(config.model), config, weights, "tiny",
                 validation={"dice": {"LV": 0.9, "MYO": 0.8, "LA": 0.85}})
    monkeypatch.setattr(loading, "WEIGHTS_DIR", weights)
    return weights


def test_save_bundled_writes_the_loadable_format(tiny_weights):
    assert sorted(p.name for p in tiny_weights.iterdir()) == ["tiny.json", "tiny.pt"]
    meta = json.loads((tiny_weights / "tiny.json").read_text())
    assert meta["config"]["model"]["encoder"] == [8, 8, 16] and meta["validation"]["dice"]["LV"]
    state = torch.load(tiny_weights / "tiny.pt", weights_only=True)
    assert set(state) == {"model"}
    assert loading.bundled_models() == {"tiny": tiny_weights / "tiny.pt"}


@pytest.mark.parametrize("shape", [(50, 40), (37, 91), (64, 64), (300, 17), (1, 1)])
def test_top_level_load_model_keeps_any_2d_size(tiny_weights, shape):
    segmenter = echoseg.load_model("tiny")
    assert isinstance(segmenter, Segmenter)
    assert segmenter.name == "tiny" and segmenter.size == 64 and segmenter.postprocess_spec == "cca"
    rng = np.random.default_rng(0)
    for image in (rng.integers(0, 256, shape, dtype=np.uint8), rng.random(shape) * 1000):
        labels = segmenter.predict(image)
        assert labels.shape == shape and labels.dtype == np.uint8
        assert set(np.unique(labels)) <= {0, 1, 2, 3}


def test_bundled_samples_are_the_four_validation_patients():
    root = bundled_samples()
    patients = ["patient0200", "patient0206", "patient0230", "patient0232"]
    assert json.loads((root / "splits.json").read_text()) == {"val": patients}
    images = sorted(p for p in root.rglob("*.png") if not p.stem.endswith("_gt"))
    assert len(images) == 16
    for image in images:
        gt, _ = read_image(image.with_name(image.stem + "_gt.png"))
        assert read_image(image)[0].shape == gt.shape == (224, 224)
        assert set(np.unique(gt)) <= {0, 1, 2, 3}
    readme = (root / "README.md").read_text()
    assert "CC BY-NC-SA 4.0" in readme and "10.1109/TMI.2019.2900516" in readme
    assert "validation" in readme


def test_find_inputs_keys_skips_and_problems(tmp_path):
    folder = tmp_path / "in"
    for name in ("a.png", "a_gt.png", "sub/a.png", "b.nii.gz", "b.raw", ".hidden.png",
                 "out/old_seg.png", "out/c.png", "A.jpg"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")
    (tmp_path / "a.tif").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    found = find_inputs([folder, tmp_path / "a.tif", tmp_path / "missing.png",
                         tmp_path / "notes.txt"], exclude=folder / "out")
    keys = {f.path.relative_to(tmp_path).as_posix(): f.key for f in found.files}
    # A.jpg and a.png collide on case-insensitive file systems; a.tif collides with both
    assert keys == {"in/A.jpg": "A", "in/a.png": "a_2", "in/b.nii.gz": "b", "in/sub/a.png": "sub/a",
                    "a.tif": "a_3"}
    assert [p.name for p in found.skipped_labels] == ["a_gt.png"]
    assert len(found.problems) == 2
    assert "missing.png: no such file or folder" in found.problems[0]
    assert "notes.txt: not an image file" in found.problems[1]


@pytest.mark.parametrize(("name", "ext"), [("x.png", ".png"), ("x.JPG", ".png"), ("x.tiff", ".png"),
                                           ("x.nii.gz", ".nii.gz"), ("x.nii", ".nii"),
                                           ("x.mhd", ".mhd")])
def test_output_extension_keeps_the_format_family(name, ext):
    assert output_extension(name) == ext


def test_label_map_write_is_atomic_and_complete(tmp_path):
    labels = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) % 4
    path = write_label_map_atomic(tmp_path / "seq_seg.mhd", labels, (0.5, 0.25))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seq_seg.mhd", "seq_seg.raw"]
    array, spacing = read_image(path)
    assert np.array_equal(array, labels) and spacing == (0.5, 0.25)


def test_frame_row_areas_and_overlay_aspect():
    labels = np.zeros((20, 10), np.uint8)
    labels[2:6, 2:5] = 1  # 12 px LV
    labels[10:12, 0:10] = 3  # 20 px LA
    row = frame_row("in.nii.gz", 2, "in_seg.nii.gz", labels, (0.5, 0.25), 0.01)
    assert (row["area_LV_px"], row["area_MYO_px"], row["area_LA_px"]) == (12, 0, 20)
    assert (row["area_LV_mm2"], row["area_MYO_mm2"], row["area_LA_mm2"]) == (1.5, 0.0, 2.5)
    assert row["anatomically_plausible"] is False  # no MYO
    assert frame_row("in.png", 0, "o", labels, None, 0.0)["area_LV_mm2"] is None
    import io

    from PIL import Image

    png = Image.open(io.BytesIO(overlay_png(np.zeros((20, 10)), labels, (0.5, 0.25))))
    assert png.size == (10, 40) and png.mode == "RGB"  # rows stretched to square pixels


def test_find_inputs_takes_a_file_once_and_reports_empty_folders(tmp_path):
    (tmp_path / "d" / "x.png").parent.mkdir()
    (tmp_path / "d" / "x.png").write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.cfg").write_text("x")
    found = find_inputs([tmp_path / "d", tmp_path / "d" / "x.png", tmp_path / "empty"])
    assert [(f.path.name, f.key) for f in found.files] == [("x.png", "x")]
    assert found.problems == [f"{tmp_path / 'empty'}: no image files in this folder"]
