"""Dice, Hausdorff and aggregation: hand-computed values and agreement with MONAI."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import ndimage

from echoseg.metrics import Accumulator, dice, hausdorff, nan_stats


def square(shape=(40, 40), top=5, left=5, size=10, label=1):
    m = np.zeros(shape, dtype=np.uint8)
    m[top : top + size, left : left + size] = label
    return m


# Two 10x10 squares: identical, shifted 3 rows, shifted 3 columns; a 4x4 square vs its 2x2 corner.
DICE_CASES = [
    (square(), square(), 1.0),
    (square(top=8), square(), 2 * 70 / 200),
    (square(left=8), square(), 2 * 70 / 200),
    (square(size=2), square(size=4), 2 * 4 / (4 + 16)),
    (square(top=25), square(), 0.0),
    (np.zeros((8, 8), np.uint8), square((8, 8), 1, 1, 3), 0.0),
    (np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), 1.0),  # both empty -> 1.0
]


@pytest.mark.parametrize(("pred", "gt", "expected"), DICE_CASES)
def test_dice_known_values(pred, gt, expected):
    assert dice(pred, gt, 1) == pytest.approx(expected, abs=1e-12)


def test_dice_scores_only_the_requested_label():
    pred, gt = square(label=2), square(label=2)
    pred[0, 0] = 1
    assert dice(pred, gt, 2) == 1.0
    assert dice(pred, gt, 1) == 0.0
    assert dice(pred, gt, 3) == 1.0  # absent from both


def test_dice_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        dice(np.zeros((4, 4), int), np.zeros((4, 5), int), 1)


def dots(shape, *points):
    m = np.zeros(shape, dtype=np.uint8)
    for r, c in points:
        m[r, c] = 1
    return m


def square_with_islands(*cols):
    """gt: 10x10 square rows/cols 10..19; pred: the same square plus single pixels on row 14."""
    gt = square((40, 50), 10, 10, 10)
    pred = gt.copy()
    pred[14, list(cols)] = 1
    return pred, gt


HD_CASES = [
    # pred, gt, spacing (row, col) mm, percentile, expected
    (square(), square(), None, None, 0.0),
    (square(top=8), square(), None, None, 3.0),  # 3 rows apart
    (square(top=8), square(), (0.5, 2.0), None, 1.5),  # 3 rows x 0.5 mm
    (square(left=8), square(), (0.5, 2.0), None, 6.0),  # 3 cols x 2.0 mm
    (dots((8, 8), (0, 0)), dots((8, 8), (3, 4)), None, None, 5.0),
    (dots((8, 8), (0, 0)), dots((8, 8), (3, 4)), (2.0, 1.0), None, math.sqrt(36 + 16)),
    # an island 11 px right of the square: max sees it, the 95th percentile of the 37 pred
    # boundary distances (36 zeros and 11; position 0.95*36 = 34.2) does not
    (*square_with_islands(30), None, None, 11.0),
    (*square_with_islands(30), None, 95, 0.0),
    # two islands (11 and 21 px): 38 distances, position 0.95*37 = 35.15 -> 0 + 0.15 * 11
    (*square_with_islands(30, 40), None, 95, 0.15 * 11),
    (*square_with_islands(30, 40), None, 100, 21.0),
    (*square_with_islands(30, 40), (1.0, 0.5), None, 10.5),
    # ground truth filling a 5x10 image: its boundary is the image's edge (outside is outside);
    # its right column is 5 px from the left half's boundary
    (np.pad(np.ones((5, 5), np.uint8), ((0, 0), (0, 5))), np.ones((5, 10), np.uint8), None, None,
     5.0),
]


@pytest.mark.parametrize(("pred", "gt", "spacing", "percentile", "expected"), HD_CASES)
def test_hausdorff_known_values(pred, gt, spacing, percentile, expected):
    got = hausdorff(pred, gt, 1, spacing=spacing, percentile=percentile)
    assert got == pytest.approx(expected, abs=1e-9)
    # symmetric
    assert hausdorff(gt, pred, 1, spacing=spacing, percentile=percentile) == pytest.approx(got)


@pytest.mark.parametrize(
    ("pred", "gt"),
    [(np.zeros((6, 6), np.uint8), square((6, 6), 1, 1, 2)),
     (square((6, 6), 1, 1, 2), np.zeros((6, 6), np.uint8)),
     (np.zeros((6, 6), np.uint8), np.zeros((6, 6), np.uint8))],
)
@pytest.mark.parametrize("percentile", [None, 95])
def test_hausdorff_is_nan_when_a_structure_is_missing(pred, gt, percentile):
    assert math.isnan(hausdorff(pred, gt, 1, percentile=percentile))


@pytest.mark.parametrize("spacing", [(1.0,), (0.0, 1.0), (-1.0, 1.0), (math.nan, 1.0)])
def test_hausdorff_rejects_bad_spacing(spacing):
    with pytest.raises(ValueError, match="spacing"):
        hausdorff(square(), square(), 1, spacing=spacing)


def _blob(rng, shape):
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=rng.uniform(2, 7))
    return (noise > np.quantile(noise, rng.uniform(0.55, 0.95))).astype(np.uint8)


def _monai_hd(pred, gt, spacing, percentile):
    torch = pytest.importorskip("torch")
    metrics = pytest.importorskip("monai.metrics")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = metrics.compute_hausdorff_distance(
            torch.from_numpy(pred[None, None].astype(np.float32)),
            torch.from_numpy(gt[None, None].astype(np.float32)),
            include_background=True,
            percentile=percentile,
            spacing=None if spacing is None else list(spacing),
        )
    return float(value.item())


def _shapes():
    rng = np.random.default_rng(20240607)
    shapes = []
    for _ in range(20):
        shape = (int(rng.integers(24, 90)), int(rng.integers(24, 90)))
        shapes.append((_blob(rng, shape), _blob(rng, shape)))
    # hand-made: shifted squares, touching the image border, nested, one pixel
    shapes.append((square(top=8), square()))
    shapes.append((np.pad(np.ones((5, 5), np.uint8), ((0, 0), (0, 5))), np.ones((5, 10), np.uint8)))
    shapes.append((square((30, 30), 5, 5, 20), square((30, 30), 10, 10, 4)))
    shapes.append((dots((9, 9), (4, 4)), square((9, 9), 0, 0, 9)))
    return shapes


@pytest.mark.parametrize("spacing", [None, (0.5, 2.0), (0.154, 0.308)])
@pytest.mark.parametrize("percentile", [None, 95])
def test_hausdorff_agrees_with_monai(spacing, percentile):
    # MONAI returns float32, so agreement is to 1e-6 relative to the distance (>= 1e-6 absolute)
    for pred, gt in _shapes():
        ours = hausdorff(pred, gt, 1, spacing=spacing, percentile=percentile)
        ref = _monai_hd(pred, gt, spacing, percentile)
        assert abs(ours - ref) <= 1e-6 * max(1.0, abs(ref)), (pred.shape, ours, ref)


def test_nan_stats_skips_and_counts_nans():
    st = nan_stats([1.0, math.nan, 3.0])
    assert (st.mean, st.std, st.n, st.nan) == (2.0, 1.0, 2, 1)
    empty = nan_stats([math.nan])
    assert math.isnan(empty.mean) and (empty.n, empty.nan) == (0, 1)


def test_accumulator_collects_named_values():
    acc = Accumulator()
    acc.add(dice=0.5, hd=math.nan)
    acc.add(dice=1.0, hd=4.0)
    assert acc.stats("dice").mean == 0.75
    assert (acc.stats("hd").mean, acc.stats("hd").nan) == (4.0, 1)
    assert acc.stats("missing").n == 0
