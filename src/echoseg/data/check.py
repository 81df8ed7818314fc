"""Decode every file of a dataset to find what headers cannot show (run by `echoseg info`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from echoseg.data.dataset import EchoDataset
from echoseg.data.pairs import check_label_values, decode_pair, label_values
from echoseg.data.readers import read_image
from echoseg.data.sample import Sample
from echoseg.data.threads import thread_map
from echoseg.errors import DataError


@dataclass
class CheckReport:
    """Label values found in all label maps (sorted) and one line per problem."""

    labels: list[int | float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def check(dataset: EchoDataset, workers: int | None = None) -> CheckReport:
    """Decode every image and label map of ``dataset`` on a thread pool.

    Finds truncated or corrupt pixel data, image/label size mismatches and label values outside
    0..3; returns a CheckReport (problems not already in ``dataset.problems``). Sequences are
    not decoded (their headers were checked when the dataset was opened).
    """
    report = CheckReport()
    found: set[int | float] = set()
    for values, problem in thread_map(_inspect, dataset.samples, workers):
        found.update(values)
        if problem:
            report.problems.append(problem)
    report.labels = sorted(found)
    return report


def _inspect(sample: Sample) -> tuple[list[int | float], str | None]:
    """(label values, problem or None) for one sample."""
    try:
        if sample.label_path is None:
            read_image(sample.image_path)
            return [], None
        _, label = decode_pair(sample)
    except DataError as exc:
        return [], str(exc)
    values = label_values(label)
    try:
        check_label_values(values, sample.label_path)
    except DataError as exc:
        return values, str(exc)
    return values, None
