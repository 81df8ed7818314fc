"""Training batches: CPU (Albumentations) and device-resident (batched affine) paths."""

import numpy as np
import pytest
import torch

from echoseg.training.batches import BatchSource


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    labels = np.zeros((10, 32, 32), np.uint8)
    labels[:, 8:24, 8:24] = 1
    labels[:, 12:20, 12:20] = 3
    images = (labels * 60 + rng.integers(0, 20, labels.shape)).astype(np.uint8)
    return images, labels


@pytest.mark.parametrize("on_device", [False, True])
def test_batches_shapes_labels_and_reproducibility(arrays, on_device):
    images, labels = arrays
    source = BatchSource(images, labels, batch_size=4, preset="affine",
                         device=torch.device("cpu"), seed=3, on_device=on_device)
    assert len(source) == 2  # 10 // 4, the partial batch is dropped
    first = list(source.epoch(1))
    again = list(source.epoch(1))
    other = list(source.epoch(2))
    for x, y in first:
        assert x.shape == (4, 1, 32, 32) and x.dtype == torch.float32
        assert y.shape == (4, 32, 32) and y.dtype == torch.int64
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert set(torch.unique(y).tolist()) <= {0, 1, 3}
    pairs = zip(first, again, strict=True)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in pairs)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, other, strict=True))


def test_no_augmentation_on_device_returns_the_stored_pixels(arrays):
    images, labels = arrays
    source = BatchSource(images, labels, batch_size=5, preset="none",
                         device=torch.device("cpu"), seed=0, on_device=True)
    order = np.random.default_rng([0, 1]).permutation(10)
    x, y = next(source.epoch(1))
    assert torch.equal(y, torch.from_numpy(labels[order[:5]]).long())
    assert torch.allclose(x[:, 0] * 255, torch.from_numpy(images[order[:5]]).float())


def test_max_batches_caps_an_epoch(arrays):
    images, labels = arrays
    source = BatchSource(images, labels, batch_size=2, preset="none",
                         device=torch.device("cpu"), seed=0, max_batches=3)
    assert len(source) == 3 and len(list(source.epoch(1))) == 3
