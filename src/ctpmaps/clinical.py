"""The clinical chain in one call: a CTP study in, core, penumbra, decision numbers, NIfTI
and DICOM outputs and an HTML report out (``ctpmaps run``).

Stages (`STAGES`), each timed:

``load``      read the study (`ctpmaps.io.load_study`), unless a `Study` is given;
``motion``    rigid motion correction of the frames (`ctpmaps.preprocess.motion`);
``filter``    guided 3D bilateral filter (`ctpmaps.preprocess.guided_bilateral_filter`);
``maps``      brain mask, AIF/VOF and deconvolution (`ctpmaps.pipeline.compute_maps`), or
              the U-Net (`ctpmaps.nn`) for ``method="cnn"``;
``lesions``   midline, hemispheres, core/hypoperfusion/penumbra, decision numbers
              (`ctpmaps.lesion`);
``nifti``     maps, masks, ``volumes.json``/``volumes.csv``, curves, motion files;
``dicom``     Parametric Maps and SEG (`ctpmaps.io.dicom.export`);
``report``    ``report.html`` (`ctpmaps.report`), then ``run.json``.

Everything is written into a temporary folder renamed to ``out`` at the end: a failure
leaves no output behind.
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import InputError
from .io.atomic import atomic_dir, atomic_path
from .io.nifti import write_nifti_map
from .io.runinfo import write_run_json
from .io.study import Study
from .lesion import (
    DEFUSE3,
    LesionCriteria,
    Lesions,
    Midline,
    TargetMismatch,
    decision_numbers,
    fit_midline,
    hemisphere_labels,
    segment_lesions,
)
from .lesion.output import write_lesion_outputs
from .perfusion.base import UNITS, PerfusionMaps
from .physics import BRAIN_DENSITY, HEMATOCRIT_FACTOR
from .pipeline import METHODS as MODEL_METHODS
from .report.build import motion_summary

__all__ = ["STAGES", "METHODS", "RunResult", "run_study", "cnn_available", "filter_sigmas_for"]

log = logging.getLogger(__name__)

#: Stages of `run_study`, in order.
STAGES = ("load", "motion", "filter", "maps", "lesions", "nifti", "dicom", "report")
#: Methods `run_study` accepts.
METHODS = (*MODEL_METHODS, "cnn")

Progress = Callable[[str, float | None], None]


@dataclass
class RunResult:
    """What `run_study` produced.

    Attributes
    ----------
    out : Path
        The output folder.
    maps : PerfusionMaps
        Maps in physical units (NaN outside the brain).
    brain : ndarray (x, y, z) bool
        Brain mask.
    lesions : Lesions
        Core, hypoperfusion, penumbra masks.
    decision : dict
        `ctpmaps.lesion.decision_numbers`.
    midline : Midline
        The fitted mid-sagittal plane.
    timings_s : dict
        Seconds per stage that ran, and ``total``.
    files : dict
        Name -> path of the main outputs (``report``, ``volumes_json``, ``dicom`` ...).
    parameters : dict
        Everything the run depended on (as in ``run.json``).
    skipped : dict
        Stages not run and why.
    """

    out: Path
    maps: PerfusionMaps
    brain: np.ndarray
    lesions: Lesions
    decision: dict[str, Any]
    midline: Midline
    timings_s: dict[str, float]
    files: dict[str, Path]
    parameters: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def report(self) -> Path | None:
        """Path of ``report.html`` when it was written."""
        return self.files.get("report")


def cnn_available() -> tuple[bool, str]:
    """Whether ``ctpmaps.nn`` can predict maps (a ``predict_maps`` function), and why not."""
    if importlib.util.find_spec("ctpmaps.nn") is None:
        return False, "the ctpmaps.nn package is not installed"
    for name in ("ctpmaps.nn", "ctpmaps.nn.predict"):
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            return False, f"{name} cannot be imported ({exc})"
        if callable(getattr(module, "predict_maps", None)):
            return True, name
    return False, "ctpmaps.nn provides no predict_maps function yet"


def _predict_maps():
    ok, where = cnn_available()
    if not ok:
        raise InputError("method", f"'cnn' is not available: {where}; use nlr, ssvd, bsvd or osvd")
    return importlib.import_module(where).predict_maps


class _Clock:
    """Times stages and reports them to ``progress``."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress or (lambda stage, seconds: None)
        self.timings: dict[str, float] = {}
        self.t_start = time.perf_counter()

    def start(self, stage: str) -> None:
        self._t0 = time.perf_counter()
        self._stage = stage
        self.progress(stage, None)

    def done(self) -> None:
        seconds = time.perf_counter() - self._t0
        self.timings[self._stage] = seconds
        self.progress(self._stage, seconds)


