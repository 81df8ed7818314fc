"""Anatomical plausibility criteria: a synthetic heart that passes every criterion, the same
heart broken one way at a time, and the real CAMUS ground truths in tests/data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from echoseg.metrics import (
    ANATOMICAL_THRESHOLDS,
    CRITERIA,
    anatomical_errors,
    is_anatomical_outlier,
)

BG, LV, MYO, LA = 0, 1, 2, 3
DATA = Path(__file__).parent / "data" / "camus224"
ROWS, COLS = np.mgrid[:224, :224]
BASE = 140  # the mitral plane: LV and MYO above, LA below


def ellipse(cy, cx, ry, rx):
    return (ROWS - cy) ** 2 / ry**2 + (COLS - cx) ** 2 / rx**2 <= 1


def heart(la_rx=26, thickness=10):
    """Apex up, 224x224: LV ellipse, MYO horseshoe ``thickness`` px wide around it, open at the
    base, LA below (narrower than the LV where they meet)."""
    lv = ellipse(90, 112, 55, 28) & (ROWS <= BASE)
    myo = ellipse(88, 112, 55 + thickness, 28 + thickness) & (ROWS <= BASE) & ~lv
    la = ellipse(168, 112, 28, la_rx) & (ROWS > BASE)
    m = np.zeros((224, 224), np.uint8)
    m[myo], m[lv], m[la] = MYO, LV, LA
    return m


def failing(label_map):
    errors = anatomical_errors(label_map)
    return {c for c in CRITERIA if not errors[f"{c}_ok"]}


def test_synthetic_heart_passes_every_criterion():
    errors = anatomical_errors(heart())
    assert failing(heart()) == set()
    assert errors["outlier"] is False and not is_anatomical_outlier(heart())
    assert errors["components_in_myo"] == 1 and errors["holes_in_lv"] == 0
    assert 0 < errors["frontier_ratio_lv_bg"] <= 0.4
    assert errors["frontier_ratio_myo_la"] == 0  # the LA is narrower than the LV at the base


def hole_in_lv(m):
    m[90, 112] = BG  # one pixel: a larger hole also puts the LV on background (frontier ratio)
    return m


def hole_in_la(m):
    m[168:170, 112:114] = BG
    return m


def hole_in_myo_wall(m):
    m[88:90, 78:80] = BG  # inside the left wall, enclosed by MYO alone
    return m


def gap_lv_myo(m):
    m[88:90, 84:86] = BG  # on the LV/MYO border: enclosed by LV and MYO together
    return m


def gap_lv_la(m):
    m[139:141, 110:113] = BG  # notch in the LV's base, closed by the LA below
    return m


def second_lv(m):
    m[5:9, 5:9] = LV
    return m


def second_myo(m):
    m[5:9, 5:9] = MYO
    return m


def second_la(m):
    m[215:219, 5:9] = LA
    return m


def lv_on_background(m):
    m[(m == MYO) & (COLS < 112) & (ROWS >= 100)] = BG  # left wall gone from row 100 down
    return m


def wide_la():
    return heart(la_rx=60)  # LA as wide as the heart: it meets the MYO along the base


def keep_inner_myo(m, rows):
    """On ``rows``, cut the MYO down to the one pixel on each side that touches the LV."""
    for r in rows:
        lv_cols = np.flatnonzero(m[r] == LV)
        keep = (lv_cols[0] - 1, lv_cols[-1] + 1)
        cut = (m[r] == MYO) & ~np.isin(np.arange(m.shape[1]), keep)
        m[r, cut] = BG
    return m


def thin_myo_at_centre(m):
    return keep_inner_myo(m, range(82, 89))  # LV+MYO centre of mass is on row 85


def myo_neck():
    # walls 20 px thick (distance transform ~10) pinched to 1 px on two rows: splits after one
    # erosion, 1/10 < 0.12
    m = heart(thickness=20)
    return keep_inner_myo(m, range(60, 62))


BREAKS = [
    (hole_in_lv, {"holes_in_lv", "holes_in_lv_myo"}),
    (hole_in_la, {"holes_in_la"}),
    (hole_in_myo_wall, {"holes_in_lv_myo"}),
    (gap_lv_myo, {"holes_in_lv_myo", "holes_between_lv_and_myo"}),
    (gap_lv_la, {"holes_between_lv_and_la"}),
    (second_lv, {"components_in_lv"}),
    (second_myo, {"components_in_myo", "erosion_ratio_myo"}),  # two pieces: split at 0 erosions
    (second_la, {"components_in_la"}),
    (lv_on_background, {"frontier_ratio_lv_bg"}),
    (lambda m: wide_la(), {"frontier_ratio_myo_la"}),
    (thin_myo_at_centre, {"width_ratio_lv_myo"}),
    (lambda m: myo_neck(), {"erosion_ratio_myo"}),
]


@pytest.mark.parametrize(("breaker", "expected"), BREAKS, ids=[
    "hole_in_lv", "hole_in_la", "hole_in_myo_wall", "gap_lv_myo", "gap_lv_la", "second_lv",
    "second_myo", "second_la", "lv_on_background", "wide_la", "thin_myo_at_centre", "myo_neck"])
def test_each_broken_heart_fails_exactly_the_expected_criteria(breaker, expected):
    broken = breaker(heart())
    assert failing(broken) == expected
    assert is_anatomical_outlier(broken)


def test_measured_values_of_broken_hearts():
    assert anatomical_errors(hole_in_lv(heart()))["holes_in_lv"] == 1
    assert anatomical_errors(second_lv(heart()))["components_in_lv"] == 2
    assert anatomical_errors(gap_lv_la(heart()))["holes_between_lv_and_la"] == 6
    assert anatomical_errors(thin_myo_at_centre(heart()))["width_ratio_lv_myo"] > 4.15


def test_small_gaps_are_tolerated():
    # H*W / 2^14 = 3.06 pixels on 224x224: a 3-pixel gap passes, a 4-pixel one fails
    m = heart()
    m[140, 110:113] = BG
    errors = anatomical_errors(m)
    assert errors["holes_between_lv_and_la"] == 3 and errors["holes_between_lv_and_la_ok"]
    m[140, 113] = BG
    assert not anatomical_errors(m)["holes_between_lv_and_la_ok"]


@pytest.mark.parametrize("missing", [LV, MYO, LA])
def test_a_missing_structure_is_a_failure(missing):
    m = heart()
    m[m == missing] = BG
    errors = anatomical_errors(m)
    assert errors["outlier"] is True
    name = {LV: "lv", MYO: "myo", LA: "la"}[missing]
    assert errors[f"components_in_{name}"] == 0 and not errors[f"components_in_{name}_ok"]
    nan_criteria = [c for c in CRITERIA if isinstance(errors[c], float) and math.isnan(errors[c])]
    assert nan_criteria and all(not errors[f"{c}_ok"] for c in nan_criteria)


def test_empty_map_fails_everything():
    errors = anatomical_errors(np.zeros((64, 64), np.uint8))
    assert errors["outlier"] and not any(errors[f"{c}_ok"] for c in CRITERIA)


def test_thresholds_table_covers_every_criterion():
    assert set(ANATOMICAL_THRESHOLDS) == set(CRITERIA) and len(CRITERIA) == 12
    assert ANATOMICAL_THRESHOLDS["frontier_ratio_lv_bg"] == {"max": 0.4}
    assert ANATOMICAL_THRESHOLDS["erosion_ratio_myo"] == {"min": 0.12}


def test_real_ground_truths_are_plausible():
    paths = sorted(DATA.glob("*/*_gt.png"))
    assert len(paths) == 32
    failures = {p.name: failing(np.asarray(Image.open(p))) for p in paths}
    outliers = {name: crits for name, crits in failures.items() if crits}
    # Known: 7 of the 32 (aspect-distorted 224x224) maps exceed the MYO-LA frontier ratio of
    # 0.11, where an oblique mitral plane lets MYO touch LA diagonally; nothing else fails.
    assert all(crits == {"frontier_ratio_myo_la"} for crits in outliers.values()), outliers
    assert len(outliers) <= 7, sorted(outliers)
