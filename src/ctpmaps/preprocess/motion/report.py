"""The motion report: per-frame transforms as a table (``motion.csv``) and a figure
(``motion.png``). `motion_table` and `motion_figure` compute them; `motion_report` writes
them."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...io.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .result import MotionResult

__all__ = ["motion_report", "motion_table", "motion_figure", "CSV_COLUMNS"]

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


def motion_report(result: MotionResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``motion.csv`` and ``motion.png`` into ``out_dir`` (created if needed).

    Each file is written under a temporary name and renamed into place.

    Parameters
    ----------
    result : MotionResult
        From `register_frames`.
    out_dir : str or Path
        Output folder.

    Returns
    -------
    dict
        ``{"csv": Path, "png": Path}``.

    Notes
    -----
    ``motion.csv`` has one row per frame with the columns `CSV_COLUMNS`: time in s (empty
    when unknown), translations in mm and rotations in degrees about the volume centre
    (array axes, see `MotionResult`), ``flagged`` 0/1, the transform's origin, and the
    screened displacement against the reference in mm. ``motion.png`` plots translations
    and rotations over time with the flag thresholds dashed and flagged frames marked.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "motion.csv", "png": out_dir / "motion.png"}
    with atomic_path(paths["csv"]) as tmp, open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows([CSV_COLUMNS, *motion_table(result)])
    with atomic_path(paths["png"]) as tmp:
        motion_figure(result).savefig(tmp, format="png", dpi=100)
    return paths


def motion_table(result: MotionResult) -> list[list[str]]:
    """One row of strings per frame, the columns `CSV_COLUMNS` (see `motion_report`)."""
    times = _times(result)
    return [
        [str(k), "" if np.isnan(times[k]) else f"{times[k]:.3f}"]
        + [f"{v:.4f}" for v in result.translations_mm[k]]
        + [f"{v:.4f}" for v in result.rotations_deg[k]]
        + [str(int(result.flagged[k])), _origin(result, k), f"{result.screen_mm[k]:.4f}"]
        for k in range(len(times))
    ]


def _times(result: MotionResult) -> np.ndarray:
    n_t = result.translations_mm.shape[0]
    return result.times if result.times is not None else np.full(n_t, np.nan)


def _origin(result: MotionResult, k: int) -> str:
    if k == result.reference:
        return "reference"
    source = int(result.source[k])
    if source < 0:
        return "still"
    if source != k:
        return f"as frame {source}"
    return "elastix" if result.parameters.get("method") == "elastix-seed" else "gauss-newton"


def motion_figure(result: MotionResult) -> Figure:
    """Translations and rotations over time, flag thresholds dashed, flagged frames marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    times = _times(result)
    known = bool(np.all(np.isfinite(times)))
    x = times if known else np.arange(times.size)
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 1, sharex=True)
    panels = (
        (axes[0], result.translations_mm, result.flag_mm, "translation (mm)", ("x", "y", "z")),
        (axes[1], result.rotations_deg, result.flag_deg, "rotation (deg)", ("x", "y", "z")),
    )
    for ax, values, limit, label, names in panels:
        for j, name in enumerate(names):
            ax.plot(x, values[:, j], marker=".", lw=1, label=name)
        for sign in (-1, 1):
            ax.axhline(sign * limit, color="0.4", ls="--", lw=0.8)
        if result.flagged.any():
            ax.plot(
                x[result.flagged], values[result.flagged].max(axis=1), "rv", ms=6, label="flagged"
            )
        ax.set_ylabel(label)
        ax.legend(loc="upper left", fontsize=8, ncol=4)
        ax.grid(alpha=0.3)
    axes[0].set_title(
        f"Rigid motion against frame {result.reference}; dashed: flag threshold "
        f"({int(result.registered.sum())} frames registered, {int(result.flagged.sum())} "
        "flagged)",
        fontsize=9,
    )
    axes[1].set_xlabel("time (s)" if known else "frame")
    return fig
