"""The report of one `ctpmaps.clinical.run_study` run, from its results."""

from __future__ import annotations

import datetime
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..io.study import Study
from ..lesion import Lesions
from .figures import DISPLAY, colour_bar, curves_figure, map_range, motion_figure, slice_tiles
from .html import ReportContent, write_report

__all__ = ["motion_summary", "study_report"]


def motion_summary(result: Any) -> dict[str, Any]:
    """Largest translation and rotation, frames registered and flagged, of a motion result
    (``translations_mm`` and ``rotations_deg`` (t, 3); ``registered``, ``flagged`` (t,))."""
    flagged = np.flatnonzero(np.asarray(getattr(result, "flagged", [])))
    registered = np.asarray(getattr(result, "registered", []), bool)
    return {
        "max_translation_mm": float(np.abs(result.translations_mm).max(initial=0.0)),
        "max_rotation_deg": float(np.abs(result.rotations_deg).max(initial=0.0)),
        "frames_registered": int(registered.sum()),
        "flagged_frames": ", ".join(map(str, flagged)) or "none",
    }


def _tiles(study: Study, maps: dict[str, np.ndarray], units, lesions: Lesions):
    ranges = {k: map_range(k, v) for k, v in maps.items()}
    bars = {
        k: colour_bar(
            DISPLAY.get(k, {}).get("title", k.upper()),
            units.get(k, ""),
            cmap=DISPLAY.get(k, {}).get("cmap", "viridis"),
            vmin=lo,
            vmax=hi,
        )
        for k, (lo, hi) in ranges.items()
    }
    mean = study.frames.mean(axis=-1)
    tiles = [
        slice_tiles(
            k,
            maps=maps,
            mean_frame=mean,
            affine=study.affine,
            ranges=ranges,
            core=lesions.core,
            penumbra=lesions.penumbra,
        )
        for k in range(study.shape[2])
    ]
    step = study.affine[:3, 2]
    labels = [
        f"slice {k + 1} (z {study.affine[2, 3] + k * step[2]:+.1f} mm)"
        for k in range(study.shape[2])
    ]
    return tiles, bars, labels


def study_report(
    path: str | Path,
    *,
    study: Study,
    maps: Any,
    lesions: Lesions,
    decision: dict[str, Any],
    provenance: dict[str, Any],
    study_summary: dict[str, Any],
    aif: Any = None,
    vof: Any = None,
    motion: Any = None,
    problems: Sequence[str] = (),
) -> Path:
    """Write ``report.html`` of one study.

    Parameters
    ----------
    path : str or Path
        The HTML file to write.
    study : Study
        The frames the maps were computed from (mean frame, geometry, times).
    maps : PerfusionMaps
        Maps in physical units; maps that are all NaN (not made) are left out.
    lesions : Lesions
        Core and penumbra overlays, volumes.
    decision : dict
        `ctpmaps.lesion.decision_numbers`.
    provenance : dict
        ``method``, ``timings_s``, ``parameters``, ``criteria``, ``midline``, ``inputs``;
        version, date and command are added here.
    study_summary : dict
        What was read (patient, source, dimensions, ...).
    aif, vof : InputFunction, optional
        Curves to plot (``.curve`` at the frame times).
    motion : motion result, optional
        Plotted when motion correction ran (`motion_summary` attributes).
    problems : sequence of str
        Shown as warnings at the top.
    """
    present = {k: v for k, v in maps.as_dict().items() if np.isfinite(v).any()}
    tiles, bars, labels = _tiles(study, present, maps.units, lesions)
    curves = None
    if aif is not None:
        series = {"AIF": aif.curve} | ({"VOF": vof.curve} if vof is not None else {})
        curves = curves_figure(study.times, series)
    motion_png = summary = None
    if motion is not None:
        motion_png = motion_figure(
            study.times,
            motion.translations_mm,
            motion.rotations_deg,
            flagged=getattr(motion, "flagged", None),
        )
        summary = motion_summary(motion)
    content = ReportContent(
        title="CT perfusion: core and penumbra",
        study=study_summary,
        decision=decision,
        volumes_ml={k: round(v, 2) for k, v in lesions.volumes_ml().items()},
        slices=tiles,
        colour_bars=bars,
        slice_labels=labels,
        input_functions=curves,
        motion=motion_png,
        motion_summary=summary,
        provenance={
            "version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": sys.argv,
            **provenance,
        },
        warnings=list(problems),
    )
    return write_report(content, path)
