"""A calibrated quality flag: "does this label map look like the experts' masks?"

The CAMUS anatomical criteria (``echoseg.metrics.anatomical``) stay the paper's metric, with the
paper's thresholds. Their fixed bounds flag a share of *expert* masks on data that differs from
the original CAMUS (e.g. images squeezed to 224x224 slant the mitral plane, so many expert
masks fail the MYO-LA frontier criterion). The quality flag measures the same criteria but
with bounds learned from the expert masks of a model's training split, on the model's grid:
per criterion, the range that ``coverage`` (99.5%) of them pass. A flagged frame means "look
at this one", not "anatomically impossible".

How each criterion's bound is learned (:data:`RULES`), from the n calibration masks with a
finite value (a NaN value, i.e. a missing structure, always fails):

- ``upper``: holes and gaps (pixel counts), component counts, the frontier ratios and the
  LV/MYO width ratio, which CAMUS bounds from above only: ``max`` = the smallest value that at
  least ceil(coverage * n) masks do not exceed (the coverage quantile, inverse empirical CDF).
- ``lower``: the MYO erosion ratio, which CAMUS bounds from below only: ``min`` = the largest
  value that at least ceil(coverage * n) masks reach.
- ``both`` (none of the current criteria; kept for criteria with two tolerances): the
  (1 - coverage) / 2 and (1 + coverage) / 2 quantiles, e.g. 0.25th and 99.75th percentiles.

A component count also keeps CAMUS's ``min`` of 1 (:data:`FIXED`): it encodes that the
structure is present, not a tolerance. Bounds are inclusive, in the units of each criterion
(pixels of the calibration grid for holes and gaps), so they hold only on that grid: the
thresholds record its ``shape`` and :func:`quality_flags` refuses other shapes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from echoseg.atomic import atomic_write_text
from echoseg.errors import EchosegError
from echoseg.metrics.anatomical import CRITERIA, anatomical_errors

FORMAT = "echoseg-quality/1"
DEFAULT_COVERAGE = 0.995
RULES: dict[str, str] = {
    "holes_in_lv": "upper",
    "holes_in_la": "upper",
    "holes_in_lv_myo": "upper",
    "components_in_lv": "upper",
    "components_in_myo": "upper",
    "components_in_la": "upper",
    "holes_between_lv_and_myo": "upper",
    "holes_between_lv_and_la": "upper",
    "frontier_ratio_lv_bg": "upper",
    "frontier_ratio_myo_la": "upper",
    "width_ratio_lv_myo": "upper",
    "erosion_ratio_myo": "lower",
}
FIXED: dict[str, dict[str, float]] = {
    "components_in_lv": {"min": 1.0},
    "components_in_myo": {"min": 1.0},
    "components_in_la": {"min": 1.0},
}


@dataclass
class QualityThresholds:
    """Learned bounds of the quality flag (see the module docstring).

    ``bounds``: criterion -> {"min": x and/or "max": x} (inclusive); ``flagged``: criterion ->
    share of the ``n`` calibration masks outside its bounds; ``flagged_any``: share flagged by
    at least one criterion; ``shape``: the (H, W) grid the masks were measured on;
    ``source``: free provenance (data, split, command).
    """

    coverage: float
    n: int
    shape: tuple[int, int]
    bounds: dict[str, dict[str, float]]
    flagged: dict[str, float]
    flagged_any: float
    source: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-able form: {"format", "coverage", "n", "shape", "flagged_any", "criteria":
        {name: {"rule", "min"/"max", "flagged"}}, "source"}."""
        criteria = {name: {"rule": RULES.get(name, "upper"), **b,
                           "flagged": self.flagged.get(name, 0.0)}
                    for name, b in self.bounds.items()}
        return {"format": FORMAT, "coverage": self.coverage, "n": self.n,
                "shape": list(self.shape), "flagged_any": self.flagged_any,
                "criteria": criteria, "source": self.source}

    @classmethod
    def from_dict(cls, data: Mapping) -> QualityThresholds:
        """Inverse of :meth:`to_dict`; raises ValueError (one line) on a malformed mapping."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ValueError(f"not a quality-threshold file (expected format '{FORMAT}')")
        try:
            criteria = data["criteria"]
            unknown = sorted(set(criteria) - set(CRITERIA))
            if unknown:
                raise ValueError(f"unknown criteria: {', '.join(unknown)}")
            bounds = {name: {k: float(c[k]) for k in ("min", "max") if k in c}
                      for name, c in criteria.items()}
            h, w = (int(v) for v in data["shape"])
            return cls(coverage=float(data["coverage"]), n=int(data["n"]), shape=(h, w),
                       bounds=bounds,
                       flagged={name: float(c.get("flagged", 0.0))
                                for name, c in criteria.items()},
                       flagged_any=float(data.get("flagged_any", 0.0)),
                       source=dict(data.get("source") or {}))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed quality thresholds ({type(exc).__name__}: {exc})") \
                from None


def coverage_bound(values: np.ndarray, share: float, upper: bool) -> float:
    """The smallest value at least ``share`` of ``values`` do not exceed (``upper``), or the
    largest value at least ``share`` of them reach."""
    ordered = np.sort(values)
    k = min(max(math.ceil(share * len(ordered) - 1e-9), 1), len(ordered))
    return float(ordered[k - 1] if upper else ordered[len(ordered) - k])


def _learn(name: str, values: np.ndarray, coverage: float) -> dict[str, float]:
    finite = values[np.isfinite(values)]
    if not finite.size:
        raise ValueError(f"{name}: no calibration mask has a finite value (missing structures)")
    rule = RULES[name]
    share = (1 + coverage) / 2 if rule == "both" else coverage
    bounds = dict(FIXED.get(name, {}))
    if rule in ("upper", "both"):
        bounds["max"] = coverage_bound(finite, share, upper=True)
    if rule in ("lower", "both"):
        bounds["min"] = coverage_bound(finite, share, upper=False)
    return bounds


def within(value: float, bounds: Mapping[str, float]) -> bool:
    """Whether ``value`` lies within the inclusive ``bounds`` (NaN never does)."""
    if math.isnan(value):
        return False
    return bounds.get("min", -math.inf) <= value <= bounds.get("max", math.inf)


def calibrate(label_maps: Iterable[np.ndarray], coverage: float = DEFAULT_COVERAGE,
              source: dict | None = None) -> QualityThresholds:
    """Learn quality thresholds from expert label maps, all of one (H, W) shape: the model's
    grid (resample with ``echoseg.data.preprocess.label_to_grid`` first).

    ``coverage`` in (0, 1]: the share of masks each criterion's bounds must pass. Raises
    ValueError for no masks, masks of different shapes or a criterion never measurable.
    """
    if not 0 < coverage <= 1:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    values: dict[str, list[float]] = {name: [] for name in CRITERIA}
    shape = None
    for label_map in label_maps:
        label_map = np.asarray(label_map)
        if shape is None:
            shape = label_map.shape
        elif label_map.shape != shape:
            raise ValueError(f"label maps of different shapes {shape} and {label_map.shape}; "
                             "resample them to the model grid first (label_to_grid)")
        errors = anatomical_errors(label_map)
        for name in CRITERIA:
            values[name].append(float(errors[name]))
    if shape is None:
        raise ValueError("no label maps to calibrate on")
    arrays = {name: np.asarray(v, dtype=np.float64) for name, v in values.items()}
    bounds = {name: _learn(name, arrays[name], coverage) for name in CRITERIA}
    fails = {name: np.array([not within(v, bounds[name]) for v in arrays[name]])
             for name in CRITERIA}
    n = len(arrays[CRITERIA[0]])
    return QualityThresholds(coverage=coverage, n=n, shape=(int(shape[0]), int(shape[1])),
                             bounds=bounds,
                             flagged={k: round(float(f.mean()), 6) for k, f in fails.items()},
                             flagged_any=round(float(np.any(list(fails.values()), axis=0)
                                                     .mean()), 6),
                             source=dict(source or {}))


def flags_from_errors(errors: Mapping[str, float | bool],
                      thresholds: QualityThresholds) -> tuple[bool, list[str]]:
    """(ok, failed criteria in CRITERIA order) from an ``anatomical_errors`` result, so that
    the CAMUS flag and the quality flag share one measurement."""
    failed = [name for name, b in thresholds.bounds.items()
              if not within(float(errors[name]), b)]
    return not failed, failed


def quality_flags(label_map: np.ndarray, thresholds: QualityThresholds) -> tuple[bool, list[str]]:
    """(ok, failed criteria) of one 2D label map on the thresholds' grid; raises ValueError
    when its shape is not the grid the thresholds were calibrated on."""
    if tuple(label_map.shape) != tuple(thresholds.shape):
        raise ValueError(f"label map of shape {tuple(label_map.shape)}, but the quality "
                         f"thresholds hold on a {thresholds.shape[0]}x{thresholds.shape[1]} grid")
    return flags_from_errors(anatomical_errors(label_map), thresholds)


def save_thresholds(thresholds: QualityThresholds, path: Path | str) -> Path:
    """Write ``thresholds`` as indented JSON to ``path`` atomically; returns the path."""
    return atomic_write_text(path, json.dumps(thresholds.to_dict(), indent=1) + "\n")


def load_thresholds(path: Path | str) -> QualityThresholds:
    """Read thresholds written by :func:`save_thresholds`; raises EchosegError (one line
    naming the file) when it cannot be read or is not such a file."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise EchosegError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise EchosegError(f"{path}: not valid JSON ({type(exc).__name__})") from None
    try:
        return QualityThresholds.from_dict(data)
    except ValueError as exc:
        raise EchosegError(f"{path}: {exc}") from None
