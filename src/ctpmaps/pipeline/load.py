"""The first stage of the chain: a study from a path (or as given), and what was read."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..clock import Stopwatch
from ..errors import InputError
from ..io._layout import c_order_copy
from ..io.load import load_study
from ..io.study import Study

__all__ = ["check_inputs", "load", "study_summary"]


def check_inputs(paths) -> None:
    """Every input file or folder exists (checked before anything is written or computed)."""
    for path in paths:
        if not Path(path).exists():
            raise InputError(path, "no such file or folder")


def load(
    study_or_path: Study | str | Path,
    series_uid: str | None,
    clock: Stopwatch,
    frame_interval: float | None = None,
) -> tuple[Study, bool]:
    """The study, and whether its frames are ours to modify in place.

    A `Study` given by the caller is never modified (the first stage copies its frames);
    one read here is ours, with C-ordered frames (each voxel's curve contiguous, as every
    later stage wants): NIfTI reads Fortran-ordered, and the reordered copy made here
    replaces the read frames at once, so that one copy of the study is held from here on
    (750 MB less during the filter and the fits at 512 x 512 x 8 x 89 than a copy made by
    the first stage). Reading is timed as the stage ``load``.
    """
    if isinstance(study_or_path, Study):
        return study_or_path, False
    with clock.stage("load"):
        study = load_study(study_or_path, series_uid=series_uid, frame_interval=frame_interval)
        if not study.frames.flags.c_contiguous:
            study = replace(study, frames=c_order_copy(study.frames))
    return study, True


def study_summary(study: Study, *, identifiers: bool = False) -> dict[str, Any]:
    """What was read, for run.json and the report: no patient name, birth date or ID
    unless ``identifiers`` (then ``patient_id`` and ``patient_name`` when known)."""
    ids = {}
    if identifiers:
        ids = {k: study.metadata.get(k) for k in ("patient_id", "patient_name")}
    return {
        **ids,
        "source": study.source,
        "path": str(study.path) if study.path else None,
        "dimensions": " x ".join(map(str, study.shape)),
        "spacing_mm": " x ".join(f"{v:.3g}" for v in study.spacing),
        "frames": f"{study.n_frames} over {study.times[-1]:.1f} s",
        "study_instance_uid": study.metadata.get("study_instance_uid"),
    }
