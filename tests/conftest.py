"""Shared fixtures: the bundled CAMUS samples and tiny synthetic CAMUS releases."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

SAMPLES_ROOT = Path(__file__).resolve().parent / "data" / "camus224"
SHARED_CAMUS224 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "camus224"

# Known geometry of the synthetic releases: anisotropic pixels, non-square images per view.
SPACING = (0.308, 0.154)  # mm, (row, column)
SIZES = {"2CH": (50, 40), "4CH": (44, 36)}  # (H, W) pixels
N_FRAMES = 4


@pytest.fixture(scope="session")
def _kernel_cache(tmp_path_factory) -> Path:
    """One C-kernel cache for the session: each kernel is compiled once, not once per test."""
    return tmp_path_factory.mktemp("echoseg-kernels")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch, _kernel_cache):
    """Keep every test's array cache and compiled kernels out of the user's ~/.cache."""
    monkeypatch.setenv("ECHOSEG_CACHE", str(tmp_path_factory.mktemp("echoseg-cache")))
    monkeypatch.setenv("ECHOSEG_KERNEL_CACHE", str(_kernel_cache))


@pytest.fixture
def native_kernels() -> None:
    """Skip a test where echoseg's C kernels cannot be built here (no C compiler, or a CPU
    without AVX-512), naming the reason. Resolved at test time, so the kernels build into the
    test session's cache, not the user's."""
    from echoseg import native
    from echoseg.losses import class_sums
    from echoseg.models import bn_mish, upconv

    if any(m._library() is None for m in (bn_mish, class_sums, upconv)):
        reasons = sorted({entry["reason"] for entry in native.status().values()
                          if not entry["in_use"]})
        pytest.skip(f"echoseg's C kernels are not built here ({'; '.join(reasons)})")


@pytest.fixture
def kernel_calls(monkeypatch):
    """``kernel_calls(Function)`` -> a list that gets the first argument of every
    ``Function.apply`` call from then on (the call still runs): which inputs a kernel took."""
    def spy(function) -> list:
        calls, real = [], function.apply
        monkeypatch.setattr(function, "apply", lambda *a: calls.append(a[0]) or real(*a))
        return calls

    return spy


@pytest.fixture
def samples_root() -> Path:
    """tests/data/camus224: 8 real CAMUS patients as 224x224 PNG pairs with splits.json."""
    return SAMPLES_ROOT


@pytest.fixture
def shared_camus224() -> Path:
    """The full 450-patient camus224 copy beside the repository; skips the test when absent."""
    if not (SHARED_CAMUS224 / "splits.json").is_file():
        pytest.skip(f"{SHARED_CAMUS224} not found")
    return SHARED_CAMUS224


@dataclass
class SyntheticCamus:
    """A CAMUS release written by :func:`write_camus`, with the values that went into it."""

    root: Path  # the folder to open (holds database_nifti/ or training/)
    patients_dir: Path  # the folder holding the patient folders
    release: str
    spacing: tuple[float, float] = SPACING
    sizes: dict[str, tuple[int, int]] = field(default_factory=lambda: dict(SIZES))
    n_frames: int = N_FRAMES
    images: dict[str, np.ndarray] = field(default_factory=dict)  # id -> (H, W) uint8
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[tuple[str, str], dict] = field(default_factory=dict)  # (patient, view) -> fields
    sequences: dict[str, np.ndarray] = field(default_factory=dict)  # id -> (T, H, W) uint8


def pattern_image(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A deterministic uint8 image different for every seed."""
    return ((np.arange(np.prod(shape)).reshape(shape) * 7 + seed * 31) % 251).astype(np.uint8)


def pattern_label(shape: tuple[int, int], shift: int) -> np.ndarray:
    """A label map with all of 0..3: LV block, MYO frame around it, LA block below."""
    h, w = shape
    label = np.zeros(shape, np.uint8)
    top = 5 + shift
    label[top:top + 20, 8:w - 8] = 2
    label[top + 3:top + 17, 12:w - 12] = 1
    label[top + 22:h - 3, 10:w - 10] = 3
    return label


