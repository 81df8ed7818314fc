"""LV volumes and ejection fraction by the method of disks (modified Simpson) and area-length.

Biplane (2CH and 4CH at one phase): V = pi/4 * h * sum(a_i * b_i), a_i and b_i the diameters of
disk i in each view (disk i at the same fraction of each view's own long axis, base first) and
one disk height h = L / 20 for both views, L the longer of the two long axes at that phase (a
height per phase, never one over both phases). Single plane: V = pi/4 * h * sum(a_i^2) with
h = L / 20; area-length: V = 8 A^2 / (3 pi L). EF = (EDV - ESV) / EDV in percent.
Volumes are in mL when the pixel spacing is known (mm^3 / 1000), else in px^3.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from echoseg.clinical.disks import N_DISKS, ViewGeometry, measure_view
from echoseg.errors import DataError

VIEWS = ("2CH", "4CH")
PHASES = ("ED", "ES")
LENGTH_MISMATCH = 0.20  # 2CH and 4CH long axes differing by more than this are reported
SWAPPED = "EF < 0: ED and ES swapped?"

Spacing = tuple[float, float] | None


def volume_unit(view: ViewGeometry) -> str:
    """"mL" when the view was measured in mm, "px^3" when in pixels."""
    return "mL" if view.unit == "mm" else "px^3"


def biplane_volume(a2c: ViewGeometry, a4c: ViewGeometry) -> float:
    """The biplane method-of-disks volume (mL, or px^3 without spacing) of the 2CH and 4CH
    geometries of one phase. Raises ValueError when the two are in different units or have
    different numbers of disks."""
    if a2c.unit != a4c.unit or len(a2c.diameters) != len(a4c.diameters):
        raise ValueError("biplane volume: both views need the same unit and number of disks")
    height = max(a2c.length, a4c.length) / len(a2c.diameters)
    return _to_unit(math.pi / 4 * height * float(np.sum(a2c.diameters * a4c.diameters)), a2c)


def single_plane_volume(view: ViewGeometry) -> float:
    """The single-plane method-of-disks volume (mL, or px^3 without spacing) of one view:
    circular disks of this view's diameters, height L / n_disks."""
    return _to_unit(math.pi / 4 * view.disk_height * float(np.sum(view.diameters ** 2)), view)


def area_length_volume(view: ViewGeometry) -> float:
    """The area-length volume 8 A^2 / (3 pi L) (mL, or px^3 without spacing) of one view, with
    A the LV area and L the long axis."""
    return _to_unit(8 * view.area ** 2 / (3 * math.pi * view.length), view)


def ejection_fraction(edv: float, esv: float) -> float:
    """(EDV - ESV) / EDV in percent (negative when ESV > EDV). Raises ValueError if EDV <= 0."""
    if edv <= 0:
        raise ValueError(f"EDV must be positive to compute an EF, got {edv}")
    return 100 * (edv - esv) / edv


def frame_volume(label_2ch: np.ndarray, label_4ch: np.ndarray, spacing_2ch: Spacing = None,
                 spacing_4ch: Spacing = None) -> float:
    """The biplane volume (mL with both spacings in mm, else px^3) of one 2CH and one 4CH
    label map of the same instant, e.g. the ``volume_of`` of a volume curve. Raises DataError
    when a view cannot be measured or only one spacing is known."""
    if (spacing_2ch is None) != (spacing_4ch is None):
        raise DataError("biplane volume: the pixel spacing of only one view is known")
    a2c, a4c = measure_view(label_2ch, spacing_2ch), measure_view(label_4ch, spacing_4ch)
    return biplane_volume(a2c, a4c)


@dataclass
class ViewMeasurement:
    """One view at one phase: its geometry and its own single-view volumes."""

    view: str  # "2CH" or "4CH"
    phase: str  # "ED" or "ES"
    geometry: ViewGeometry
    single_plane: float  # mL or px^3
    area_length: float  # mL or px^3

    def to_dict(self) -> dict:
        """Plain numbers for JSON: long axis, area, volumes, base method, problems."""
        g = self.geometry
        return {"view": self.view, "phase": self.phase, "length": g.length, "area": g.area,
                "length_unit": g.unit, "single_plane": self.single_plane,
                "area_length": self.area_length, "base_method": g.base_method,
                "problems": list(g.problems)}


@dataclass
class PatientMeasurement:
    """Volumes and EF of one patient. ``edv``/``esv`` are None for a phase that could not be
    measured, ``ef`` (percent) None unless both are known. ``method``: "biplane",
    "single-plane 2CH", "single-plane 4CH", "single-plane (mixed views)" or "none". Each problem
    is one line, prefixed with its view and phase when it concerns one. ``ef_tta_sd``: for a
    prediction with test-time augmentation, the SD (points) of the EF that each view alone
    gives, else None."""

    edv: float | None = None
    esv: float | None = None
    ef: float | None = None
    volume_unit: str = "mL"
    method: str = "none"
    views: dict[tuple[str, str], ViewMeasurement] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    patient: str | None = None
    ef_tta_sd: float | None = None

    def to_dict(self) -> dict:
        """Plain values for JSON, views keyed "2CH_ED" and so on."""
        return {"patient": self.patient, "edv": self.edv, "esv": self.esv, "ef": self.ef,
                "volume_unit": self.volume_unit, "method": self.method,
                "ef_tta_sd": self.ef_tta_sd,
                "views": {f"{v}_{p}": m.to_dict() for (v, p), m in self.views.items()},
                "problems": list(self.problems)}

    def messages(self) -> list[str]:
        """The problems as lines naming the patient (when known)."""
        return [f"{self.patient}: {p}" if self.patient else p for p in self.problems]


