"""The preprocessing stages of the chain: rigid motion correction, then the guided 3D
bilateral filter (the seed's order), and `preprocess_study` (``ctpmaps preprocess``),
which writes the preprocessed frames on their own.

Stages already applied to the frames (a UniToBrain ``_Registered`` or
``_Registered_Filtered`` stage, or frames that ``ctpmaps preprocess`` wrote, which record
their steps in their metadata) are skipped, with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..clock import Progress, Stopwatch
from ..errors import InputError
from ..io._layout import c_order_copy
from ..io.atomic import atomic_dir
from ..io.study import Study
from ..preprocess.bilateral import SIGMA_RANGE_HU, SIGMA_SPATIAL_MM
from .load import check_inputs, load, study_summary
from .outputs import write_preprocessed
from .result import StudyResult

__all__ = ["applied_steps", "preprocess_frames", "preprocess_study", "seed_filter"]

log = logging.getLogger(__name__)

#: How each source says which preprocessing its frames had.
_UNITOBRAIN_STEPS = {"registered": {"motion"}, "filtered": {"motion", "filter"}}


def applied_steps(study: Study) -> set[str]:
    """Preprocessing already applied to the study's frames: a subset of {"motion", "filter"}.

    Read from the UniToBrain stage (``MOL-XXX_Registered``, ``..._Filtered_3mm_20HU``) or
    from the ``Preprocessing`` item that ``ctpmaps preprocess`` writes beside its frames
    (e.g. ``"registered+filtered"``).
    """
    steps = set(_UNITOBRAIN_STEPS.get(study.metadata.get("unitobrain_stage"), set()))
    done = str(study.metadata.get("Preprocessing") or study.metadata.get("preprocessing") or "")
    if "registered" in done:
        steps.add("motion")
    if "filtered" in done:
        steps.add("filter")
    return steps


def seed_filter(study: Study) -> Study:
    """The study through the seed's guided bilateral filter (3 mm, 20 HU): the frames of a
    UniToBrain ``_Registered_Filtered_3mm_20HU`` stage (the phantom's writers take it as
    ``filter_frames``)."""
    from ..preprocess.bilateral import SEED_SIGMAS, filter_study

    return filter_study(study, sigma_spatial_mm=SEED_SIGMAS[0], sigma_range_hu=SEED_SIGMAS[1])


def _writeable_copy_ok(frames: np.ndarray) -> bool:
    """Preprocessing in place needs a writeable C-ordered float32 array (NIfTI reads
    F-ordered; a copy is then made by the first stage)."""
    return bool(frames.dtype == np.float32 and frames.flags.c_contiguous and frames.flags.writeable)


def _own(study: Study, owned: bool) -> Study:
    """The study with frames we may overwrite: a C-ordered float32 copy unless ``owned``
    (NIfTI reads F-ordered); both stages then work in place."""
    return study if owned else replace(study, frames=c_order_copy(study.frames))


_DONE_ALREADY = {"motion": "registered", "filter": "filtered"}


def _skipped(step: str, wanted: bool, done: set[str], skipped: dict[str, str]) -> bool:
    """Whether ``step`` is left out (switched off, or done already), noting why in
    ``skipped``."""
    if not wanted:
        skipped[step] = "switched off"
    elif step in done:
        skipped[step] = f"the frames are {_DONE_ALREADY[step]} already"
    else:
        return False
    return True


def preprocess_frames(
    study: Study,
    *,
    motion: bool = True,
    filter: bool = True,  # noqa: A002 - the name users know from the command line
    filter_sigmas: tuple[float, float] = (SIGMA_SPATIAL_MM, SIGMA_RANGE_HU),
    motion_options: dict[str, Any] | None = None,
    owned: bool = False,
    clock: Stopwatch | None = None,
    skipped: dict[str, str] | None = None,
) -> tuple[Study, Any]:
    """Motion correction then the filter, each when asked for and not done already.

    Parameters
    ----------
    study : Study
        HU frames; not modified unless ``owned``.
    motion, filter : bool
        Run rigid motion correction (`ctpmaps.preprocess.register_frames`) and the guided
        bilateral filter (`ctpmaps.preprocess.guided_bilateral_filter`).
    filter_sigmas : (float, float)
        Spatial sigma (mm) and range sigma (HU) of the filter.
    motion_options : dict, optional
        Keywords of `register_frames` (``flag_mm``, ``flag_deg`` ...).
    owned : bool
        The frames are ours to overwrite (saves a copy of the study).
    clock : Stopwatch, optional
        Times the stages ``motion`` and ``filter``.
    skipped : dict, optional
        Receives the stages not run and why.

    Returns
    -------
    (Study, MotionResult or None)
    """
    clock = clock or Stopwatch()
    skipped = {} if skipped is None else skipped
    done = applied_steps(study)
    owned = owned and _writeable_copy_ok(study.frames)
    motion_result = None
    if not _skipped("motion", motion, done, skipped):
        from ..preprocess.motion import register_frames

        with clock.stage("motion"):
            study, owned = _own(study, owned), True
            motion_result = register_frames(
                study.frames,
                study.spacing,
                times=study.times,
                out=study.frames,
                **(motion_options or {}),
            )
        study = replace(study, frames=motion_result.frames)
    if not _skipped("filter", filter, done, skipped):
        from ..preprocess.bilateral import guided_bilateral_filter

        with clock.stage("filter"):
            study, owned = _own(study, owned), True
            frames = guided_bilateral_filter(
                study.frames,
                study.spacing,
                sigma_spatial_mm=filter_sigmas[0],
                sigma_range_hu=filter_sigmas[1],
                out=study.frames,
            )
        study = replace(study, frames=frames)
    return study, motion_result


def preprocess_study(
    study_or_path: Study | str | Path,
    out: str | Path,
    *,
    motion: bool = True,
    motion_method: str = "gauss-newton",
    filter: bool = True,  # noqa: A002
    filter_sigmas: tuple[float, float] = (SIGMA_SPATIAL_MM, SIGMA_RANGE_HU),
    flag_mm: float = 1.0,
    flag_deg: float = 1.0,
    overwrite: bool = False,
    series_uid: str | None = None,
    frame_interval: float | None = None,
    anonymize: bool = False,
    identifiers: bool = False,
    progress: Progress | None = None,
) -> StudyResult:
    """Motion correction and the filter on their own (``ctpmaps preprocess``).

    Writes into ``out`` the preprocessed frames as a 4D NIfTI ``ctp.nii.gz`` with its
    ``ctp.json`` sidecar (frame times in s, the steps applied), a derived DICOM series
    ``dicom/`` when the input was DICOM, the motion report (``motion.csv``,
    ``motion.png``) and ``run.json``.

    Parameters
    ----------
    study_or_path : Study, str or Path
        A `Study`, or a NIfTI file, DICOM folder or UniToBrain patient folder.
    out : str or Path
        Output folder: new, empty, or an earlier run's with ``overwrite``.
    motion, filter : bool
        The two steps; at least one.
    motion_method : {"gauss-newton", "elastix-seed"}
        The registration (`ctpmaps.preprocess.register_frames`).
    filter_sigmas : (float, float)
        Spatial (mm) and range (HU) sigma of the filter.
    flag_mm, flag_deg : float
        Frames moving more than this are flagged in the motion report.
    overwrite : bool
        Replace the files an earlier run wrote in ``out`` (nothing else).
    series_uid : str, optional
        DICOM series to read from a folder holding several.
    frame_interval : float, optional
        Frame interval in s for a DICOM series without time tags.
    anonymize : bool
        Outputs without patient identifiers (DICOM PS3.15 basic profile; NIfTI sidecar).
    identifiers : bool
        The patient's ID and name in run.json (left out by default).
    progress : callable, optional
        `ctpmaps.clock.Progress` of the stages ``load``, ``motion``, ``filter``, ``write``.

    Raises
    ------
    InputError
        Nothing to do, an unusable output folder or an unreadable study (before any work).
    """
    if not (motion or filter):
        raise InputError("preprocess", "--no-motion and --no-filter together leave nothing to do")
    clock = Stopwatch(progress)
    inputs = [] if isinstance(study_or_path, Study) else [study_or_path]
    check_inputs(inputs)
    with atomic_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        study, owned = load(study_or_path, series_uid, clock, frame_interval)
        summary = study_summary(study, identifiers=identifiers)
        problems = list(study.problems)
        skipped: dict[str, str] = {}
        study, motion_result = preprocess_frames(
            study,
            motion=motion,
            filter=filter,
            filter_sigmas=filter_sigmas,
            motion_options={"method": motion_method, "flag_mm": flag_mm, "flag_deg": flag_deg},
            owned=owned,
            clock=clock,
            skipped=skipped,
        )
        steps = "+".join(s for s, ran in (("registered", motion), ("filtered", filter)) if ran)
        parameters = {
            "motion": motion,
            "motion_method": motion_method,
            "filter": filter,
            "sigma_spatial_mm": filter_sigmas[0],
            "sigma_range_hu": filter_sigmas[1],
            "flag_mm": flag_mm,
            "flag_deg": flag_deg,
            "steps": steps,
            "skipped": skipped,
            "study": summary,
            "anonymized": anonymize,
        }
        result = StudyResult(
            study, summary, problems, motion=motion_result, parameters=parameters, skipped=skipped
        )
        write_preprocessed(
            tmp, result, steps=steps, inputs={"study": study_or_path}, clock=clock,
            anonymize=anonymize,
        )  # fmt: skip
    result.out = Path(out)
    return result
