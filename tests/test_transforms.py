"""Augmentation presets (Albumentations, CPU) and the batched affine (torch, any device)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import ndimage

from echoseg.errors import ConfigError
from echoseg.transforms import PRESETS, AugmentParams, batch_affine, build_augmentation

NAMES = ["none", "I", "II", "III", "IV", "V", "affine"]
SIZE = 96


def _marker() -> tuple[np.ndarray, np.ndarray]:
    """A bright square on black exactly where label == 1, framed by label 3 on black (so a
    label interpolated linearly would show 2s)."""
    image = np.zeros((SIZE, SIZE), np.uint8)
    label = np.zeros((SIZE, SIZE), np.uint8)
    label[30:66, 30:66] = 3
    label[36:60, 36:60] = 1
    image[36:60, 36:60] = 255
    return image, label


def _aligned(image: np.ndarray, label: np.ndarray) -> bool:
    """Bright pixels (above half the maximum) and label == 1 agree except on its 1-px rim."""
    bright, lv = image > image.max() / 2, label == 1
    rim = ndimage.binary_dilation(lv) & ~ndimage.binary_erosion(lv)
    return lv.sum() > 100 and not ((bright ^ lv) & ~rim).any()


def test_table_ii_readings():
    assert list(PRESETS) == NAMES
    assert [PRESETS[n].shift for n in ["I", "II", "III", "IV", "V"]] == [
        0.05, 0.10, 0.15, 0.20, 0.25]
    affine = PRESETS["affine"]
    assert (affine.shift, affine.scale, affine.rotate) == (0.1, (0.8, 1.1), 10.0)
    assert affine.noise_std == affine.blackout_p == affine.brightness == 0
    assert all(PRESETS[n].blackout_p == 0.25 for n in ["I", "II", "III", "IV", "V"])


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ConfigError, match="valid: none, I, II, III, IV, V, affine"):
        build_augmentation("VI")


def test_none_is_identity():
    image, label = _marker()
    out_image, out_label = build_augmentation("none")(image, label)
    assert np.array_equal(out_image, image) and np.array_equal(out_label, label)


@pytest.mark.parametrize("name", NAMES)
def test_labels_stay_a_subset_and_types_are_kept(name):
    image, label = _marker()
    aug = build_augmentation(name, seed=3)
    for _ in range(8):
        out_image, out_label = aug(image, label)
        assert out_image.dtype == out_label.dtype == np.uint8
        assert out_image.shape == out_label.shape == (SIZE, SIZE)
        assert set(np.unique(out_label)) <= {0, 1, 3}


@pytest.mark.parametrize("name", NAMES)
def test_image_and_label_move_together(name):
    # geometry plus monotonic intensity changes; noise and blackout would hide the marker
    params = dataclasses.replace(PRESETS[name], noise_std=0.0, blackout_p=0.0)
    aug = build_augmentation(params, seed=5)
    image, label = _marker()
    moved = 0
    for _ in range(8):
        out_image, out_label = aug(image, label)
        assert _aligned(out_image, out_label)
        moved += not np.array_equal(out_label, label)
    assert moved == (0 if name == "none" else 8)


def _isotropic(mask: np.ndarray) -> bool:
    """Equal second moments in every direction, as for any rotated, evenly zoomed square."""
    eig = np.linalg.eigvalsh(np.cov(np.stack(np.nonzero(mask))))
    return eig[1] / eig[0] < 1.1


def test_affine_preset_zooms_evenly_by_0_8_to_1_1():
    image, label = _marker()
    aug = build_augmentation("affine", seed=0)
    area = (label == 1).sum()
    ratios = []
    for _ in range(40):
        lv = aug(image, label)[1] == 1
        assert _isotropic(lv)
        ratios.append(lv.sum() / area)
    assert min(ratios) > 0.8**2 * 0.93 and max(ratios) < 1.1**2 * 1.07
    assert min(ratios) < 0.8 and max(ratios) > 1.05  # the range is used, not a fixed zoom


def test_blackout_zeroes_one_rectangle_of_the_image_only():
    params = AugmentParams(blackout_p=1.0)
    image = np.full((SIZE, SIZE), 100, np.uint8)
    _, label = _marker()
    aug = build_augmentation(params, seed=1)
    for _ in range(5):
        out_image, out_label = aug(image, label)
        assert np.array_equal(out_label, label)
        rows, cols = np.nonzero(out_image == 0)
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert len(rows) == h * w and 25 <= h <= 65 and 25 <= w <= 65
        assert (out_image[out_image > 0] == 100).all()


def test_seeded_augmentation_is_reproducible():
    image, label = _marker()
    runs = []
    for seed in (7, 7, 8):
        aug = build_augmentation("V", seed=seed)
        runs.append([aug(image, label) for _ in range(4)])

    def same(a, b):
        return all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1])
                   for x, y in zip(a, b, strict=True))

    assert same(runs[0], runs[1]) and not same(runs[0], runs[2])
    aug = build_augmentation("V", seed=0)
    aug.reseed(7)
    assert same([aug(image, label) for _ in range(4)], runs[0])


def test_a_numpy_generator_decides_each_call():
    image, label = _marker()
    aug = build_augmentation("III")
    a = aug(image, label, np.random.default_rng([1, 2]))
    aug(image, label)  # unrelated draws in between do not matter
    b = aug(image, label, np.random.default_rng([1, 2]))
    c = aug(image, label, np.random.default_rng([1, 3]))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def _batch(n: int = 6, h: int = SIZE, w: int = SIZE):
    image, label = _marker()
    images = torch.zeros(n, 1, h, w)
    labels = torch.zeros(n, h, w, dtype=torch.long)
    top, left = (h - SIZE) // 2, (w - SIZE) // 2
    images[:, 0, top:top + SIZE, left:left + SIZE] = torch.from_numpy(image).float() / 255
    labels[:, top:top + SIZE, left:left + SIZE] = torch.from_numpy(label).long()
    return images, labels


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_batch_affine_moves_images_and_labels_together():
    images, labels = _batch()
    out_images, out_labels = batch_affine(images, labels, _gen(0))
    assert out_images.shape == images.shape and out_images.dtype == images.dtype
    assert out_labels.shape == labels.shape and out_labels.dtype == torch.long
    assert set(out_labels.unique().tolist()) <= {0, 1, 3}
    areas = set()
    for img, lbl in zip(out_images[:, 0].numpy(), out_labels.numpy(), strict=True):
        assert _aligned(img, lbl)
        areas.add(int((lbl == 1).sum()))
    assert len(areas) > 1  # each sample gets its own parameters


def test_batch_affine_is_deterministic_given_the_generator():
    images, labels = _batch()
    a = batch_affine(images, labels, _gen(3))
    b = batch_affine(images, labels, _gen(3))
    c = batch_affine(images, labels, _gen(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_batch_affine_p0_is_identity_and_zoom_is_exact():
    images, labels = _batch(2)
    same = batch_affine(images, labels, _gen(0), p=0.0)
    assert torch.allclose(same[0], images, atol=1e-6) and torch.equal(same[1], labels)
    _, zoomed = batch_affine(images, labels, _gen(0), shift=0.0, scale=(2.0, 2.0), rotate_deg=0)
    assert ((zoomed == 1).sum(dim=(1, 2)) == 4 * 24 * 24).all()  # 24x24 square -> 48x48


def test_batch_affine_keeps_shapes_on_non_square_images():
    # rotation must act in pixels, not normalised coordinates: a square stays a square
    images, labels = _batch(8, h=SIZE, w=2 * SIZE)
    _, out = batch_affine(images, labels, _gen(1), shift=0.0, scale=(1.0, 1.0), rotate_deg=10)
    for lbl in out.numpy():
        assert abs((lbl == 1).sum() / 24**2 - 1) < 0.06
        assert _isotropic(lbl == 1)


@pytest.mark.parametrize(("preset", "expected"), [(None, "1"), ("0", "0")])
def test_albumentations_does_not_phone_home_unless_asked(preset, expected):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    if preset is not None:
        env["NO_ALBUMENTATIONS_UPDATE"] = preset
    code = "import os, echoseg.transforms; print(os.environ['NO_ALBUMENTATIONS_UPDATE'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected
