"""The whole chain in one call (``ctpmaps run``): a CTP study in; maps, core, penumbra,
decision numbers, NIfTI and DICOM outputs and an HTML report out.

Stages (`STAGES`), each timed and reported to ``progress``:

``load``      read the study (`ctpmaps.io.load_study`), unless a `Study` is given;
``motion``    rigid motion correction (`ctpmaps.preprocess.register_frames`);
``filter``    guided 3D bilateral filter (`ctpmaps.preprocess.guided_bilateral_filter`);
``maps``      brain mask, input functions and deconvolution (`ctpmaps.perfusion.compute_maps`),
              or the U-Net (`ctpmaps.nn`) for ``method="cnn"``;
``lesions``   midline, hemispheres, core/hypoperfusion/penumbra, decision numbers
              (`ctpmaps.lesion`);
``nifti``     maps, masks, volumes, curves, motion files (`ctpmaps.pipeline.outputs`);
``dicom``     Parametric Maps and SEG (`ctpmaps.io.dicom`);
``report``    ``report.html`` (`ctpmaps.report`), then ``run.json``.

The output folder is checked before anything is read (`ctpmaps.io.atomic.OutputFolder`),
everything is written into a staging folder and moved into place at the end: a failure
leaves nothing behind, and only files of an earlier ctpmaps run are ever replaced.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..clock import Progress, Stopwatch
from ..errors import FitError
from ..io.atomic import atomic_dir
from ..io.study import Study
from ..lesion import (
    DEFUSE3,
    LesionCriteria,
    TargetMismatch,
    decision_numbers,
    segment_about_midline,
)
from ..perfusion.concentration import check_baseline_frames
from ..perfusion.maps import check_neighbourhood_mtt, compute_maps
from ..perfusion.methods import method_info
from ..physics import BRAIN_DENSITY, HEMATOCRIT_FACTOR
from ..preprocess.bilateral import SEED_SIGMAS, SIGMA_RANGE_HU, SIGMA_SPATIAL_MM
from ..preprocess.unenhanced import unenhanced
from ..report.build import motion_summary
from .load import check_inputs, load, study_summary
from .outputs import MAIN_FILES, write_outputs
from .predict import cnn_maps, load_network
from .preprocess import applied_steps, preprocess_frames
from .quality import assess
from .result import StudyResult

__all__ = [
    "STAGES",
    "ChainOptions",
    "analyse_study",
    "default_filter_sigmas",
    "run_study",
    "predict_study",
]

log = logging.getLogger(__name__)

#: Stages of `run_study`, in order.
STAGES = ("load", "motion", "filter", "maps", "lesions", "nifti", "dicom", "report")


def default_filter_sigmas(method: str, models: Sequence | None = None) -> tuple[float, float]:
    """Default (spatial mm, range HU) of the guided bilateral filter for ``method``: for
    ``"cnn"`` the filter of the networks' training frames (`ctpmaps.nn.filter_sigmas_of`;
    the seed's 3 mm / 20 HU without models), else 2 mm / 3 HU (`ctpmaps.preprocess.bilateral`)."""
    if method != "cnn":
        return SIGMA_SPATIAL_MM, SIGMA_RANGE_HU
    if models:
        from ..nn import filter_sigmas_of

        return filter_sigmas_of(models)
    return SEED_SIGMAS


def _lesions(result: StudyResult, criteria: LesionCriteria, profile: TargetMismatch) -> None:
    study, made = result.study, result.maps
    lesions, midline = segment_about_midline(
        made.maps, made.brain, unenhanced(study.frames, made.baseline_frames), study.spacing,
        study.affine, criteria=criteria,
    )  # fmt: skip
    result.lesions, result.midline = lesions, midline
    result.decision = decision_numbers(lesions, profile=profile)
    withheld = [c["code"] for c in result.caveats if c["severity"] == "withhold"]
    result.decision["supported"] = not withheld
    result.decision["withheld_because"] = withheld


