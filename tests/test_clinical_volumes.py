"""LV volumes and EF by the method of disks: analytic ellipsoids, broken inputs, real CAMUS."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from echoseg.clinical import (
    area_length_volume,
    biplane_volume,
    frame_volume,
    measure_view,
    patient_measurements,
    single_plane_volume,
)
from echoseg.clinical.geometry import LV_APART, NO_LA, SHORT_CONTACT
from echoseg.clinical.volumes import SWAPPED
from echoseg.errors import DataError

CAMUS_ORIGINAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "camus_original"
CAMUS_SPACING = (0.154, 0.308)  # mm (row, col), as the 2019 release


def render(length: float, radius: float, spacing=(0.3, 0.3), *, tilt: float = 0.0,
           la: bool = True, la_gap: float = 0.0, myo: bool = True) -> np.ndarray:
    """The central section of a half prolate ellipsoid LV (long semi-axis ``length``, short
    ``radius``, mm, base at its equator) as a label map: apex at the top, a 6 mm MYO wall, an
    LA half-ellipse below the base (``la_gap`` mm away), the axis tilted by ``tilt`` degrees,
    on a 100 x 80 mm canvas with the base 70 mm from the top. Pixel (r, c) is inside a
    structure when its centre (r * row_mm, c * col_mm) is."""
    row_mm, col_mm = spacing
    height, width = math.ceil(100 / row_mm), math.ceil(80 / col_mm)
    base_row = round(70 / row_mm) + 0.5  # the base on a pixel edge when not tilted
    dy = (np.arange(height)[:, None] - base_row) * row_mm
    dx = (np.arange(width)[None, :] - width / 2) * col_mm
    angle = math.radians(tilt)
    up = -dy * math.cos(angle) + dx * math.sin(angle)  # height above the base along the axis
    across = dy * math.sin(angle) + dx * math.cos(angle)
    labels = np.zeros((height, width), np.uint8)
    lv = (up > 0) & ((up / length) ** 2 + (across / radius) ** 2 <= 1)
    if myo:
        wall = (up > 0) & ((up / (length + 6)) ** 2 + (across / (radius + 6)) ** 2 <= 1)
        labels[wall] = 2
    if la:
        labels[(up < -la_gap) & (((up + la_gap) / 20) ** 2 + (across / radius) ** 2 <= 1)] = 3
    labels[lv] = 1
    return labels


def half_ellipsoid(length: float, r1: float, r2: float) -> float:
    """Volume of half an ellipsoid of semi-axes (length, r1, r2): 2/3 pi L r1 r2."""
    return 2 / 3 * math.pi * length * r1 * r2


def four_views(spacing=(0.3, 0.3), **kw) -> dict:
    """ED: L 45 mm, radii 17 (2CH) and 20 (4CH); ES: L 38 mm, radii 12 and 14."""
    sizes = {("2CH", "ED"): (45, 17), ("4CH", "ED"): (45, 20),
             ("2CH", "ES"): (38, 12), ("4CH", "ES"): (38, 14)}
    return {key: (render(*size, spacing, **kw), spacing) for key, size in sizes.items()}


EDV = half_ellipsoid(45, 17, 20) / 1000  # 32.04 mL
ESV = half_ellipsoid(38, 12, 14) / 1000  # 13.37 mL


@pytest.mark.parametrize("spacing", [(0.3, 0.3), CAMUS_SPACING, (0.308, 0.154)])
def test_biplane_ellipsoid_matches_analytic_volume(spacing):
    result = patient_measurements(four_views(spacing))
    assert result.method == "biplane" and result.volume_unit == "mL"
    assert result.problems == []
    assert result.edv == pytest.approx(EDV, rel=0.02)
    assert result.esv == pytest.approx(ESV, rel=0.02)
    assert result.ef == pytest.approx(100 * (EDV - ESV) / EDV, abs=1.0)


@pytest.mark.parametrize("spacing", [(0.3, 0.3), CAMUS_SPACING])
def test_view_geometry_and_single_view_volumes(spacing):
    view = measure_view(render(45, 20, spacing), spacing)
    assert view.unit == "mm" and view.base_method == "LA" and view.problems == []
    assert view.length == pytest.approx(45, rel=0.01)
    assert view.area == pytest.approx(math.pi * 45 * 20 / 2, rel=0.01)
    # the disks are centred on their slabs: disk 10 sits at 10.5/20 of the axis
    assert view.diameters[10] == pytest.approx(40 * math.sqrt(1 - (10.5 / 20) ** 2), rel=0.01)
    assert view.diameters_at([0.5, 1.5])[0] == pytest.approx(40 * math.sqrt(0.75), rel=0.01)
    assert view.diameters_at([0.5, 1.5])[1] == 0
    expected = half_ellipsoid(45, 20, 20) / 1000  # circular sections: single plane is exact
    assert single_plane_volume(view) == pytest.approx(expected, rel=0.02)
    assert area_length_volume(view) == pytest.approx(expected, rel=0.02)  # exact for it too
    # base on the LV-LA edge, apex at the top of the ellipse, in pixels of the map
    width = view.shape[1]
    base_row = round(70 / spacing[0]) + 0.5
    np.testing.assert_allclose(view.base_mid, [base_row, width / 2], atol=1.0)
    assert view.apex[0] == pytest.approx(base_row - 45 / spacing[0], abs=1.0)
    ends = view.disk_segments[10]  # each end lies on the ellipse: half-width there
    assert abs(ends[1, 1] - ends[0, 1]) * spacing[1] == pytest.approx(view.diameters[10], rel=0.01)


def test_tilted_axis_and_pixel_units():
    tilted = measure_view(render(45, 20, tilt=15), (0.3, 0.3))
    assert single_plane_volume(tilted) == pytest.approx(half_ellipsoid(45, 20, 20) / 1000,
                                                        rel=0.02)
    in_pixels = measure_view(render(60, 25, (1.0, 1.0)), None)  # no spacing: pixels
    assert in_pixels.unit == "px" and in_pixels.length == pytest.approx(60, rel=0.01)
    assert single_plane_volume(in_pixels) == pytest.approx(half_ellipsoid(60, 25, 25), rel=0.02)
    views = {(v, p): (render(60, 25, (1.0, 1.0)), None) for v in ("2CH", "4CH")
             for p in ("ED", "ES")}
    result = patient_measurements(views)
    assert result.volume_unit == "px^3" and result.ef == pytest.approx(0.0)
    assert result.edv == pytest.approx(half_ellipsoid(60, 25, 25), rel=0.02)


def test_disk_height_is_taken_per_phase_from_the_longer_view():
    a2c, a4c = measure_view(render(40, 17), (0.3, 0.3)), measure_view(render(45, 20), (0.3, 0.3))
    expected = math.pi / 4 * (a4c.length / 20) * float(np.sum(a2c.diameters * a4c.diameters))
    assert biplane_volume(a2c, a4c) == pytest.approx(expected / 1000)
    assert biplane_volume(a4c, a2c) == pytest.approx(expected / 1000)
    labels = render(45, 20, (0.3, 0.3))
    assert frame_volume(labels, labels, (0.3, 0.3), (0.3, 0.3)) == pytest.approx(
        single_plane_volume(a4c))
    with pytest.raises(DataError, match="^biplane volume: the pixel spacing of only one view"):
        frame_volume(labels, labels, (0.3, 0.3), None)


def test_single_view_and_single_phase():
    views = four_views()
    only_4ch = {k: v for k, v in views.items() if k[0] == "4CH"}
    result = patient_measurements(only_4ch)
    assert result.method == "single-plane 4CH" and result.problems == []
    assert result.edv == pytest.approx(half_ellipsoid(45, 20, 20) / 1000, rel=0.02)
    assert result.esv == pytest.approx(half_ellipsoid(38, 14, 14) / 1000, rel=0.02)
    assert result.ef == pytest.approx(100 * (1 - result.esv / result.edv))
    ed_only = patient_measurements({k: v for k, v in views.items() if k[1] == "ED"})
    assert (ed_only.method, ed_only.esv, ed_only.ef) == ("biplane", None, None)
    assert ed_only.edv == pytest.approx(EDV, rel=0.02)
    report = ed_only.to_dict()
    assert report["views"]["4CH_ED"]["length"] == pytest.approx(45, rel=0.01)
    assert report["views"]["4CH_ED"]["single_plane"] == pytest.approx(
        half_ellipsoid(45, 20, 20) / 1000, rel=0.02)


def test_missing_lv_is_one_line_and_other_views_still_count():
    empty = np.zeros((60, 50), np.uint8)
    with pytest.raises(DataError, match=r"^no LV \(label 1\) in the label map$"):
        measure_view(empty, (0.3, 0.3))
    views = four_views()
    views["2CH", "ES"] = (np.zeros_like(views["2CH", "ES"][0]), (0.3, 0.3))
    result = patient_measurements(views, patient="patient0042")
    assert result.problems == ["2CH ES: no LV (label 1) in the label map"]
    assert result.messages() == ["patient0042: 2CH ES: no LV (label 1) in the label map"]
    assert result.method == "single-plane 4CH"  # the view seen at both phases
    assert result.edv == pytest.approx(half_ellipsoid(45, 20, 20) / 1000, rel=0.02)
    nothing = patient_measurements({("4CH", "ED"): (empty, None)})
    assert (nothing.method, nothing.edv, nothing.ef) == ("none", None, None)
    assert nothing.problems == ["4CH ED: no LV (label 1) in the label map"]


def test_broken_maps_give_exact_messages():
    with pytest.raises(DataError, match=r"^expected a 2D label map, got shape \(2, 3, 4\)$"):
        measure_view(np.zeros((2, 3, 4), np.uint8), None)
    with pytest.raises(DataError, match=r"^invalid pixel spacing \(0\.3, -1\.0\): expected"):
        measure_view(render(45, 20), (0.3, -1.0))
    one_slice = measure_view(render(45, 20)[None], (0.3, 0.3))  # as a 2019 .mhd holds it
    assert one_slice.length == pytest.approx(45, rel=0.01)
    tiny = np.zeros((30, 30), np.uint8)
    tiny[10:13, 10:13] = 1
    with pytest.raises(DataError, match=r"^LV too small to measure \(9 pixels\)$"):
        measure_view(tiny, None)
    with pytest.raises(ValueError, match="unknown view key"):
        patient_measurements({("3CH", "ED"): (tiny, None)})


def test_lv_in_pieces_is_flagged_and_the_largest_measured():
    labels = render(45, 20)
    labels[2:8, 2:8] = 1  # a stray LV speck in the corner
    total = int((labels == 1).sum())
    view = measure_view(labels, (0.3, 0.3))
    share = 100 * (total - 36) / total
    assert view.problems == [
        f"LV in 2 pieces: measured the largest ({share:.0f}% of the LV pixels)"]
    assert single_plane_volume(view) == pytest.approx(half_ellipsoid(45, 20, 20) / 1000, rel=0.02)


@pytest.mark.parametrize(("kw", "problem"), [({"la": False}, NO_LA),
                                             ({"la_gap": 5.0}, LV_APART)])
def test_fallback_base_without_lv_la_contact(kw, problem):
    view = measure_view(render(45, 20, **kw), (0.3, 0.3))
    assert view.base_method == "chord" and view.problems == [problem]
    assert view.length == pytest.approx(45, rel=0.01)
    assert single_plane_volume(view) == pytest.approx(half_ellipsoid(45, 20, 20) / 1000, rel=0.02)
    assert problem.endswith("base from the longest near-horizontal LV chord")


def test_stray_lv_la_touch_is_not_taken_for_the_base():
    labels = render(45, 20, la_gap=5.0)
    rows, cols = np.nonzero(labels == 1)
    side = cols.argmax()  # the LV's right-most pixel: an LA speck touches it there
    labels[rows[side] - 1:rows[side] + 2, cols[side] + 1:cols[side] + 4] = 3
    view = measure_view(labels, (0.3, 0.3))
    assert view.base_method == "chord" and view.problems == [SHORT_CONTACT]
    assert view.length == pytest.approx(45, rel=0.01)


def test_patient_level_consistency_problems():
    views = four_views()
    swapped = patient_measurements({(v, "ED" if p == "ES" else "ES"): m
                                    for (v, p), m in views.items()})
    assert swapped.problems == [SWAPPED] == ["EF < 0: ED and ES swapped?"]
    assert swapped.ef == pytest.approx(100 * (ESV - EDV) / ESV, abs=1.0)
    resized = dict(views)
    resized["2CH", "ES"] = (resized["2CH", "ES"][0][:-10], (0.3, 0.3))
    h, w = views["2CH", "ED"][0].shape
    assert patient_measurements(resized).problems == [
        f"2CH: ED is {h}x{w} pixels but ES is {h - 10}x{w} (images of different acquisitions?)"]
    short = dict(views)
    short["2CH", "ED"] = (render(30, 17), (0.3, 0.3))
    assert patient_measurements(short).problems == [
        "ED: 2CH and 4CH long axes differ by 33% "
        "(foreshortened view, or views of different patients?)"]
    mixed = dict(views)
    mixed["4CH", "ES"] = (views["4CH", "ES"][0], None)
    result = patient_measurements(mixed)
    assert result.volume_unit == "px^3" and result.problems == [
        "pixel spacing unknown for 4CH ES: all volumes in px^3"]
    crossed = patient_measurements({("2CH", "ED"): views["2CH", "ED"],
                                    ("4CH", "ES"): views["4CH", "ES"]})
    assert (crossed.method, crossed.ef) == ("single-plane (mixed views)", None)
    assert crossed.problems == ["no view measured at both ED and ES: EF not computed"]


def test_disk_figure(tmp_path):
    from echoseg.clinical.disk_figure import plot_disks

    labels = render(45, 20, CAMUS_SPACING)
    path = plot_disks(None, labels, measure_view(labels, CAMUS_SPACING), tmp_path / "d.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def camus_original() -> Path:
    """The 2 real CAMUS patients of the 2019 layout beside the repository; skips when absent."""
    if not (CAMUS_ORIGINAL / "patient0001" / "Info_2CH.cfg").is_file():
        pytest.skip(f"{CAMUS_ORIGINAL} not found")
    return CAMUS_ORIGINAL


def _real_views(folder: Path, drop_la: bool = False) -> dict:
    from echoseg.data.readers import read_label_map

    views = {}
    for view in ("2CH", "4CH"):
        for phase in ("ED", "ES"):
            labels, spacing = read_label_map(folder / f"{folder.name}_{view}_{phase}_gt.mhd")
            assert labels.shape[0] > labels.shape[1] and spacing == CAMUS_SPACING
            # apex at the top: the LV starts above the LA, which reaches the bottom rows
            rows = {k: np.flatnonzero((labels == k).any(axis=1)) for k in (1, 3)}
            assert rows[1].min() < rows[3].min() and rows[3].max() > rows[1].max()
            views[view, phase] = (np.where(labels == 3, 0, labels) if drop_la else labels,
                                  spacing)
    return views


@pytest.mark.shared_data
@pytest.mark.parametrize("patient", ["patient0001", "patient0002"])
@pytest.mark.parametrize("drop_la", [False, True])
def test_real_camus_matches_info_cfg(camus_original, patient, drop_la):
    from echoseg.data.camus import parse_info_cfg

    info = parse_info_cfg(camus_original / patient / "Info_2CH.cfg")
    result = patient_measurements(_real_views(camus_original / patient, drop_la), patient)
    assert result.method == "biplane" and result.volume_unit == "mL"
    assert result.problems == ([f"{v} {p}: {NO_LA}" for v in ("2CH", "4CH") for p in ("ED", "ES")]
                               if drop_la else [])
    assert result.edv == pytest.approx(info["LVedv"], rel=0.03)
    assert result.esv == pytest.approx(info["LVesv"], rel=0.03)
    assert result.ef == pytest.approx(info["LVef"], abs=1.0)
