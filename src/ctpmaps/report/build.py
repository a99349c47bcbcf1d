"""The report of one `ctpmaps.pipeline.run_study` run, from its results."""

from __future__ import annotations

import datetime
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..io.study import Study
from ..lesion import Lesions
from ..preprocess.unenhanced import DEFAULT_BASELINE_FRAMES, unenhanced
from .figures import (
    DISPLAY,
    colour_bar,
    crop_box,
    input_functions_figure,
    input_locations_figure,
    map_range,
    motion_figure,
    slice_tiles,
)
from .html import ReportContent, write_report

__all__ = ["motion_summary", "study_report", "threshold_marks"]


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


def threshold_marks(lesions: Lesions, decision: dict[str, Any]) -> dict[str, list]:
    """The thresholds the lesion rule applied, per map, as colour-bar marks (value, label)."""
    crit = lesions.criteria
    if lesions.rule != "tmax":
        return {}
    marks = {
        "tmax": [
            (crit.hypoperfusion_tmax_s, f">{crit.hypoperfusion_tmax_s:g}"),
            (crit.severe_tmax_s, f">{crit.severe_tmax_s:g}"),
        ]
    }
    side = decision.get("affected_side") or "right"
    ref = lesions.reference.get(f"reference_for_{side}")
    if ref is not None and np.isfinite(ref) and crit.core_rcbf is not None:
        value = crit.core_rcbf * ref
        marks["cbf"] = [(value, f"core <{value:.0f}")]
    return marks


def _tiles(study: Study, maps: dict[str, np.ndarray], units, lesions: Lesions, marks, crop):
    ranges = {k: map_range(k, v) for k, v in maps.items()}
    bars = {
        k: colour_bar(
            DISPLAY.get(k, {}).get("title", k.upper()),
            units.get(k, ""),
            cmap=DISPLAY.get(k, {}).get("cmap", "viridis"),
            vmin=lo,
            vmax=hi,
            marks=marks.get(k, ()),
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
            crop=crop,
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
    settings: Sequence[tuple[str, str]] = (),
    brain: np.ndarray | None = None,
    aif: Any = None,
    vof: Any = None,
    motion: Any = None,
    problems: Sequence[str] = (),
    caveats: Sequence[dict[str, str]] = (),
    baseline_frames: int = DEFAULT_BASELINE_FRAMES,
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
        Core and penumbra overlays, volumes, the thresholds applied (marked on the colour
        bars).
    decision : dict
        `ctpmaps.lesion.decision_numbers` (with ``supported`` False when withheld).
    provenance : dict
        ``method``, ``timings_s``, ``inputs``; version, date, command and the report's
        own time are added here.
    study_summary : dict
        What was read (source, dimensions, spacing, frames ...).
    settings : sequence of (str, str)
        How the maps and lesions were made, one row each (the parameters table).
    brain : ndarray (x, y, z) bool, optional
        Crops the slices to the head.
    aif, vof : InputFunction, optional
        Curves to plot, and where they were taken.
    motion : motion result, optional
        Plotted when motion correction ran (`motion_summary` attributes).
    problems : sequence of str
        Reading problems, shown as notes.
    caveats : sequence of dict
        The run's quality findings (``code``, ``severity``, ``message``), shown at the top.
    baseline_frames : int
        Pre-bolus frames: the AIF/VOF picture shows the peak enhancement over their mean.
    """
    t0 = time.perf_counter()
    present = {k: v for k, v in maps.as_dict().items() if np.isfinite(v).any()}
    crop = crop_box(brain if brain is not None else lesions.hemispheres > 0, study.spacing)
    marks = threshold_marks(lesions, decision)
    tiles, bars, labels = _tiles(study, present, maps.units, lesions, marks, crop)
    curves = locations = None
    if aif is not None:
        curves = input_functions_figure(aif, vof)
        peak = study.frames.max(axis=-1) - unenhanced(study.frames, baseline_frames)
        locations = input_locations_figure(
            peak, study.affine, aif_voxels=aif.voxels,
            vof_voxels=None if vof is None else vof.voxels, crop=crop,
        ) if len(aif.voxels) else None  # fmt: skip
    motion_png = summary = None
    if motion is not None:
        motion_png = motion_figure(motion)
        summary = motion_summary(motion)
    timings = dict(provenance.get("timings_s", {}))
    timings["report"] = round(time.perf_counter() - t0, 2)
    content = ReportContent(
        title="CT perfusion: core and penumbra",
        study=study_summary,
        decision=decision,
        volumes_ml={k: round(v, 2) for k, v in lesions.volumes_ml().items()},
        slices=tiles,
        colour_bars=bars,
        slice_labels=labels,
        input_functions=curves,
        input_locations=locations,
        motion=motion_png,
        motion_summary=summary,
        settings=list(settings),
        provenance={
            "version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": sys.argv,
            **provenance,
            "timings_s": timings,
        },
        caveats=list(caveats),
        warnings=list(problems),
    )
    return write_report(content, path)
