"""Whole-sequence analysis: LV area curves, ED/ES detection, FAC/EF, temporal consistency,
figures and the JSON summary, on rendered beating sequences with known phases and on a real
Echo-Toolkit label sequence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from echoseg.clinical.figures import curve_figure, temporal_figure
from echoseg.clinical.sequence import (
    PhaseReference,
    area_curve,
    compare_phases,
    cycle_ejection_fraction,
    detect_phases,
    flag_outliers,
    reference_phases,
    sequence_summary,
    volume_curve,
)
from echoseg.clinical.temporal import flicker_frames, temporal_dice, temporal_summary
from echoseg.data.camus import parse_info_cfg
from echoseg.errors import DataError
from echoseg.labels import LA, LV, MYO

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ECHO_TOOLKIT = SHARED / "echo_toolkit" / "segmentation_reference.nii.gz"
CAMUS_INFO = SHARED / "camus_original" / "patient0001" / "Info_2CH.cfg"

PERIOD, SYSTOLE = 20, 8  # frames per beat; ED -> ES takes SYSTOLE frames
A_ED, B_ED, A_ES, B_ES = 26.0, 14.0, 18.0, 10.0  # LV ellipse semi-axes (px) at ED and ES
FAC_ANALYTIC = 100.0 * (1.0 - (A_ES * B_ES) / (A_ED * B_ED))  # pi a b at ED vs ES: 50.55 %


def filling(frames: np.ndarray, period: int = PERIOD, systole: int = SYSTOLE) -> np.ndarray:
    """LV filling in [0, 1] per frame: 1 at ED (phase 0), falls by a half cosine to 0 at ES
    (phase ``systole``), rises back by a slower half cosine until the next ED."""
    phase = np.mod(frames, period).astype(float)
    down = 0.5 * (1 + np.cos(np.pi * phase / systole))
    up = 0.5 * (1 - np.cos(np.pi * (phase - systole) / (period - systole)))
    return np.where(phase < systole, down, up)


def render(fill: np.ndarray, shape: tuple[int, int] = (112, 80)) -> np.ndarray:
    """(T, H, W) uint8 labels: an apex-up LV ellipse whose semi-axes follow ``fill`` (A_ES..A_ED,
    B_ES..B_ED), a 5 px MYO ring around it and an LA below that fills while the LV empties."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    out = np.zeros((len(fill), *shape), np.uint8)
    for t, f in enumerate(fill):
        a, b = A_ES + (A_ED - A_ES) * f, B_ES + (B_ED - B_ES) * f
        lv = ((rows - 34) / a) ** 2 + ((cols - 40) / b) ** 2 <= 1
        myo = ((rows - 34) / (a + 5)) ** 2 + ((cols - 40) / (b + 5)) ** 2 <= 1
        r = 8 + 3 * (1 - f)
        la = ((rows - (39 + a + r)) / r) ** 2 + ((cols - 40) / (1.2 * r)) ** 2 <= 1
        out[t][la], out[t][myo], out[t][lv] = LA, MYO, LV
    return out


@pytest.fixture(scope="module")
def beating() -> np.ndarray:
    """2.5 beats (51 frames) starting 5 frames into systole: ES at 3, 23, 43; ED at 15, 35."""
    return render(filling(np.arange(51) + 5))


def test_beating_sequence_exact_phases(beating):
    areas = area_curve(beating)
    phases = detect_phases(areas)
    assert phases.ed_frames == (15, 35) and phases.es_frames == (3, 23, 43)
    assert phases.cycles == ((15, 23), (35, 43))  # ES 3 has no ED before it: no cycle
    assert phases.flagged == ()
    assert areas[phases.ed_frame] == areas.max() and areas[phases.es_frame] == areas.min()
    # the first frame (mid-systole) and the last (mid-diastole) are not taken as ED/ES
    assert 0 not in phases.ed_frames and 50 not in phases.ed_frames


def test_frame_time_gives_heart_rate_and_same_phases(beating):
    phases = detect_phases(area_curve(beating), frame_time_ms=40.0)
    assert phases.cycles == ((15, 23), (35, 43))
    assert phases.heart_rate_bpm == pytest.approx(75.0)  # 20 frames x 40 ms = 800 ms


def test_frame_time_rejects_implausibly_close_beats():
    curve = 1000 + 300 * np.cos(2 * np.pi * np.arange(18) / 6)  # a "beat" every 6 frames
    assert detect_phases(curve).ed_frames == (0, 6, 12)
    fast = detect_phases(curve, frame_time_ms=20.0)  # 120 ms per beat = 500 bpm
    assert len(fast.ed_frames) == 1 and fast.heart_rate_bpm is None


