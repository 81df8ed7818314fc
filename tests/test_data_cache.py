"""The array cache: exact values, no decoding on a warm load, invalidation, decode errors."""

from __future__ import annotations

import os

import numpy as np
import pytest

import echoseg.data.cache as cache_module
from echoseg.data.cache import load_arrays
from echoseg.data.dataset import open_dataset
from echoseg.data.preprocess import image_to_grid, label_to_grid
from echoseg.data.readers import read_image, write_image
from echoseg.errors import DataError
from echoseg.paths import default_cache_dir


@pytest.fixture
def two_patients(samples_root):
    return open_dataset(samples_root).select(["patient0001", "patient0200"])


def _forbid_decoding(monkeypatch):
    def fail(sample):
        raise AssertionError(f"decoded {sample.id}")

    monkeypatch.setattr(cache_module, "read_pair", fail)


def test_native_size_values_are_exact(two_patients, tmp_path):
    images, labels = load_arrays(two_patients, 224, tmp_path)
    assert images.shape == labels.shape == (8, 224, 224)
    assert images.dtype == labels.dtype == np.uint8
    for i, sample in enumerate(two_patients):
        np.testing.assert_array_equal(images[i], read_image(sample.image_path)[0])
        np.testing.assert_array_equal(labels[i], read_image(sample.label_path)[0])


def test_warm_load_does_not_decode_and_mtime_invalidates(two_patients, tmp_path, monkeypatch):
    images, labels = load_arrays(two_patients, 256, tmp_path)
    sample = two_patients[3]
    expected = np.rint(image_to_grid(read_image(sample.image_path)[0], 256) * 255)
    np.testing.assert_array_equal(images[3], expected)
    np.testing.assert_array_equal(labels[3], label_to_grid(read_image(sample.label_path)[0], 256))
    assert len(list(tmp_path.glob("*.npy"))) == 2

    _forbid_decoding(monkeypatch)
    warm_images, warm_labels = load_arrays(two_patients, 256, tmp_path)
    np.testing.assert_array_equal(warm_images, images)
    np.testing.assert_array_equal(warm_labels, labels)
    with pytest.raises(AssertionError, match="decoded"):
        load_arrays(two_patients, 128, tmp_path)  # another grid size is another entry


def test_changed_file_is_decoded_again(samples_root, tmp_path, monkeypatch):
    data = tmp_path / "data"
    for name in ("x.png", "x_gt.png"):
        src = samples_root / "patient0001" / name.replace("x", "patient0001_2CH_ED")
        write_image(data / name, read_image(src)[0])
    samples = open_dataset(data).samples
    cache = tmp_path / "cache"
    images, _ = load_arrays(samples, 64, cache)
    stat = (data / "x.png").stat()
    os.utime(data / "x.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    _forbid_decoding(monkeypatch)
    with pytest.raises(AssertionError, match="decoded x"):
        load_arrays(samples, 64, cache)


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path, two_patients):
    monkeypatch.setenv("ECHOSEG_CACHE", str(tmp_path / "env-cache"))
    assert default_cache_dir() == tmp_path / "env-cache"
    load_arrays(two_patients[:1], 32)
    assert len(list((tmp_path / "env-cache").glob("*.npy"))) == 2


def test_corrupt_cache_entry_is_rebuilt(two_patients, tmp_path):
    images, _ = load_arrays(two_patients, 32, tmp_path)
    for path in tmp_path.glob("*-images.npy"):
        path.write_bytes(b"broken")
    again, _ = load_arrays(two_patients, 32, tmp_path)
    np.testing.assert_array_equal(again, images)


def test_bad_label_values_and_size_mismatch_name_the_file(tmp_path):
    data = tmp_path / "data"
    write_image(data / "a.png", np.zeros((6, 6), np.uint8))
    write_image(data / "a_gt.png", np.full((6, 6), 4, np.uint8))
    samples = open_dataset(data).samples
    with pytest.raises(DataError) as err:
        load_arrays(samples, 8, tmp_path / "cache")
    assert str(err.value) == f"{data}/a_gt.png: label values outside 0..3: 4"
    write_image(data / "a_gt.png", np.zeros((6, 5), np.uint8))  # changed after opening
    with pytest.raises(DataError) as err:
        load_arrays(samples, 8, tmp_path / "cache")
    assert str(err.value) == (f"{data}/a_gt.png: label map size 6x5 does not match image size "
                              "6x6 (HxW, a.png)")
    assert not list((tmp_path / "cache").glob("*.npy"))
