"""``ctpmaps info``: what was read from a study."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from . import options as o
from .common import guarded, out

__all__ = ["info_command"]


def info_command(
    study: o.Study,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    series_uid: o.SeriesUID = None,
    frame_interval: o.FrameInterval = None,
) -> None:
    """What was read from a study: source, dimensions, spacing, frame times, problems."""
    from ..io import load_study

    with guarded():
        summary = load_study(study, series_uid=series_uid, frame_interval=frame_interval).summary()
        if as_json:
            out.print(json.dumps(summary, default=str, allow_nan=False, indent=2), markup=False)
            return
    table = Table(show_header=False, title=str(study))
    table.add_row("source", summary["source"])
    table.add_row("dimensions (x, y, z)", " x ".join(map(str, summary["shape"])))
    table.add_row("voxel spacing (mm)", " x ".join(f"{v:.3f}" for v in summary["spacing_mm"]))
    table.add_row("frames", str(summary["n_frames"]))
    t = [f"{v:g}" for v in summary["times_s"]]
    table.add_row("frame times (s)", ", ".join(t if len(t) <= 8 else t[:4] + ["…"] + t[-3:]))
    table.add_row("duration (s)", f"{summary['duration_s']:g}")
    table.add_row("HU range", f"{summary['hu_range'][0]:.0f} to {summary['hu_range'][1]:.0f}")
    table.add_row("series description", str(summary["series_description"] or "-"))
    table.add_row("problems", "\n".join(summary["problems"]) or "none")
    out.print(table)