def write_camus(base: Path, release: str, patients=("patient0001", "patient0002", "patient0003"),
                sequences: bool = True) -> SyntheticCamus:
    """Write a tiny CAMUS release ("2023": NIfTI, "2019": MetaImage) below ``base``."""
    if release == "2023":
        patients_dir, ext = base / "database_nifti", ".nii.gz"
        seq_kind = "half_sequence"
    else:
        patients_dir, ext = base / "training", ".mhd"
        seq_kind = "sequence"
    data = SyntheticCamus(base, patients_dir, release)
    for p_index, patient in enumerate(patients):
        folder = patients_dir / patient
        folder.mkdir(parents=True)
        for v_index, view in enumerate(("2CH", "4CH")):
            shape = SIZES[view]
            for f_index, phase in enumerate(("ED", "ES")):
                sample_id = f"{patient}_{view}_{phase}"
                image = pattern_image(shape, 4 * p_index + 2 * v_index + f_index)
                label = pattern_label(shape, f_index + v_index)
                _write(folder / f"{sample_id}{ext}", image, release)
                _write(folder / f"{sample_id}_gt{ext}", label, release)
                data.images[sample_id], data.labels[sample_id] = image, label
            info = _info_fields(release, p_index, v_index)
            (folder / f"Info_{view}.cfg").write_text(
                "".join(f"{k}: {v}\n" for k, v in info.items()))
            data.info[(patient, view)] = info
            if sequences and p_index == 0:
                seq_id = f"{patient}_{view}_{seq_kind}"
                frames = pattern_image((N_FRAMES, *shape), 100 + v_index)
                _write(folder / f"{seq_id}{ext}", frames, release)
                if release == "2023":
                    labels = np.stack([pattern_label(shape, t % 2) for t in range(N_FRAMES)])
                    _write(folder / f"{seq_id}_gt{ext}", labels, release)
                data.sequences[seq_id] = frames
    return data


def _write(path: Path, array: np.ndarray, release: str) -> None:
    if release == "2019" and array.ndim == 2:
        array = array[None]  # the 2019 .mhd files hold 2D images as one-slice volumes
    import SimpleITK as sitk  # here, not above: GPU machines run tests without it

    image = sitk.GetImageFromArray(array)
    row, col = SPACING
    image.SetSpacing((col, row, 1.0)[: array.ndim])
    sitk.WriteImage(image, str(path), useCompression=path.name.endswith(".gz"))


def _info_fields(release: str, p_index: int, v_index: int) -> dict:
    if release == "2023":
        return {"ED": 1, "ES": 10 + p_index, "NbFrame": 11 + p_index, "Sex": "MF"[p_index % 2],
                "Age": 50 + p_index, "ImageQuality": ("Good", "Medium", "Poor")[p_index % 3],
                "EF": 55 + v_index, "FrameRate": 25.5}
    return {"ED": 1, "ES": 12, "NbFrame": 15, "LVedv": 90.5 + p_index, "LVesv": 40.25,
            "LVef": 55.5, "ImageQuality": "Medium"}


@pytest.fixture
def camus2023(tmp_path) -> SyntheticCamus:
    """A 3-patient CAMUS 2023 release (NIfTI, Info cfg, half sequences) with subgroup files."""
    data = write_camus(tmp_path / "CAMUS_public", "2023")
    split_dir = data.root / "database_split"
    split_dir.mkdir()
    (split_dir / "subgroup_training.txt").write_text("patient0001\npatient0002\n")
    (split_dir / "subgroup_validation.txt").write_text("patient0003\n")
    return data


@pytest.fixture
def camus2019(tmp_path) -> SyntheticCamus:
    """A 3-patient CAMUS 2019 release (MetaImage .mhd/.raw, 2019 Info keys, full sequences)."""
    return write_camus(tmp_path / "camus2019", "2019")
