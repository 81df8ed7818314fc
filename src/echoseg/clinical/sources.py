"""The inputs of ``echoseg ef``, per patient: label maps of the ED and ES views from a
dataset's expert masks, from a folder of predicted label maps (as ``echoseg predict`` and
``echoseg evaluate`` write them, see ``echoseg.evaluation.sources.find_predictions``) or from a
model run on the images; and the reference volumes the dataset records (CAMUS Info cfg:
LVedv, LVesv, LVef; EchoNet-Dynamic FileList.csv: EDV, ESV, EF).

Nothing here raises for one broken patient: an unreadable file, a missing view or a missing
prediction becomes a problem line of that patient ("<view> <phase>: <what>") and the others
go on. Label maps keep the expert mask's pixel spacing (mm, row/col, or None); a prediction of
another size is resized (nearest neighbour) to the expert mask's grid first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from echoseg.clinical.volumes import PHASES, VIEWS, PatientMeasurement, ejection_fraction
from echoseg.data.readers import read_label_map
from echoseg.errors import DataError
from echoseg.evaluation.grid import resize_labels
from echoseg.evaluation.sources import (
    PredictBatch,
    find_predictions,
    items_from_files,
    items_from_predictor,
)

Key = tuple[str, str]  # (view, phase), e.g. ("4CH", "ED")
ViewMaps = dict[Key, tuple[np.ndarray, tuple[float, float] | None]]
CAMUS_KEYS = {"edv": "LVedv", "esv": "LVesv", "ef": "LVef"}  # Info cfg field names


@dataclass
class PatientMaps:
    """The label maps of one patient by (view, phase), with the spacing of each (mm or None),
    from the expert masks and (when a prediction source is used) from the predictions, and the
    problems met while gathering each."""

    patient: str
    expert: ViewMaps = field(default_factory=dict)
    prediction: ViewMaps | None = None
    expert_problems: list[str] = field(default_factory=list)
    prediction_problems: list[str] = field(default_factory=list)


def by_patient(samples: Iterable) -> dict[str, list]:
    """The samples with a view (2CH/4CH) and phase (ED/ES), grouped by patient (sorted);
    samples named otherwise cannot be measured and are left out."""
    groups: dict[str, list] = {}
    for s in samples:
        if s.view in VIEWS and s.phase in PHASES:
            groups.setdefault(s.patient, []).append(s)
    return dict(sorted(groups.items()))


def expected_views(groups: dict[str, list]) -> list[Key]:
    """The (view, phase) pairs any patient has: what every patient should have."""
    return sorted({(s.view, s.phase) for group in groups.values() for s in group})


def gather(groups: dict[str, list], *, pred_dir: Path | str | None = None,
           predict_batch: PredictBatch | None = None,
           batch_size: int = 8) -> Iterator[PatientMaps]:
    """Yield the PatientMaps of each patient of ``groups`` (patient -> samples, as
    :func:`by_patient`), in order: expert masks only, or with the predictions of the files in
    ``pred_dir`` or of ``predict_batch`` (native-size images -> native-size label maps), one
    patient at a time. Raises DataError (before yielding) when ``pred_dir`` is missing or has
    no prediction for any image."""
    expected = expected_views(groups)
    make: Callable | None = None
    files: dict[str, Path] = {}
    missing: dict[str, str] = {}
    if predict_batch is not None:
        def make(chunk):
            return items_from_predictor(predict_batch, chunk, batch_size)
    elif pred_dir is not None:
        files, missing = prediction_files(pred_dir, groups)

        def make(chunk):
            return items_from_files([s for s in chunk if s.id in files], files)
    for patient, group in groups.items():
        maps = _collect(patient, group, make)
        maps.prediction_problems += [f"{s.view} {s.phase}: {missing[s.id]}"
                                     for s in group if s.id in missing]
        _missing(maps, group, expected)
        yield maps


def prediction_files(pred_dir: Path | str,
                     groups: dict[str, list]) -> tuple[dict[str, Path], dict[str, str]]:
    """Sample id -> prediction file in ``pred_dir`` (see ``find_predictions``) for the ids that
    have one, and id -> problem (no file, two files) for the others. Raises DataError when the
    folder is missing or no id has a file."""
    ids = [s.id for group in groups.values() for s in group]
    try:
        return find_predictions(pred_dir, ids), {}
    except DataError:
        if not Path(pred_dir).is_dir():
            raise
    found: dict[str, Path] = {}
    problems: dict[str, str] = {}
    for group in groups.values():  # one patient, else one image, at a time: keep what exists
        try:
            found.update(find_predictions(pred_dir, [s.id for s in group]))
            continue
        except DataError:
            pass
        for s in group:
            try:
                found.update(find_predictions(pred_dir, [s.id]))
            except DataError as exc:
                problems[s.id] = (str(exc) if "two prediction files" in str(exc) else
                                  f"no prediction file for {s.id} in {pred_dir}")
    if not found:
        raise DataError(f"{pred_dir}: no prediction file for any of the {len(ids)} images "
                        f"(expected names like {ids[0]}.png or {ids[0]}_seg.png)")
    return found, problems


def reference_measurements(dataset, patients: Sequence[str]) -> dict[str, PatientMeasurement]:
    """The reference EDV, ESV (mL) and EF (%) the dataset records for ``patients``: CAMUS Info
    cfg fields LVedv, LVesv, LVef (EF when LVef is absent; EF from the volumes when neither),
    EchoNet-Dynamic FileList.csv's EDV, ESV, EF. Patients without any value are left out."""
    wanted = set(patients)
    if dataset.layout == "echonet":
        from echoseg.data.echonet import echonet_reference

        table = echonet_reference(dataset.root)
        return {p: _reference(p, [v], "FileList.csv") for p, v in sorted(table.items())
                if p in wanted and any(x is not None for x in v.values())}
    infos: dict[str, dict[str, dict]] = {}  # patient -> Info file name -> fields
    for s in dataset.samples:
        name = f"Info_{s.view}.cfg"
        if s.patient not in wanted or not s.info or name in infos.get(s.patient, {}):
            continue
        fields = {k: s.info.get(field_name) for k, field_name in CAMUS_KEYS.items()}
        if fields["ef"] is None:
            fields["ef"] = s.info.get("EF")
        if any(isinstance(v, int | float) for v in fields.values()):
            infos.setdefault(s.patient, {})[name] = fields
    return {p: _reference(p, [found[n] for n in sorted(found)], "Info cfg", sorted(found))
            for p, found in sorted(infos.items())}