def patient_measurements(views: Mapping[tuple[str, str], tuple[np.ndarray, Spacing]],
                         patient: str | None = None, n_disks: int = N_DISKS) -> PatientMeasurement:
    """EDV, ESV (mL, or px^3 when a spacing is unknown) and EF (%) of one patient.

    ``views`` maps (view, phase), view "2CH"/"4CH" and phase "ED"/"ES", to (label map, spacing
    in mm (row, col) or None): all four give the biplane method; one view at both phases (or a
    view that failed) gives the single-plane method of that view (4CH preferred); one phase only
    gives its volume and no EF. A view that cannot be measured becomes a problem line and the
    others still count; nothing here raises DataError. Raises ValueError for an unknown key.
    """
    for key in views:
        if tuple(key) not in {(v, p) for v in VIEWS for p in PHASES}:
            raise ValueError(f"unknown view key {key!r}: expected (2CH|4CH, ED|ES)")
    result = PatientMeasurement(patient=patient)
    spacings = {key: spacing for key, (_, spacing) in views.items()}
    if any(s is None for s in spacings.values()) and any(s is not None for s in spacings.values()):
        unknown = ", ".join(f"{v} {p}" for (v, p), s in spacings.items() if s is None)
        result.problems.append(f"pixel spacing unknown for {unknown}: all volumes in px^3")
        spacings = dict.fromkeys(spacings)
    result.problems += _pair_problems(views, spacings)
    for (view, phase), (label_map, _) in sorted(views.items()):
        try:
            geometry = measure_view(label_map, spacings[view, phase], n_disks)
        except DataError as exc:
            result.problems.append(f"{view} {phase}: {exc}")
            continue
        result.problems += [f"{view} {phase}: {p}" for p in geometry.problems]
        result.views[view, phase] = ViewMeasurement(
            view, phase, geometry, single_plane_volume(geometry), area_length_volume(geometry))
    if result.views:
        result.volume_unit = volume_unit(next(iter(result.views.values())).geometry)
    _combine(result, [p for p in PHASES if any(key[1] == p for key in views)])
    return result


def _combine(result: PatientMeasurement, phases: list[str]) -> None:
    """Choose the method, fill edv/esv/ef and add the patient-level problems."""
    got = result.views
    measured = [p for p in phases if any((v, p) in got for v in VIEWS)]
    if not measured:
        return
    volumes: dict[str, float] = {}
    common = [v for v in ("4CH", "2CH") if all((v, p) in got for p in measured)]
    if len(common) == 2:
        result.method = "biplane"
        for phase in measured:
            a2c, a4c = got["2CH", phase].geometry, got["4CH", phase].geometry
            volumes[phase] = biplane_volume(a2c, a4c)
            gap = abs(a2c.length - a4c.length) / max(a2c.length, a4c.length)
            if gap > LENGTH_MISMATCH:
                result.problems.append(
                    f"{phase}: 2CH and 4CH long axes differ by {100 * gap:.0f}% "
                    "(foreshortened view, or views of different patients?)")
    elif common:
        result.method = f"single-plane {common[0]}"
        volumes = {p: got[common[0], p].single_plane for p in measured}
    else:  # ED seen in one view only, ES in the other only
        result.method = "single-plane (mixed views)"
        volumes = {p: m.single_plane for (_, p), m in got.items()}
        result.problems.append("no view measured at both ED and ES: EF not computed")
    result.edv, result.esv = volumes.get("ED"), volumes.get("ES")
    if result.edv is not None and result.esv is not None and common:
        result.ef = ejection_fraction(result.edv, result.esv)
        if result.ef < 0:
            result.problems.append(SWAPPED)


def _pair_problems(views: Mapping[tuple[str, str], tuple[np.ndarray, Spacing]],
                   spacings: Mapping[tuple[str, str], Spacing]) -> list[str]:
    """ED and ES of one view should come from one acquisition: same size, same spacing."""
    problems = []
    for view in VIEWS:
        if (view, "ED") not in views or (view, "ES") not in views:
            continue
        shapes = [np.shape(views[view, p][0]) for p in PHASES]
        if shapes[0] != shapes[1]:
            sizes = ["x".join(map(str, s)) for s in shapes]
            problems.append(f"{view}: ED is {sizes[0]} pixels but ES is {sizes[1]} "
                            "(images of different acquisitions?)")
        elif not _same_spacing(spacings[view, "ED"], spacings[view, "ES"]):
            problems.append(f"{view}: ED and ES pixel spacings differ "
                            f"({spacings[view, 'ED']} and {spacings[view, 'ES']} mm)")
    return problems


def _same_spacing(first: Spacing, second: Spacing) -> bool:
    if first is None or second is None:
        return first is second
    try:
        return bool(np.allclose(np.asarray(first, float), np.asarray(second, float), rtol=1e-6))
    except (TypeError, ValueError):  # not numbers: measure_view reports it for each view
        return True


def _to_unit(volume: float, view: ViewGeometry) -> float:
    """mm^3 to mL; px^3 kept."""
    return volume / 1000 if view.unit == "mm" else volume