def filter_sigmas_for(method: str) -> tuple[float, float]:
    """Default (spatial mm, range HU) of the guided bilateral filter for ``method``: the
    seed's 3 mm / 20 HU for ``"cnn"`` (what made the U-Net's training frames), else
    2 mm / 3 HU (`ctpmaps.preprocess.bilateral`)."""
    from .preprocess.bilateral import SEED_SIGMAS, SIGMA_RANGE_HU, SIGMA_SPATIAL_MM

    return SEED_SIGMAS if method == "cnn" else (SIGMA_SPATIAL_MM, SIGMA_RANGE_HU)


def _check_arguments(out: Path, method: str, overwrite: bool) -> None:
    if method not in METHODS:
        raise InputError("method", f"expected one of {', '.join(METHODS)}, got {method!r}")
    if out.exists() and not overwrite:
        raise InputError(out, "already exists (pass overwrite=True, or --overwrite, to replace it)")
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder")
    if method == "cnn":
        _predict_maps()


def _load(study_or_path: Study | str | Path, series_uid: str | None) -> tuple[Study, bool]:
    """The study and whether its frames are ours to modify in place."""
    if isinstance(study_or_path, Study):
        return study_or_path, False
    from .io.load import load_study

    study = load_study(study_or_path, series_uid=series_uid)
    return study, _in_place_ok(study.frames)


def _in_place_ok(frames: np.ndarray) -> bool:
    """Preprocessing in place needs a writeable C-ordered float32 array (NIfTI reads
    F-ordered; a copy is then made by the first stage)."""
    return bool(frames.dtype == np.float32 and frames.flags.c_contiguous and frames.flags.writeable)


def _motion(study: Study, owned: bool, clock: _Clock, skipped: dict[str, str]):
    stage = study.metadata.get("unitobrain_stage")
    if stage in ("registered", "filtered"):
        skipped["motion"] = f"UniToBrain {stage} frames are registered already"
        return study, None, owned
    try:
        from .preprocess.motion import register_frames
    except ImportError as exc:
        skipped["motion"] = f"motion correction unavailable ({exc})"
        log.warning("motion correction skipped: %s", exc)
        return study, None, owned
    clock.start("motion")
    # a C-ordered output of our own: later stages then work in place (one copy of the study)
    out = study.frames if owned else np.empty(study.frames.shape, np.float32)
    result = register_frames(study.frames, study.spacing, times=study.times, out=out)
    clock.done()
    return replace(study, frames=result.frames), result, _in_place_ok(result.frames)


def _filter(study: Study, owned: bool, clock: _Clock, skipped: dict[str, str], sigmas):
    if study.metadata.get("unitobrain_stage") == "filtered":
        skipped["filter"] = "UniToBrain filtered frames are filtered already"
        return study, owned
    from .preprocess.bilateral import guided_bilateral_filter

    clock.start("filter")
    frames = guided_bilateral_filter(
        study.frames,
        study.spacing,
        sigma_spatial_mm=sigmas[0],
        sigma_range_hu=sigmas[1],
        out=study.frames if owned else None,
    )
    clock.done()
    return replace(study, frames=frames), _in_place_ok(frames)


@dataclass
class _Made:
    """Maps and what came with them."""

    maps: PerfusionMaps
    brain: np.ndarray
    n_baseline: int
    aif: Any
    vof: Any
    parameters: dict[str, Any]
    timings: dict[str, float]


