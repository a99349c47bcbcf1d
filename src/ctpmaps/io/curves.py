"""Time curves on disk: the input functions a run used, as CSV in physical units."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from .atomic import atomic_path

__all__ = ["write_input_function_csv"]


def write_input_function_csv(out_dir: str | Path, curve: Any) -> dict[str, Path]:
    """Write ``<kind>.csv`` (``time_s``, ``<kind>_hu``: enhancement in HU at the frame times,
    after any partial-volume scaling) and ``<kind>_voxels.csv`` (``i, j, k`` voxel indices
    averaged) of an input function (`ctpmaps.perfusion.aif.InputFunction`).

    The first file is the format ``--aif-csv`` reads back.

    Returns
    -------
    dict
        ``{"curve": Path, "voxels": Path}``.
    """
    out_dir = Path(out_dir)
    paths = {"curve": out_dir / f"{curve.kind}.csv", "voxels": out_dir / f"{curve.kind}_voxels.csv"}
    with atomic_path(paths["curve"]) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time_s", f"{curve.kind}_hu"])
        w.writerows([f"{t:.4f}", f"{v:.4f}"] for t, v in zip(curve.times, curve.curve, strict=True))
    with atomic_path(paths["voxels"]) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["i", "j", "k"])
        w.writerows(curve.voxels.tolist())
    return paths