@dataclass(frozen=True)
class ChainOptions:
    """What the chain does with a study, apart from writing (`analyse_study`, `run_study`).

    Attributes
    ----------
    method : str
        A method of `ctpmaps.perfusion.METHODS`: ``nlr``, ``ssvd``, ``bsvd``, ``osvd`` or
        ``cnn`` (the U-Net).
    motion, filter : bool
        Rigid motion correction and the guided bilateral filter (the seed's
        preprocessing); skipped when the frames had them already.
    motion_method : {"gauss-newton", "elastix-seed"}
        The registration (`ctpmaps.preprocess.register_frames`).
    filter_sigmas : (float or None, float or None), optional
        Spatial sigma (mm) and range sigma (HU) of the filter; None takes the method's
        default (`default_filter_sigmas`: for the U-Net, its training frames' filter).
    lesions : bool
        Segment core, hypoperfusion and penumbra and compute the decision numbers.
    criteria : LesionCriteria, optional
        Lesion thresholds (RAPID-like, per-method thresholds by default).
    profile : TargetMismatch
        Target-mismatch thresholds (DEFUSE-3).
    series_uid : str, optional
        DICOM series to read from a folder holding several.
    frame_interval : float, optional
        Frame interval in s for a DICOM series without time tags.
    identifiers : bool
        Keep the patient's ID and name in the summary (run.json, volumes, the report); left
        out by default.
    mask : array, NIfTI path, False or None
        Brain mask; the automatic CT brain mask by default (False: every voxel, ``cnn``).
    aif_mask, aif_csv, vof_mask, baseline_frames, hematocrit_factor, density
        As in `ctpmaps.perfusion.compute_maps` (``baseline_frames``: pre-bolus frames, by
        default the frames before the AIF's arrival).
    neighbourhood_mtt : bool
        ``nlr`` only: fit every voxel with its neighbourhood's MTT and residue shape unless
        its curve rejects them (`ctpmaps.perfusion.BoxNLRModel`, off by default).
    weights : path or paths, optional
        U-Net weights for ``cnn`` (default: ``$CTPMAPS_WEIGHTS`` or the package's).
    device : str, optional
        ``cpu`` or ``cuda`` for the U-Net (CUDA when available by default).
    """

    method: str = "nlr"
    motion: bool = True
    motion_method: str = "gauss-newton"
    filter: bool = True  # noqa: A003 - the name users know from the command line
    filter_sigmas: tuple[float | None, float | None] | None = None
    lesions: bool = True
    criteria: LesionCriteria | None = None
    profile: TargetMismatch = DEFUSE3
    series_uid: str | None = None
    frame_interval: float | None = None
    identifiers: bool = False
    mask: Any = None
    aif_mask: Any = None
    aif_csv: str | Path | None = None
    vof_mask: Any = None
    baseline_frames: int | None = None
    hematocrit_factor: float = HEMATOCRIT_FACTOR
    density: float = BRAIN_DENSITY
    neighbourhood_mtt: bool = False
    weights: str | Path | Sequence[str | Path] | None = None
    device: str | None = None


@dataclass
class _Plan:
    """What is known before anything is read: the options, the networks, the filter, the
    input files (all checked)."""

    options: ChainOptions
    models: list | None
    sigmas: tuple[float, float]
    inputs: dict[str, Any]


def _plan(study_or_path: Study | str | Path, options: ChainOptions) -> _Plan:
    """Every check that needs no reading of the study: method, weights, input files."""
    method_info(options.method)
    o = options
    check_neighbourhood_mtt(o.method, o.neighbourhood_mtt)
    models = load_network(o.weights, o.device) if o.method == "cnn" else None
    default = default_filter_sigmas(o.method, models)
    given = o.filter_sigmas or (None, None)
    sigmas = tuple(d if g is None else float(g) for g, d in zip(given, default, strict=True))
    named = {"study": None if isinstance(study_or_path, Study) else study_or_path}
    named |= {k: getattr(o, k) for k in ("mask", "aif_mask", "aif_csv", "vof_mask")}
    inputs = {k: v for k, v in named.items() if isinstance(v, (str, Path))}
    check_inputs(inputs.values())
    return _Plan(o, models, sigmas, inputs)