def _maps(study: Study, method: str, weights, options: dict[str, Any]) -> _Made:
    if method == "cnn":
        from .preprocess.brainmask import ct_brain_mask

        brain = ct_brain_mask(study.frames, study.spacing)
        maps = _predict_maps()(study, weights, mask=brain)
        weights_used = None if weights is None else str(weights)
        return _Made(maps, brain, 3, None, None, {"method": "cnn", "weights": weights_used}, {})
    from .pipeline import compute_maps

    r = compute_maps(study, method=method, **options)
    return _Made(r.maps, r.brain, r.n_baseline, r.aif, r.vof, r.parameters, r.timings_s)


def run_study(
    study_or_path: Study | str | Path,
    out: str | Path,
    *,
    method: str = "nlr",
    motion: bool = True,
    filter: bool = True,  # noqa: A002 - the name users know from the command line
    criteria: LesionCriteria | None = None,
    profile: TargetMismatch = DEFUSE3,
    dicom: bool = True,
    report: bool = True,
    overwrite: bool = False,
    series_uid: str | None = None,
    mask: np.ndarray | str | Path | None = None,
    aif_mask: np.ndarray | str | Path | None = None,
    aif_csv: str | Path | None = None,
    vof_mask: np.ndarray | str | Path | None = None,
    hematocrit_factor: float = HEMATOCRIT_FACTOR,
    density: float = BRAIN_DENSITY,
    filter_sigmas: tuple[float, float] | None = None,
    weights: str | Path | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Run the whole chain on one study and write every output into ``out``.

    Parameters
    ----------
    study_or_path : Study, str or Path
        A `Study`, or a NIfTI file, DICOM folder or UniToBrain patient folder. A `Study`
        given here is not modified.
    out : str or Path
        Output folder, created (all or nothing).
    method : {"nlr", "ssvd", "bsvd", "osvd", "cnn"}
        Deconvolution method, or the U-Net (needs `ctpmaps.nn` and its weights).
    motion, filter : bool
        Rigid motion correction and the guided bilateral filter (the seed's preprocessing).
    criteria : LesionCriteria, optional
        Lesion thresholds (RAPID-like defaults, `ctpmaps.lesion.LesionCriteria`).
    profile : TargetMismatch
        Target-mismatch thresholds (DEFUSE-3).
    dicom, report : bool
        Write the DICOM exports and the HTML report.
    overwrite : bool
        Replace an existing ``out`` (only once the new one is complete).
    series_uid : str, optional
        DICOM series to read from a folder holding several.
    mask, aif_mask, aif_csv, vof_mask, hematocrit_factor, density
        As in `ctpmaps.pipeline.compute_maps`.
    filter_sigmas : (float, float)
        Spatial sigma (mm) and range sigma (HU) of the filter; by default 2 mm and 3 HU
        (`ctpmaps.preprocess.SIGMA_SPATIAL_MM`, `SIGMA_RANGE_HU`), and for ``"cnn"`` the
        seed's 3 mm and 20 HU (`SEED_SIGMAS`), which made the frames the U-Net learnt from.
    weights : str or Path, optional
        U-Net weights for ``method="cnn"`` (default: ``$CTPMAPS_WEIGHTS`` or the package's).
    progress : callable, optional
        ``progress(stage, None)`` when a stage starts, ``progress(stage, seconds)`` when it
        ends (`STAGES`; skipped stages are not reported).

    Returns
    -------
    RunResult

    Raises
    ------
    InputError
        Unknown method, ``cnn`` without `ctpmaps.nn`, an existing ``out`` without
        ``overwrite``, or a study that cannot be read; nothing is written.
    FitError
        No usable AIF (no bolus).

    Examples
    --------
    >>> from ctpmaps.clinical import run_study                  # doctest: +SKIP
    >>> r = run_study("MOL-001/ctp.nii.gz", "MOL-001/run")      # doctest: +SKIP
    >>> r.decision["core_ml"], r.decision["target_mismatch"], r.report  # doctest: +SKIP
    (24.1, True, PosixPath('MOL-001/run/report.html'))
    """
    out = Path(out)
    _check_arguments(out, method, overwrite)
    crit = criteria or LesionCriteria()
    filter_sigmas = filter_sigmas or filter_sigmas_for(method)
    clock = _Clock(progress)
    skipped: dict[str, str] = {}
    if isinstance(study_or_path, Study):
        study, owned = _load(study_or_path, series_uid)
    else:
        clock.start("load")
        study, owned = _load(study_or_path, series_uid)
        clock.done()
    summary, problems = _study_summary(study), list(study.problems)
    study, motion_result = _preprocess(study, owned, clock, skipped, motion, filter, filter_sigmas)

    clock.start("maps")
    options = {
        "mask": mask,
        "aif_mask": aif_mask,
        "aif_csv": aif_csv,
        "vof_mask": vof_mask,
        "hematocrit_factor": hematocrit_factor,
        "density": density,
    }
    made = _maps(study, method, weights, options)
    clock.done()

    clock.start("lesions")
    unenhanced = study.frames[..., : max(1, made.n_baseline)].mean(axis=-1)
    midline = fit_midline(unenhanced, study.spacing, study.affine)
    hemis = hemisphere_labels(study.shape, study.affine, midline, mask=made.brain)
    voxel_ml = float(np.prod(study.spacing)) / 1000.0
    lesions = segment_lesions(
        made.maps, made.brain, hemis, voxel_ml, criteria=crit, midline=midline,
        affine=study.affine,
    )  # fmt: skip
    decision = decision_numbers(lesions, profile=profile)
    clock.done()

    parameters = {
        "method": method,
        "motion_correction": motion_result is not None,
        "motion": None if motion_result is None else motion_summary(motion_result),
        "filter": "filter" in clock.timings,
        "filter_sigmas": {"spatial_mm": filter_sigmas[0], "range_hu": filter_sigmas[1]},
        "maps": made.parameters,
        "criteria": lesions.criteria.as_dict(),  # thresholds resolved for the method
        "profile": decision["profile"],
        "midline": midline.as_dict(),
        "lesion_rule": lesions.rule,
        "lesion_reference": lesions.reference,
        "skipped": skipped,
        "study": summary,
    }
    outputs = _Outputs(study, made, lesions, decision, midline, motion_result, problems)
    timings = _write_all(out, outputs, parameters, clock, dicom=dicom, report=report,
                         overwrite=overwrite)  # fmt: skip
    files = {name: out / rel for name, rel in _OUTPUTS.items() if (out / rel).exists()}
    log.info("run finished in %.1f s: %s", timings["total"], out)
    return RunResult(
        out, made.maps, made.brain, lesions, decision, midline, timings, files, parameters,
        skipped,
    )  # fmt: skip


def _preprocess(study, owned, clock, skipped, motion, filter_, sigmas):
    """Motion correction then the filter, each when asked for; (study, motion result)."""
    motion_result = None
    if motion:
        study, motion_result, owned = _motion(study, owned, clock, skipped)
    else:
        skipped["motion"] = "switched off"
    if filter_:
        study, owned = _filter(study, owned, clock, skipped, sigmas)
    else:
        skipped["filter"] = "switched off"
    return study, motion_result


@dataclass
class _Outputs:
    """What the writers need."""

    study: Study
    made: _Made
    lesions: Lesions
    decision: dict[str, Any]
    midline: Midline
    motion: Any
    problems: list[str]


def _write_all(out: Path, o: _Outputs, parameters, clock: _Clock, *, dicom, report, overwrite):
    """Every output into a temporary folder renamed to ``out``; the timings."""
    skipped = parameters["skipped"]
    with atomic_dir(out, overwrite=overwrite) as tmp:
        clock.start("nifti")
        _write_maps(tmp, o.study.affine, o.made.maps, o.made.brain)
        write_lesion_outputs(
            tmp, o.lesions, o.decision, o.midline, o.study.affine,
            patient_id=o.study.metadata.get("patient_id"),
        )  # fmt: skip
        if o.made.aif is not None:
            from .perfusion.aif import write_input_functions

            write_input_functions(tmp, o.made.aif, o.made.vof)
        if o.motion is not None:
            _write_motion(tmp, o.motion, o.study.times)
        clock.done()
        if dicom:
            clock.start("dicom")
            parameters["dicom"] = _export_dicom(tmp, o)
            clock.done()
        else:
            skipped["dicom"] = "switched off"
        if report:
            clock.start("report")
            _report(tmp / "report.html", o, parameters, clock.timings)
            clock.done()
        else:
            skipped["report"] = "switched off"
        timings = dict(clock.timings)
        timings["total"] = time.perf_counter() - clock.t_start
        timings.update({f"maps.{k}": v for k, v in o.made.timings.items()})
        write_run_json(
            tmp,
            inputs={"study": o.study.path},
            parameters=parameters,
            timings_s=timings,
            results={"decision": o.decision, "volumes_ml": o.lesions.volumes_ml()},
        )
    return timings


#: Main output files by name.
_OUTPUTS = {
    "report": "report.html",
    "volumes_json": "volumes.json",
    "volumes_csv": "volumes.csv",
    "run_json": "run.json",
    "dicom": "dicom",
    "lesions": "lesions.nii.gz",
    "cbf": "cbf.nii.gz",
}


def _study_summary(study: Study) -> dict[str, Any]:
    return {
        "patient_id": study.metadata.get("patient_id"),
        "source": study.source,
        "path": str(study.path) if study.path else None,
        "dimensions": " x ".join(map(str, study.shape)),
        "spacing_mm": " x ".join(f"{v:.3g}" for v in study.spacing),
        "frames": f"{study.n_frames} over {study.times[-1]:.1f} s",
        "study_instance_uid": study.metadata.get("study_instance_uid"),
    }


def _write_maps(tmp: Path, affine: np.ndarray, maps: PerfusionMaps, brain: np.ndarray) -> None:
    for name, arr in maps.as_dict().items():
        if not np.isfinite(arr).any():
            continue  # a map the method does not make (U-Net without that model)
        write_nifti_map(
            arr,
            affine,
            tmp / f"{name}.nii.gz",
            units=maps.units.get(name, UNITS.get(name, "")),
            description=f"{name.upper()} {maps.method}",
        )
    write_nifti_map(brain, affine, tmp / "brain_mask.nii.gz", description="brain mask")


def _write_motion(tmp: Path, result: Any, times: np.ndarray) -> None:
    """``motion.csv`` (and the module's own plot when it offers `motion_report`)."""
    from .preprocess import motion as motion_module

    writer = getattr(motion_module, "motion_report", None)
    if callable(writer):
        writer(result, tmp)
        return
    flagged = np.asarray(getattr(result, "flagged", np.zeros(len(times), bool)))
    with atomic_path(tmp / "motion.csv") as path, open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["frame", "time_s", "tx_mm", "ty_mm", "tz_mm", "rx_deg", "ry_deg", "rz_deg",
                    "flagged"])  # fmt: skip
        for k, t in enumerate(times):
            w.writerow(
                [k, f"{t:.3f}"]
                + [f"{v:.4f}" for v in result.translations_mm[k]]
                + [f"{v:.4f}" for v in result.rotations_deg[k]]
                + [int(flagged[k])]
            )


def _export_dicom(tmp: Path, o: _Outputs) -> dict[str, Any]:
    from .io.dicom import export_dicom

    unenhanced = o.study.frames[..., : max(1, o.made.n_baseline)].mean(axis=-1)
    present = {k: v for k, v in o.made.maps.as_dict().items() if np.isfinite(v).any()}
    info = export_dicom(
        present,
        {"core": o.lesions.core, "penumbra": o.lesions.penumbra},
        o.study,
        tmp / "dicom",
        method=o.made.maps.method,
        lesion_description=f"{o.lesions.rule} rule (ctpmaps {__version__})",
        image=unenhanced,
    )
    info["files"] = {k: str(Path(v).relative_to(tmp)) for k, v in info["files"].items()}
    return info


def _report(path: Path, o: _Outputs, parameters: dict[str, Any], timings) -> None:
    from .report.build import study_report

    study_report(
        path,
        study=o.study,
        maps=o.made.maps,
        lesions=o.lesions,
        decision=o.decision,
        study_summary=parameters["study"],
        aif=o.made.aif,
        vof=o.made.vof,
        motion=o.motion,
        problems=o.problems,
        provenance={
            "method": parameters["method"],
            "timings_s": {k: round(v, 2) for k, v in timings.items()},
            "parameters": {k: v for k, v in parameters.items() if k not in ("study", "dicom")},
            "criteria": parameters["criteria"],
            "midline": parameters["midline"],
            "inputs": {"study": parameters["study"].get("path")},
        },
    )
