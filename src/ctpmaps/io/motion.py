"""Head motion on disk: ``motion.csv``, one row per frame of a `MotionResult`."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path

__all__ = ["CSV_COLUMNS", "motion_table", "write_motion_csv"]

#: Columns of ``motion.csv``. ``transform`` says where each transform comes from:
#: ``reference``, ``still`` (screened still: identity), the method that registered it
#: (``gauss-newton`` or ``elastix``), or ``as frame N`` (elastix: shares frame N's).
CSV_COLUMNS = (
    "frame",
    "time_s",
    "tx_mm",
    "ty_mm",
    "tz_mm",
    "rx_deg",
    "ry_deg",
    "rz_deg",
    "flagged",
    "transform",
    "screen_mm",
)


def write_motion_csv(result: Any, out_dir: str | Path) -> Path:
    """Write ``motion.csv`` of a `ctpmaps.preprocess.MotionResult` into ``out_dir``.

    One row per frame with the columns `CSV_COLUMNS`: time in s (empty when unknown),
    translations in mm and rotations in degrees about the volume centre (array axes, see
    `MotionResult`), ``flagged`` 0/1, the transform's origin, and the screened displacement
    against the reference in mm.
    """
    path = Path(out_dir) / "motion.csv"
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows([CSV_COLUMNS, *motion_table(result)])
    return path


def motion_table(result: Any) -> list[list[str]]:
    """One row of strings per frame, the columns `CSV_COLUMNS` (see `write_motion_csv`)."""
    times = _times(result)
    return [
        [str(k), "" if np.isnan(times[k]) else f"{times[k]:.3f}"]
        + [f"{v:.4f}" for v in result.translations_mm[k]]
        + [f"{v:.4f}" for v in result.rotations_deg[k]]
        + [str(int(result.flagged[k])), _origin(result, k), f"{result.screen_mm[k]:.4f}"]
        for k in range(len(times))
    ]


def _times(result: Any) -> np.ndarray:
    n_t = result.translations_mm.shape[0]
    return result.times if result.times is not None else np.full(n_t, np.nan)


def _origin(result: Any, k: int) -> str:
    if k == result.reference:
        return "reference"
    source = int(result.source[k])
    if source < 0:
        return "still"
    if source != k:
        return f"as frame {source}"
    return "elastix" if result.parameters.get("method") == "elastix-seed" else "gauss-newton"