def _analyse(plan: _Plan, study_or_path: Study | str | Path, clock: Stopwatch) -> StudyResult:
    o = plan.options
    study, owned = load(study_or_path, o.series_uid, clock, o.frame_interval)
    if o.baseline_frames is not None:  # before any long computation
        check_baseline_frames(o.baseline_frames, study.n_frames)
    skipped: dict[str, str] = {}
    summary = study_summary(study, identifiers=o.identifiers)
    result = StudyResult(study, summary, list(study.problems), skipped=skipped)
    study, result.motion = preprocess_frames(
        study, motion=o.motion, filter=o.filter, filter_sigmas=plan.sigmas, owned=owned,
        clock=clock, skipped=skipped, motion_options={"method": o.motion_method},
    )  # fmt: skip
    result.study = study
    with clock.stage("maps"):
        if plan.models is not None:
            result.maps = cnn_maps(study, plan.models, mask=o.mask, device=o.device)
        else:
            try:
                result.maps = compute_maps(
                    study, method=o.method, mask=o.mask, aif_mask=o.aif_mask,
                    aif_csv=o.aif_csv, vof_mask=o.vof_mask, baseline_frames=o.baseline_frames,
                    hematocrit_factor=o.hematocrit_factor, density=o.density,
                    neighbourhood_mtt=o.neighbourhood_mtt,
                )  # fmt: skip
            except FitError as exc:  # the message names the study, as every other error
                name = study_or_path if not isinstance(study_or_path, Study) else "the study"
                raise FitError(f"{name}: {exc}") from exc
    filtered = "filter" in clock.timings or "filter" in applied_steps(study)
    result.caveats = assess(result.maps.parameters, filtered=filtered, problems=result.problems)
    if o.lesions:
        with clock.stage("lesions"):
            _lesions(result, o.criteria or LesionCriteria(), o.profile)
    else:
        skipped["lesions"] = "not asked for"
    result.parameters = _parameters(result, o.method, plan.sigmas, "filter" in clock.timings)
    result.timings_s = dict(clock.timings)
    return result


def analyse_study(
    study_or_path: Study | str | Path, *, progress: Progress | None = None, **options: Any
) -> StudyResult:
    """The chain on one study in memory, nothing written: maps, lesions, caveats.

    ``options`` are the fields of `ChainOptions` (``method``, ``motion``, ``lesions`` ...).
    Used where the results are consumed at once (``ctpmaps evaluate``); `run_study` is the
    same chain followed by its outputs.

    Raises
    ------
    InputError, WeightsError, FitError
        As `run_study`.
    """
    plan = _plan(study_or_path, ChainOptions(**options))
    clock = Stopwatch(progress)
    result = _analyse(plan, study_or_path, clock)
    result.timings_s["total"] = clock.total()
    return result


