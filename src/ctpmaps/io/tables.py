"""Result tables written as CSV and JSON, atomically (temporary name, then rename).

A table is a list of rows, each a mapping of column name to a plain value (str, int, float,
bool or None); units live in the column names (``volume_ml``, ``psnr_db``, ``bias_pct``).
JSON has no NaN or infinity: non-finite floats are written as ``null`` (`jsonable`), and
as empty cells in CSV.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path

__all__ = ["jsonable", "table_columns", "write_csv", "write_json", "write_tables"]


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types, recursively.

    numpy scalars and arrays become Python numbers and lists, tuples become lists, paths
    become strings, and non-finite floats (NaN, +-inf) become None.

    Examples
    --------
    >>> jsonable({"a": np.float32(0.5), "b": (1, float("nan"))})
    {'a': 0.5, 'b': [1, None]}
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def table_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Column names of ``rows`` in order of first appearance."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def _cell(value: Any) -> str:
    value = jsonable(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(_cell(v) for v in value)
    return str(value)


def write_csv(
    rows: Sequence[Mapping[str, Any]], path: str | Path, *, columns: Sequence[str] | None = None
) -> Path:
    """Write ``rows`` as a CSV file with a header line.

    Parameters
    ----------
    rows : sequence of mapping
        One mapping per row; a missing column is an empty cell.
    path : str or Path
        Output file, written atomically.
    columns : sequence of str, optional
        Column order (default: order of first appearance, `table_columns`).

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    names = list(columns) if columns is not None else table_columns(rows)
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for row in rows:
            writer.writerow([_cell(row.get(name)) for name in names])
    return path


def write_json(data: Any, path: str | Path) -> Path:
    """Write ``data`` (converted by `jsonable`) as strict JSON (no NaN), atomically."""
    path = Path(path)
    text = json.dumps(jsonable(data), indent=1, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return path


def write_tables(
    tables: Mapping[str, Sequence[Mapping[str, Any]]],
    folder: str | Path,
    *,
    json_name: str = "tables.json",
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write every table as ``<folder>/<name>.csv`` and all of them in one JSON file.

    Parameters
    ----------
    tables : mapping of str to sequence of mapping
        Table name -> rows.
    folder : str or Path
        Output folder (created if missing).
    json_name : str
        Name of the JSON file holding ``{"metadata": ..., "tables": {name: rows}}``.
    metadata : mapping, optional
        How the tables were made (settings, version, command ...), stored in the JSON.

    Returns
    -------
    dict of str to Path
        Table name (and ``"json"``) -> file written.
    """
    folder = Path(folder)
    written = {name: write_csv(rows, folder / f"{name}.csv") for name, rows in tables.items()}
    payload = {"metadata": dict(metadata or {}), "tables": {k: list(v) for k, v in tables.items()}}
    written["json"] = write_json(payload, folder / json_name)
    return written
