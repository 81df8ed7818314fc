"""Files of an evaluation: per_image.csv, summary.json, summary.md (all written atomically)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from echoseg.atomic import atomic_write
from echoseg.errors import DataError


def write_text(path: Path | str, text: str) -> Path:
    """Write UTF-8 text to ``path`` atomically (temporary file, then rename)."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def per_image_csv(rows: list[dict]) -> str:
    """CSV text of per-image rows, columns in the rows' key order; booleans as 1/0, NaN as nan."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = list(rows[0])
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in columns])
    return buffer.getvalue()


def jsonable(value):
    """A copy of nested dicts/lists with NaN floats replaced by None (strict JSON)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def summary_json(summary: dict) -> str:
    """The summary as strict JSON text (NaN -> null), indented."""
    return json.dumps(jsonable(summary), indent=2, allow_nan=False) + "\n"


def write_evaluation(out_dir: Path | str, rows: list[dict], summary: dict, markdown: str) -> None:
    """Write OUT/per_image.csv, OUT/summary.json and OUT/summary.md; each atomically."""
    out = Path(out_dir)
    texts = {"per_image.csv": per_image_csv(rows), "summary.json": summary_json(summary),
             "summary.md": markdown}
    for name, text in texts.items():  # rendered first: a rendering error writes nothing
        write_text(out / name, text)


def _parse(value: str):
    try:
        return float(value)
    except ValueError:
        return value


def read_per_image_csv(path: Path | str) -> list[dict]:
    """Rows of a per_image.csv: id/patient/view/phase as strings, every other column as float
    (NaN for "nan"). Raises DataError naming the file when it is missing or has no id column."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected an evaluation's per_image.csv)")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "id" not in reader.fieldnames:
            raise DataError(f"{path}: not a per_image.csv (no 'id' column)")
        keep = {"id", "patient", "view", "phase"}
        return [{k: v if k in keep else _parse(v) for k, v in row.items()} for row in reader]