def test_erased_lv_frame_is_flagged_not_chosen(beating):
    labels = beating.copy()
    labels[30][labels[30] == LV] = 0  # segmentation failure in diastole
    labels[34][labels[34] == LV] = 0  # ... and in the frame before ED 35
    phases = detect_phases(area_curve(labels))
    assert phases.flagged == (30, 34)
    assert phases.ed_frames == (15, 35) and phases.es_frames == (3, 23, 43)
    assert flicker_frames(labels) == [30, 34]
    labels[35][labels[35] == LV] = 0  # the ED frame itself fails: its neighbour stands in
    phases = detect_phases(area_curve(labels))
    assert phases.flagged == (30, 34, 35) and phases.ed_frames == (15, 36)


def test_spike_is_flagged_and_not_chosen_as_ed():
    curve = 1000 + 400 * filling(np.arange(51) + 5)
    curve[27] *= 1.6  # a spike above every ED, in diastole
    phases = detect_phases(curve)
    assert np.flatnonzero(flag_outliers(curve)).tolist() == [27]
    assert phases.flagged == (27,) and phases.ed_frames == (15, 35)
    assert phases.ed_frame == 15  # the largest unflagged value (tie with 35: first)


def test_half_cycle_ed_to_es_with_frame_time():
    fill = filling(np.arange(18), period=36, systole=17)  # ED at frame 0, ES at frame 17
    labels = render(fill)
    phases = detect_phases(area_curve(labels, spacing=(0.3, 0.2)), frame_time_ms=50.0)
    assert phases.ed_frames == (0,) and phases.es_frames == (17,)
    assert phases.cycles == ((0, 17),) and (phases.ed_frame, phases.es_frame) == (0, 17)
    assert phases.heart_rate_bpm is None  # one ED: no interval


def test_fac_against_analytic_value(beating):
    analytic = np.pi * (A_ES + (A_ED - A_ES) * filling(np.arange(51) + 5)) * (
        B_ES + (B_ED - B_ES) * filling(np.arange(51) + 5))
    exact = cycle_ejection_fraction(analytic, detect_phases(analytic))
    assert exact.per_cycle == pytest.approx([FAC_ANALYTIC] * 2)
    assert exact.mean == pytest.approx(FAC_ANALYTIC)
    areas = area_curve(beating, spacing=(0.25, 0.5))  # mm²: pixel counts x 0.125
    np.testing.assert_allclose(areas, area_curve(beating) * 0.125)
    fac = cycle_ejection_fraction(areas, detect_phases(areas))
    assert fac.mean == pytest.approx(FAC_ANALYTIC, abs=1.0)  # rasterized ellipses
    assert fac.from_extremes == pytest.approx(fac.mean)


def test_volume_curve_and_ef():
    fill = filling(np.arange(18), period=36, systole=17)
    a = render(fill)
    volumes = volume_curve(a, a, lambda x, y: float((x == LV).sum()) / 100)
    np.testing.assert_allclose(volumes, area_curve(a) / 100)
    with pytest.raises(DataError, match="as many frames"):
        volume_curve(a, a[:5], lambda x, y: 1.0)
    phases = detect_phases(volumes)
    ef = cycle_ejection_fraction(volumes, phases)
    assert ef.per_cycle[0] == pytest.approx(100 * (1 - volumes[17] / volumes[0]))


def test_comparison_with_reference(tmp_path):
    cfg = tmp_path / "Info_2CH.cfg"
    cfg.write_text("ED: 1\nES: 18\nNbFrame: 18\n")  # CAMUS: 1-based frame numbers
    reference = reference_phases(parse_info_cfg(cfg), "Info_2CH.cfg")
    assert reference == PhaseReference((0,), (17,), "Info_2CH.cfg")
    phases = detect_phases(area_curve(render(filling(np.arange(18), 36, 16))), 40.0)
    assert phases.ed_frames == (0,) and phases.es_frames == (16,)
    diff = compare_phases(phases, reference)
    assert diff["source"] == "Info_2CH.cfg"
    assert diff["ed"] == [{"reference": 0, "detected": 0, "difference_frames": 0,
                           "difference_ms": 0.0}]
    assert diff["es"][0]["difference_frames"] == -1 and diff["es"][0]["difference_ms"] == -40.0
    with pytest.raises(DataError, match="ED must be a 1-based frame number"):
        reference_phases({"ED": 0, "ES": 3})


@pytest.mark.shared_data
def test_camus_info_convention():
    if not CAMUS_INFO.is_file():
        pytest.skip(f"{CAMUS_INFO} not found")
    info = parse_info_cfg(CAMUS_INFO)
    assert (info["ED"], info["ES"], info["NbFrame"]) == (1, 18, 18)
    reference = reference_phases(info)  # ED the first frame, ES the last
    assert (reference.ed, reference.es) == ((0,), (17,))


