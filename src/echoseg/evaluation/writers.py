"""Files of an evaluation: per_image.csv, summary.json, summary.md (all written atomically),
and the text rules every CSV, JSON and markdown output of echoseg follows.

File names need not be UTF-8 (Linux allows any bytes); Python keeps the bytes it cannot decode
as lone surrogates (``os.fsdecode``). Every text output shows such a byte as a ``\\xNN`` escape,
e.g. ``caf\\xe9.png`` for the name ``b"caf\\xe9.png"`` (see :func:`printable`), so the files
are always valid UTF-8. JSON is strict: NaN and infinities are written as ``null``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path, PurePath

import numpy as np

from echoseg.atomic import atomic_write_bytes
from echoseg.errors import DataError
from echoseg.labels import STRUCTURES


def printable(text: str) -> str:
    """``text`` as valid Unicode: the undecodable bytes of a file name (lone surrogates, as
    ``os.fsdecode`` gives them) become ``\\xNN`` escapes; any other text is returned as is."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no decoder made, e.g. from a JSON escape
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "backslashreplace")


def write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically (temporary file, checked, then renamed);
    undecodable file-name bytes in it are escaped (:func:`printable`)."""
    return atomic_write_bytes(path, printable(text).encode("utf-8"))


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, float | np.floating):
        return "nan" if math.isnan(value) else repr(float(value))
    return printable(str(value))


def per_image_csv(rows: list[dict]) -> str:
    """CSV text of per-image rows, columns in the rows' key order; booleans as 1/0, NaN as nan,
    None (a structure the data does not label, anatomy that does not apply) as an empty cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = list(rows[0])
    writer.writerow([printable(str(c)) for c in columns])
    for row in rows:
        writer.writerow([_cell(row[c]) for c in columns])
    return buffer.getvalue()


def jsonable(value):
    """A copy of ``value`` that strict JSON can hold: NaN and infinite floats become None,
    numpy scalars and arrays Python numbers and lists, paths and strings printable text
    (:func:`printable`); dicts (keys too), lists and tuples are converted throughout."""
    if isinstance(value, dict):
        return {_json_key(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, PurePath):
        value = str(value)
    if isinstance(value, str):
        return printable(value)
    return value


def _json_key(key):
    key = key.item() if isinstance(key, np.generic) else key
    return printable(str(key)) if isinstance(key, str | PurePath) else key


def json_text(value, indent: int | None = None) -> str:
    """``value`` as strict JSON text (see :func:`jsonable`), on one line unless ``indent``;
    what every ``--json`` prints."""
    return json.dumps(jsonable(value), indent=indent, allow_nan=False)


def summary_json(summary: dict) -> str:
    """The summary as strict JSON text (NaN -> null), indented, with a final newline."""
    return json_text(summary, indent=2) + "\n"


def write_evaluation(out_dir: Path | str, rows: list[dict], summary: dict, markdown: str) -> None:
    """Write OUT/per_image.csv, OUT/summary.json and OUT/summary.md; each atomically."""
    out = Path(out_dir)
    texts = {"per_image.csv": per_image_csv(rows), "summary.json": summary_json(summary),
             "summary.md": markdown}
    for name, text in texts.items():  # rendered first: a rendering error writes nothing
        write_text(out / name, text)


TEXT_COLUMNS = ("id", "patient", "view", "phase")
REQUIRED_COLUMNS = ("id", *(f"{m}_{s}" for m in ("dice", "hd") for s in STRUCTURES))
_VALUE_RANGES = {"dice_": ("Dice", 0.0, 1.0), "hd_": ("distance", 0.0, math.inf),
                 "hd95_": ("distance", 0.0, math.inf)}  # column prefix -> (what, low, high)


def _lenient(value: str):
    try:
        return float(value)
    except ValueError:
        return value


def _number(column: str, value: str, where: str) -> float:
    """A metric cell as a float: a finite number in the column's range, or nan (undefined)."""
    shown = repr(printable(value[:40]) + ("..." if len(value) > 40 else ""))
    try:
        number = float(value)
    except ValueError:
        raise DataError(f"{where}: {shown} is not a number") from None
    if math.isnan(number):
        return number
    if math.isinf(number):  # evaluate writes an undefined distance as nan, never inf
        raise DataError(f"{where}: {shown} is not a finite number (an undefined value is nan)")
    if column == "anatomical_outlier" or column.endswith("_ok"):
        if number not in (0.0, 1.0):
            raise DataError(f"{where}: {shown} is not a flag (0 or 1)")
        return number
    what, low, high = next(r for p, r in _VALUE_RANGES.items() if column.startswith(p))
    if not low <= number <= high:
        allowed = f"in {low:g}..{high:g}" if math.isfinite(high) else f">= {low:g}"
        raise DataError(f"{where}: {number:g} is out of range (a {what} is {allowed})")
    return number


def _is_metric(column: str) -> bool:
    return (column.startswith(tuple(_VALUE_RANGES)) or column == "anatomical_outlier"
            or column.endswith("_ok"))


def _row(row: dict, where: str, line: int, unscored: frozenset[str] = frozenset()) -> dict:
    parsed = {}
    for column, value in row.items():
        place = f"{where}: line {line}, column {printable(column)}"
        if column in TEXT_COLUMNS:
            parsed[column] = value
        elif column in unscored:
            parsed[column] = math.nan
        elif _is_metric(column):
            parsed[column] = _number(column, value, place)
        else:  # a column of another tool's: kept, as a number where it is one
            parsed[column] = _lenient(value)
    if not parsed["id"]:
        raise DataError(f"{where}: line {line}: empty id")
    return parsed


def read_per_image_csv(path: Path | str) -> list[dict]:
    """Rows of a per_image.csv: id/patient/view/phase as strings, metric columns (dice_*, hd_*,
    hd95_*, anatomical_outlier, *_ok) as floats (NaN for "nan"), any other column as a float
    where it parses, else a string. A metric column empty on every row (a structure the data
    does not label, anatomical criteria that do not apply) reads as NaN throughout; a single
    empty cell among numbers is an error.

    Raises DataError naming the file (and the line and column) when it is missing or not
    readable, not UTF-8 text, not CSV, lacks a column of ``REQUIRED_COLUMNS``, has a row of
    the wrong length, an empty id, or a metric that is not a number, infinite or out of range
    (Dice in 0..1, distances >= 0, flags 0 or 1); or when it has no rows.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected an evaluation's per_image.csv)")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            return _read_rows(csv.reader(f), path)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file (expected an evaluation's "
                        "per_image.csv)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _read_rows(reader, path: Path) -> list[dict]:
    try:
        header = next(reader, None)
        if not header or not any(header):
            raise DataError(f"{path}: empty file (expected an evaluation's per_image.csv)")
        twice = sorted({c for c in header if header.count(c) > 1})
        if twice:
            raise DataError(f"{path}: column {printable(twice[0])} appears twice in the header")
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DataError(f"{path}: not a per_image.csv (no column {', '.join(missing)})")
        lines = []
        for cells in reader:
            if not cells:  # a blank line
                continue
            if len(cells) != len(header):
                raise DataError(f"{path}: line {reader.line_num} has {len(cells)} fields, the "
                                f"header {len(header)}")
            lines.append((reader.line_num, dict(zip(header, cells, strict=True))))
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: not a CSV file ({exc})") from None
    if not lines:
        raise DataError(f"{path}: no image rows (only a header)")
    unscored = frozenset(c for c in header if _is_metric(c)
                         and not any(cells[c] for _, cells in lines))
    return [_row(cells, str(path), line, unscored) for line, cells in lines]
