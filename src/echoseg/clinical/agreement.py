"""Agreement between two measurements of the same patients (Bland-Altman and correlation).

For the n patients where both a_i and b_i are known: bias = mean(a - b); SD = the sample
standard deviation (ddof 1) of a - b; limits of agreement (LoA) = bias -/+ 1.96 SD; MAE =
mean |a - b|; Pearson r of a and b (``scipy.stats.pearsonr``). r is None with fewer than 3
patients (two points always give r = +-1) or when a or b is constant; SD and the LoA are None
with fewer than 2. Everything is in the unit of the values (EF in percent points, volumes in mL
or px^3).

:func:`compare_sources` decides which sources are compared: prediction vs expert, prediction vs
reference, expert vs reference (a minus b), on EF always and on EDV/ESV when both sides are in
the same unit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

LOA_Z = 1.96  # limits of agreement: bias -/+ LOA_Z standard deviations of the differences
MIN_N_FOR_R = 3
SOURCES = ("expert", "prediction", "reference")
PAIRS = (("prediction", "expert"), ("prediction", "reference"), ("expert", "reference"))
QUANTITIES = ("ef", "edv", "esv")
JSON_KEYS = ("a", "b", "n", "r", "bias", "loa_low", "loa_high", "mae")


@dataclass(frozen=True)
class Agreement:
    """Agreement of source ``a`` with source ``b`` on one quantity ("ef", "edv", "esv") in
    ``unit`` ("%", "mL", "px^3"): n paired patients and the statistics of the module doc
    (None where undefined). ``patients``, ``a_values`` and ``b_values`` are the pairs used."""

    a: str
    b: str
    quantity: str = "ef"
    unit: str = "%"
    n: int = 0
    r: float | None = None
    bias: float | None = None
    sd: float | None = None
    loa_low: float | None = None
    loa_high: float | None = None
    mae: float | None = None
    patients: tuple[str, ...] = ()
    a_values: tuple[float, ...] = ()
    b_values: tuple[float, ...] = ()

    @property
    def name(self) -> str:
        """``<a>_vs_<b>``, as in the figure file names."""
        return f"{self.a}_vs_{self.b}"

    def to_dict(self) -> dict:
        """The JSON entry: a, b, n, r, bias, loa_low, loa_high, mae (None where undefined)."""
        return {key: getattr(self, key) for key in JSON_KEYS}

    def note(self) -> str | None:
        """Why r (or the LoA) is missing, in one line, or None when everything is defined."""
        if self.n == 0:
            return "no patient has both values"
        if self.n < MIN_N_FOR_R:
            return f"r not computed: {self.n} patient{'s' * (self.n > 1)} (needs {MIN_N_FOR_R})"
        if self.r is None:
            return "r not computed: one side is constant"
        return None


def paired(a: Mapping[str, float | None],
           b: Mapping[str, float | None]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The patients (sorted) with a finite value in both ``a`` and ``b`` (patient -> value),
    and their values as two float arrays."""
    patients = sorted(p for p in a.keys() & b.keys() if _finite(a[p]) and _finite(b[p]))
    return (patients, np.array([a[p] for p in patients], float),
            np.array([b[p] for p in patients], float))


def agreement(a_values, b_values, *, a: str = "a", b: str = "b", quantity: str = "ef",
              unit: str = "%", patients: tuple[str, ...] | list[str] = ()) -> Agreement:
    """The agreement statistics of paired values (two equal-length sequences of finite
    numbers, a_i and b_i of patient i). Raises ValueError when the lengths differ or a value
    is not finite."""
    x, y = np.asarray(a_values, float).ravel(), np.asarray(b_values, float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"agreement: {len(x)} values of {a} but {len(y)} of {b}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("agreement: values must be finite numbers (leave missing ones out)")
    n = len(x)
    common = {"a": a, "b": b, "quantity": quantity, "unit": unit, "n": n,
              "patients": tuple(patients), "a_values": tuple(x.tolist()),
              "b_values": tuple(y.tolist())}
    if n == 0:
        return Agreement(**common)
    diff = x - y
    bias = float(diff.mean())
    sd = float(diff.std(ddof=1)) if n >= 2 else None
    return Agreement(
        **common, r=_pearson(x, y), bias=bias, sd=sd,
        loa_low=None if sd is None else bias - LOA_Z * sd,
        loa_high=None if sd is None else bias + LOA_Z * sd,
        mae=float(np.abs(diff).mean()))


def compare_sources(results: Mapping[str, Mapping[str, object]]) -> list[Agreement]:
    """The agreements between the sources in ``results`` (source -> patient -> a
    PatientMeasurement-like object with ``edv``, ``esv``, ``ef``, ``volume_unit``), for each
    pair of :data:`PAIRS` whose sources are both present: EF always (even when no patient has
    both), EDV and ESV when every paired patient has the same volume unit on both sides."""
    found = []
    for a, b in PAIRS:
        if a not in results or b not in results:
            continue
        for quantity in QUANTITIES:
            values = [{p: getattr(m, quantity) for p, m in results[side].items()}
                      for side in (a, b)]
            patients, x, y = paired(*values)
            unit = "%"
            if quantity != "ef":
                units = {results[side][p].volume_unit for side in (a, b) for p in patients}
                if len(units) != 1:
                    continue
                unit = units.pop()
            found.append(agreement(x, y, a=a, b=b, quantity=quantity, unit=unit,
                                   patients=patients))
    return found


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < MIN_N_FOR_R or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    r = float(stats.pearsonr(x, y).statistic)
    return r if math.isfinite(r) else None


def _finite(value) -> bool:
    return value is not None and math.isfinite(float(value))