def _reference(patient: str, tables: list[dict], method: str,
               names: list[str] | None = None) -> PatientMeasurement:
    """One reference row from the values of one or more files (they should agree)."""
    result = PatientMeasurement(volume_unit="mL", method=method, patient=patient)
    for key in ("edv", "esv", "ef"):
        values = [float(t[key]) for t in tables if isinstance(t.get(key), int | float)]
        if not values:
            continue
        setattr(result, key, values[0])
        if names and any(abs(v - values[0]) > 1e-6 for v in values):
            shown = ", ".join(f"{n} {v:g}" for n, v in zip(names, values, strict=False))
            result.problems.append(f"reference {key.upper()} differs ({shown}): used the first")
    if result.ef is None and result.edv and result.esv is not None and result.edv > 0:
        result.ef = ejection_fraction(result.edv, result.esv)
    return result


def _collect(patient: str, group: list, make: Callable | None) -> PatientMaps:
    """Read the expert masks (and predictions, from ``make(samples) -> EvalItems``) of one
    patient; a DataError for the whole patient is retried image by image."""
    maps = PatientMaps(patient, prediction=None if make is None else {})
    items = {}
    if make is not None:
        try:
            items = {item.id: item for item in make(group)}
        except DataError:
            for s in group:
                try:
                    items.update({item.id: item for item in make([s])})
                except DataError as exc:
                    maps.prediction_problems.append(f"{s.view} {s.phase}: {exc}")
    for s in group:
        key = (s.view, s.phase)
        item = items.get(s.id)
        if item is None:
            try:
                maps.expert[key] = (_read_expert(s), s.spacing)
            except DataError as exc:
                maps.expert_problems.append(f"{s.view} {s.phase}: {exc}")
            continue
        gt, pred = np.asarray(item.gt), np.asarray(item.pred)
        maps.expert[key] = (gt, s.spacing)
        if pred.shape != gt.shape:
            maps.prediction_problems.append(
                f"{s.view} {s.phase}: prediction of {'x'.join(map(str, pred.shape))} pixels "
                f"resized to the image's {'x'.join(map(str, gt.shape))}")
            pred = resize_labels(pred, gt.shape) if pred.ndim == 2 else pred
        maps.prediction[key] = (pred, s.spacing)
    return maps


def _read_expert(sample) -> np.ndarray:
    """The expert label map of ``sample`` (2D; a one-slice volume is taken as 2D)."""
    if sample.label_path is None:
        raise DataError(f"{sample.image_path}: no expert label map")
    array, _ = read_label_map(sample.label_path)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise DataError(f"{sample.label_path}: label map must be 2D, got shape {array.shape}")
    return array


def _missing(maps: PatientMaps, group: list, expected: list[Key]) -> None:
    """A problem line for each expected view the patient has no image of."""
    present = {(s.view, s.phase) for s in group}
    for view, phase in expected:
        if (view, phase) not in present:
            line = f"{view} {phase}: missing (no image of this view and phase in the data)"
            maps.expert_problems.append(line)
            if maps.prediction is not None:
                maps.prediction_problems.append(line)