def test_temporal_dice_and_flicker(beating):
    dice = temporal_dice(beating)
    assert set(dice) == {"LV", "MYO", "LA"} and all(len(d) == 50 for d in dice.values())
    assert min(float(d.min()) for d in dice.values()) > 0.7
    assert flicker_frames(beating) == []  # fast but smooth systole is no flicker
    shifted = beating.copy()
    shifted[30] = np.roll(shifted[30], 6, axis=1)  # one frame jumps sideways
    assert flicker_frames(shifted) == [30]
    summary = temporal_summary(shifted)
    assert summary["flicker_frames"] == [30]
    assert summary["temporal_dice"]["LV"]["min"] < 0.8 < float(dice["LV"].min())


def test_summary_is_json_and_complete(beating, tmp_path):
    volumes = area_curve(beating) / 50.0
    summary = sequence_summary(beating, (0.3, 0.3), 40.0, volumes=volumes,
                               reference=PhaseReference((15,), (23,)))
    text = json.dumps(summary, allow_nan=False)
    back = json.loads(text)
    assert back["n_frames"] == 51 and back["frame_time_ms"] == 40.0
    assert back["curve_unit"] == "mm2" and len(back["lv_area"]) == 51
    assert back["cycles"] == [{"ed": 15, "es": 23}, {"ed": 35, "es": 43}]
    assert back["flagged_frames"] == [] and back["flicker_frames"] == []
    assert back["fac"]["mean"] == pytest.approx(FAC_ANALYTIC, abs=1.0)
    assert back["ef"]["mean"] == pytest.approx(back["fac"]["mean"])
    assert back["reference"]["es"][0]["difference_frames"] == 0
    assert set(back["temporal_dice"]) == {"LV", "MYO", "LA"}
    plain = sequence_summary(beating)
    assert plain["curve_unit"] == "px2" and plain["ef"] is None and plain["reference"] is None
    with pytest.raises(DataError, match="shape"):
        sequence_summary(beating[0])


def test_figures_are_written(beating, tmp_path):
    labels = beating.copy()
    labels[30][labels[30] == LV] = 0
    areas = area_curve(labels)
    phases = detect_phases(areas, 40.0)
    curve_png = curve_figure(areas, phases, tmp_path / "curve.png",
                             reference=PhaseReference((15, 35), (23,), "test"),
                             title="synthetic")
    dice_png = temporal_figure(temporal_dice(labels), tmp_path / "sub" / "dice.png",
                               flicker=flicker_frames(labels), frame_time_ms=40.0)
    for path in (curve_png, dice_png):
        data = Path(path).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["curve.png", "dice.png", "sub"]


def test_degenerate_curves():
    assert detect_phases(np.full(6, 5.0)).ed_frames == ()
    flat = detect_phases([0.0, 0.0, 0.0])
    assert flat.flagged == (0, 1, 2) and flat.ed_frame is None
    assert cycle_ejection_fraction([0.0, 0.0, 0.0], flat).mean is None
    with pytest.raises(ValueError, match="1D curve"):
        detect_phases(np.zeros((2, 3)))
    with pytest.raises(DataError, match="frame time"):
        detect_phases(np.arange(5.0), frame_time_ms=0.0)


@pytest.mark.shared_data
def test_echo_toolkit_reference_sequence():
    """Real label sequence (25 frames, 416 x 513, 0.4556 mm, labels 0/1 LV/2 MYO, no LA).
    LV area: 10329 px (2144.3 mm²) at frame 0, minimum 8392 px (1742.2 mm²) at frame 10,
    maximum 10606 px (2201.8 mm²) at frame 24: ED 0 -> ES 10 -> ED 24, one cycle, FAC 18.8 %."""
    if not ECHO_TOOLKIT.is_file():
        pytest.skip(f"{ECHO_TOOLKIT} not found")
    from echoseg.data.readers import read_label_map

    labels, spacing = read_label_map(ECHO_TOOLKIT)
    assert labels.shape == (25, 416, 513) and set(np.unique(labels)) == {0, LV, MYO}
    pixels = area_curve(labels)
    assert pixels[[0, 10, 24]].tolist() == [10329, 8392, 10606]
    areas = area_curve(labels, spacing)
    phases = detect_phases(areas)
    assert phases.ed_frame == int(np.argmax(areas)) == 24
    assert phases.es_frame == int(np.argmin(areas)) == 10
    assert phases.ed_frames == (0, 24) and phases.es_frames == (10,)
    assert phases.cycles == ((0, 10),) and phases.flagged == ()
    fac = cycle_ejection_fraction(areas, phases)
    assert fac.mean == pytest.approx(100 * (10329 - 8392) / 10329)
    summary = sequence_summary(labels, spacing)
    assert summary["temporal_dice"]["LA"] is None  # absent: not scored
    assert summary["temporal_dice"]["LV"]["min"] > 0.95 and summary["flicker_frames"] == []
    json.dumps(summary, allow_nan=False)