def run_study(
    study_or_path: Study | str | Path,
    out: str | Path,
    *,
    dicom: bool = True,
    report: bool = True,
    overwrite: bool = False,
    anonymize: bool = False,
    progress: Progress | None = None,
    **options: Any,
) -> StudyResult:
    """Run the chain on one study and write its outputs into ``out``.

    Parameters
    ----------
    study_or_path : Study, str or Path
        A `Study` (not modified), or a NIfTI file, DICOM folder or UniToBrain patient folder.
    out : str or Path
        Output folder: new, empty, or an earlier ctpmaps run's with ``overwrite``.
    dicom, report : bool
        Write the DICOM Parametric Maps and SEG, and the HTML report (need ``lesions``).
    overwrite : bool
        Replace the files an earlier ctpmaps run wrote in ``out`` (nothing else).
    anonymize : bool
        DICOM outputs without patient identifiers (DICOM PS3.15 basic profile).
    progress : callable, optional
        `ctpmaps.clock.Progress` of the `STAGES` that run.
    **options
        What the chain does: the fields of `ChainOptions` (``method``, ``motion``,
        ``filter``, ``lesions``, ``criteria``, ``mask``, ``aif_csv``, ``weights`` ...).

    Returns
    -------
    StudyResult

    Raises
    ------
    InputError
        Unknown method, an unusable output folder, or a study that cannot be read;
        nothing is computed and nothing is written.
    WeightsError
        U-Net weights that cannot be used (before any computation).
    FitError
        No usable AIF (no bolus).

    Examples
    --------
    >>> from ctpmaps.pipeline import run_study                  # doctest: +SKIP
    >>> r = run_study("MOL-001/ctp.nii.gz", "MOL-001/run")      # doctest: +SKIP
    >>> r.decision["core_ml"], r.decision["target_mismatch"], r.report  # doctest: +SKIP
    (24.1, True, PosixPath('MOL-001/run/report.html'))
    """
    plan = _plan(study_or_path, ChainOptions(**options))
    clock = Stopwatch(progress)
    with atomic_dir(out, overwrite=overwrite, inputs=plan.inputs.values()) as tmp:
        result = _analyse(plan, study_or_path, clock)
        write_outputs(
            tmp, result, clock=clock, dicom=dicom, report=report, inputs=plan.inputs,
            anonymize=anonymize,
        )  # fmt: skip
    result.out = Path(out)
    result.files = {k: result.out / rel for k, rel in MAIN_FILES.items()
                    if (result.out / rel).exists()}  # fmt: skip
    log.info("run finished in %.1f s: %s", result.timings_s["total"], out)
    return result


def predict_study(
    study_or_path: Study | str | Path,
    out: str | Path,
    *,
    weights: str | Path | Sequence[str | Path] | None = None,
    filter: bool | None = None,  # noqa: A002 - the name users know from the command line
    mask: np.ndarray | str | Path | bool | None = None,
    device: str | None = None,
    overwrite: bool = False,
    series_uid: str | None = None,
    frame_interval: float | None = None,
    progress: Progress | None = None,
) -> Any:
    """Perfusion maps of a study from the U-Net alone (``ctpmaps predict``).

    The frames get the guided bilateral filter the networks' training frames had, unless
    they are filtered already (``filter=None``) or ``filter`` says otherwise; no motion
    correction. Writes the predicted maps (NIfTI, physical units), the brain mask and
    ``run.json`` into ``out``.

    Parameters are those of `ctpmaps.pipeline.run_study`; ``mask=False`` keeps every voxel.

    Returns
    -------
    StudyResult
    """
    return run_study(
        study_or_path,
        out,
        method="cnn",
        weights=weights,
        motion=False,
        filter=filter,
        lesions=False,
        dicom=False,
        report=False,
        mask=mask,
        device=device,
        overwrite=overwrite,
        series_uid=series_uid,
        frame_interval=frame_interval,
        progress=progress,
    )


def _parameters(result: StudyResult, method: str, sigmas, filtered: bool) -> dict[str, Any]:
    """Everything the run depended on, for run.json and the report."""
    p: dict[str, Any] = {
        "method": method,
        "motion_correction": result.motion is not None,
        "motion": None if result.motion is None else motion_summary(result.motion),
        "filter": filtered,
        "filter_sigmas": {"spatial_mm": sigmas[0], "range_hu": sigmas[1]},
        "maps": result.maps.parameters,
        "skipped": result.skipped,
        "study": result.summary,
    }
    if result.lesions is not None:
        p |= {
            "criteria": result.lesions.criteria.as_dict(),  # thresholds resolved for the method
            "profile": result.decision["profile"],
            "midline": result.midline.as_dict(),
            "lesion_rule": result.lesions.rule,
            "lesion_reference": result.lesions.reference,
        }
    return p
