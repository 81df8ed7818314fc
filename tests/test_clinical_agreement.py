"""Agreement statistics (echoseg.clinical.agreement) on hand-computed tables."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from echoseg.clinical.agreement import JSON_KEYS, agreement, compare_sources, paired

# a - b = 2, -3, 5, -1: bias 0.75; deviations 1.25, -3.75, 4.25, -1.75 -> squares sum 36.75,
# / 3 = 12.25, SD 3.5; MAE (2 + 3 + 5 + 1) / 4 = 2.75.
# r: centred a -1.25, 8.75, 3.75, -11.25 and b -2.5, 12.5, -0.5, -9.5 -> cross sum 217.5,
# sums of squares 218.75 and 253.
A = [50.0, 60.0, 55.0, 40.0]
B = [48.0, 63.0, 50.0, 41.0]


def test_hand_computed_table():
    ag = agreement(A, B, a="prediction", b="expert")
    assert ag.n == 4
    assert ag.bias == pytest.approx(0.75, abs=1e-12)
    assert ag.sd == pytest.approx(3.5, abs=1e-12)
    assert ag.loa_low == pytest.approx(0.75 - 1.96 * 3.5, abs=1e-12)
    assert ag.loa_high == pytest.approx(0.75 + 1.96 * 3.5, abs=1e-12)
    assert ag.mae == pytest.approx(2.75, abs=1e-12)
    assert ag.r == pytest.approx(217.5 / math.sqrt(218.75 * 253), abs=1e-12)
    assert ag.note() is None
    assert list(ag.to_dict()) == list(JSON_KEYS)
    assert ag.to_dict()["a"] == "prediction" and ag.name == "prediction_vs_expert"


def test_identical_values_agree_perfectly():
    ag = agreement([30, 45, 60], [30, 45, 60])
    assert (ag.bias, ag.sd, ag.loa_low, ag.loa_high, ag.mae) == (0, 0, 0, 0, 0)
    assert ag.r == pytest.approx(1.0)


def test_constant_offset_table():
    # a = b + 2 exactly: bias 2, SD 0, LoA (2, 2), MAE 2, r 1
    ag = agreement([52, 61, 47, 70], [50, 59, 45, 68])
    assert (ag.bias, ag.sd, ag.loa_low, ag.loa_high, ag.mae) == (2, 0, 2, 2, 2)
    assert ag.r == pytest.approx(1.0)


@pytest.mark.parametrize(("a", "b", "n", "bias", "mae"), [
    ([], [], 0, None, None),
    ([60.0], [57.0], 1, 3.0, 3.0),
    ([60.0, 40.0], [57.0, 44.0], 2, -0.5, 3.5),
])
def test_few_patients_give_no_r(a, b, n, bias, mae):
    ag = agreement(a, b)
    assert ag.n == n and ag.r is None
    assert ag.bias == bias and ag.mae == mae
    assert "r not computed" in ag.note() or n == 0
    if n == 2:  # differences 3 and -4: SD = 7 / sqrt(2)
        assert ag.sd == pytest.approx(7 / math.sqrt(2))
        assert ag.loa_low == pytest.approx(-0.5 - 1.96 * 7 / math.sqrt(2))
    else:
        assert ag.sd is None and ag.loa_low is None and ag.loa_high is None


def test_constant_side_gives_no_r():
    ag = agreement([50, 50, 50], [40, 55, 60])
    assert ag.r is None and "constant" in ag.note()
    assert ag.bias == pytest.approx(-5 / 3)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="values"):
        agreement([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        agreement([1.0, float("nan")], [1.0, 2.0])


def test_paired_keeps_patients_with_both_values():
    patients, x, y = paired({"p1": 50.0, "p2": None, "p3": 60.0, "p4": float("nan")},
                            {"p1": 48.0, "p2": 30.0, "p3": 63.0, "p5": 1.0})
    assert patients == ["p1", "p3"]
    assert x.tolist() == [50.0, 60.0] and y.tolist() == [48.0, 63.0]


def _m(ef, edv=None, esv=None, unit="mL"):
    return SimpleNamespace(ef=ef, edv=edv, esv=esv, volume_unit=unit)


def test_compare_sources_pairs_and_units():
    results = {
        "expert": {"p1": _m(50, 100, 50, "px^3"), "p2": _m(60, 90, 36, "px^3")},
        "prediction": {"p1": _m(48, 98, 51, "px^3"), "p2": _m(None, 80, None, "px^3")},
        "reference": {"p1": _m(51, 110, 54), "p2": _m(59, 95, 39)},
    }
    found = {(a.a, a.b, a.quantity): a for a in compare_sources(results)}
    # volumes only where both sides share a unit: px^3 vs mL is not compared
    assert set(found) == {("prediction", "expert", "ef"), ("prediction", "expert", "edv"),
                          ("prediction", "expert", "esv"), ("prediction", "reference", "ef"),
                          ("expert", "reference", "ef")}
    assert found["prediction", "expert", "ef"].n == 1
    assert found["prediction", "expert", "ef"].bias == -2
    assert found["prediction", "expert", "edv"].n == 2
    assert found["prediction", "expert", "edv"].unit == "px^3"
    assert found["prediction", "expert", "edv"].bias == pytest.approx(-6)
    assert found["expert", "reference", "ef"].bias == 0
    assert found["expert", "reference", "ef"].mae == 1


def test_compare_sources_without_reference():
    results = {"expert": {"p1": _m(50)}}
    assert compare_sources(results) == []
