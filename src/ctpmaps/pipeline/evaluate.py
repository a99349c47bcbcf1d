"""``ctpmaps evaluate``: the seed study's evaluation of a cohort in one call.

Every patient is analysed on a dask worker (`ctpmaps.pipeline.cluster`, as ``ctpmaps
batch``), in memory: each method source through the chain (`analyse_study`: maps and
lesions), the phantom truth and the raters read from their folders
(`ctpmaps.evaluation.sources`); the worker reduces them to numbers
(`ctpmaps.evaluation.evaluate_patient`) and only those travel back. The cohort's tables
(`ctpmaps.evaluation.summarise_cohort`), the training runs' tables
(`ctpmaps.evaluation.training`), the failures and the HTML page are written into ``OUT``
(`ctpmaps.io.atomic.atomic_dir`: new, empty, or an earlier run's with ``overwrite``).

Lesion rule
    One rule segments every method source, so that two sources' masks differ by their maps
    alone: ``"tmax"`` when every method gives Tmax, else ``"cbv"`` (core on CBV, hypoperfusion
    on TTP, as the seed segmented its CNN maps, which have no Tmax); thresholds per method
    from the registry. The truth's masks and the raters' are used as given; the
    ``truth-rule`` source applies the rule to the phantom's true maps (RAPID's thresholds
    for the ``tmax`` rule, maps of no method), with hemispheres found as the chain finds
    them (`truth_rule_masks`).
Brain
    Map errors are scored on the same voxels for every source: the truth's brain mask (when
    the truth is a source) intersected with every method's own brain mask, i.e. brain voxels
    that every source mapped (a method's maps are NaN outside its mask, which would
    otherwise count as 0 on the normalised scale and measure the masks, not the maps).

See ``docs/evaluation.md`` for the layout of the outputs and every statistic.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..evaluation import LESIONS, PatientData, SourceData, evaluate_patient, summarise_cohort
from ..evaluation.overlap import voxel_volume_ml
from ..evaluation.sources import (
    TRUTH,
    Source,
    TruthData,
    parse_sources,
    rater_files,
    read_rater,
    read_truth,
)
from ..evaluation.training import CAPTIONS as TRAINING_CAPTIONS
from ..evaluation.training import training_tables
from ..io.atomic import atomic_dir
from ..io.cohort import CohortStudy, find_studies
from ..io.load import load_study
from ..io.runinfo import write_run_json
from ..io.study import Study
from ..io.tables import jsonable, write_csv, write_json
from ..nn.normalise import TARGET_RANGES, subsample_frames
from .cluster import guarded_study, run_on_cluster
from .run import ChainOptions

__all__ = [
    "EvaluationRun",
    "MIN_RELATIVE_REFERENCE",
    "evaluate_sources",
    "evaluate_study_sources",
    "lesion_rule",
    "select_patients",
    "subsample_study",
]

log = logging.getLogger(__name__)

#: Relative physical errors only where the reference exceeds these (map's unit): below them
#: a ratio is noise (Tmax of healthy tissue is near 0 s).
MIN_RELATIVE_REFERENCE = {"cbf": 5.0, "cbv": 0.5, "mtt": 1.0, "ttp": 1.0, "tmax": 2.0, "delay": 1.0}
_FAILURE_CAPTION = "Patients that could not be evaluated, with the reason; the others went on."
_PATIENT_CAPTION = "Every patient: done or failed, and the seconds its worker took."


@dataclass
class EvaluationRun:
    """What `evaluate_sources` did.

    Attributes
    ----------
    evaluation : dict
        ``settings``, ``captions`` and ``tables`` (the cohort's, the training runs', the
        patients' and the failures'), as written to ``evaluation.json``.
    failures : list of dict
        ``patient`` and ``error`` of each patient that failed.
    out : Path
    files : dict of str to Path
        ``report``, ``json``, ``run_json`` and every table's CSV by name.
    """

    evaluation: dict[str, Any]
    failures: list[dict[str, Any]]
    out: Path
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """The tables by name."""
        return self.evaluation["tables"]


def subsample_study(study: Study, n_frames: int | None) -> Study:
    """The study's frames kept by uniform stride from frame 0 (the seed's fewer-frames
    protocol, `ctpmaps.nn.subsample_frames`): what a scanner acquiring ``n_frames`` frames
    would have given. None keeps them all."""
    if n_frames is None or n_frames == study.n_frames:
        return study
    idx = subsample_frames(study.n_frames, n_frames)
    return dataclasses.replace(
        study, frames=np.ascontiguousarray(study.frames[..., idx]), times=study.times[idx]
    )


def lesion_rule(sources: Sequence[Source], weights=None) -> str:
    """The one lesion rule of the method sources (module docstring): ``"tmax"`` when every
    method makes Tmax, ``"cbv"`` when one does not (the U-Net without a Tmax model)."""
    if any(s.kind == "method" and s.name == "cnn" for s in sources):
        from ..nn.predict import find_weights
        from ..nn.weights import read_metadata

        targets = {read_metadata(p)["target"] for p in find_weights(weights)}
        if "tmax" not in targets:
            return "cbv"
    return "tmax"


def select_patients(
    cohort: str | Path,
    *,
    patients: Sequence[str] | None = None,
    patients_from: str | Path | None = None,
) -> list[CohortStudy]:
    """The cohort's studies to evaluate: all, those named, or a split's test patients.

    Raises
    ------
    InputError
        A named patient not in the cohort, an unreadable split, or both ways given.
    """
    studies = find_studies(cohort)
    if patients is not None and patients_from is not None:
        raise InputError("--patients", "give either --patients or --patients-from, not both")
    wanted: list[str] | None = list(patients) if patients is not None else None
    if patients_from is not None:
        from ..nn.splits import read_splits

        wanted = list(read_splits(patients_from)["test"])
        if not wanted:
            raise InputError(patients_from, "holds no test patients")
    if wanted is None:
        return studies
    by_name = {s.name: s for s in studies}
    missing = [p for p in wanted if p not in by_name]
    if missing:
        raise InputError(cohort, f"has no patient {', '.join(missing)}")
    return [by_name[p] for p in dict.fromkeys(wanted)]


def _truth_dir(study: CohortStudy) -> Path:
    folder = study.path if study.path.is_dir() else study.path.parent
    return folder / "truth"


def _check_inputs(studies: Sequence[CohortStudy], sources: Sequence[Source]) -> None:
    """Truth folders and rater files of every patient, before any work."""
    for s in studies:
        for src in sources:
            if (
                src.kind in ("truth", "truth-rule")
                and not (_truth_dir(s) / "brain_mask.nii.gz").is_file()
            ):
                raise InputError(_truth_dir(s), f"{s.name}: no phantom truth folder")
            if src.kind == "rater":
                rater_files(src.folder, s.name)


def _method_source(study: Study, name: str, chain: dict[str, Any]) -> tuple[SourceData, Any]:
    from .run import analyse_study

    result = analyse_study(study, method=name, lesions=True, **chain)
    maps = {k: v for k, v in result.maps.maps.as_dict().items() if np.isfinite(v).any()}
    masks = result.lesions.masks()
    return SourceData(maps, {k: masks[k] for k in LESIONS}), result.maps.brain


def truth_rule_masks(study: Study, truth: TruthData, rule: str) -> dict[str, np.ndarray]:
    """The lesion rule ``rule`` applied to a phantom's true maps (the ``truth-rule`` source).

    The midline comes from the study's first frame (before any bolus; the chain uses its
    baseline, which the truth does not need), the hemispheres from it inside the truth's
    brain; thresholds are `ctpmaps.lesion.LesionCriteria`'s for maps of no method.
    """
    from ..lesion import LesionCriteria, segment_about_midline
    from ..preprocess.unenhanced import unenhanced

    brain = truth.brain
    maps = {k: np.where(brain, v, np.nan).astype(np.float32) for k, v in truth.maps.items()}
    lesions, _ = segment_about_midline(
        maps, brain, unenhanced(study.frames, 1), study.spacing, study.affine,
        criteria=LesionCriteria(rule=rule),
    )  # fmt: skip
    masks = lesions.masks()
    return {k: masks[k] for k in LESIONS}


def evaluate_study_sources(
    study: Study | str | Path,
    patient: str,
    sources: Sequence[Source],
    *,
    reference: str,
    map_reference: str | None = None,
    truth_dir: str | Path | None = None,
    rule: str = "tmax",
    frames: int | None = None,
    **chain: Any,
):
    """One patient reduced to numbers (`ctpmaps.evaluation.PatientResult`), in memory.

    Parameters
    ----------
    study : Study or path
        The raw study (the chain preprocesses it for each method).
    patient : str
        Its name (rater files are found by it).
    sources : sequence of Source
    reference, map_reference : str
        Reference of the masks and of the maps.
    truth_dir : path, optional
        The phantom truth folder (needed for a ``truth`` or ``truth-rule`` source).
    rule : {"tmax", "cbv"}
        Lesion rule of the method and ``truth-rule`` sources (`lesion_rule`).
    frames : int, optional
        Frames kept by uniform stride before anything (`subsample_study`).
    **chain
        Fields of `ChainOptions` (``motion``, ``filter``, ``weights``, ``device`` ...).
    """
    from ..lesion import LesionCriteria

    if not isinstance(study, Study):
        study = load_study(study)
    study = subsample_study(study, frames)
    chain = {**chain, "criteria": LesionCriteria(rule=rule)}
    data: dict[str, SourceData] = {}
    brains: dict[str, np.ndarray] = {}
    regions: dict[str, np.ndarray] = {}
    truth: TruthData | None = None  # read once for truth and truth-rule
    for src in sources:
        if src.kind in ("truth", "truth-rule") and truth is None:
            truth = read_truth(Path(truth_dir) if truth_dir else Path("truth"))
        if src.kind == "method":
            data[src.name], brains[src.name] = _method_source(study, src.name, chain)
        elif src.kind == "truth":
            data[src.name] = SourceData(truth.maps, truth.masks)
            brains[src.name], regions = truth.brain, truth.regions
        elif src.kind == "truth-rule":
            data[src.name] = SourceData({}, truth_rule_masks(study, truth, rule))
        else:
            data[src.name] = SourceData({}, read_rater(src.folder, patient, study.shape))
    brain = np.ones(study.shape, bool)
    for mask in brains.values():  # the voxels every source mapped (module docstring)
        brain &= mask
    pdata = PatientData(patient, brain, voxel_volume_ml(study.spacing), data, regions)
    return evaluate_patient(
        pdata,
        reference=reference,
        value_ranges=TARGET_RANGES,
        map_reference=map_reference,
        min_reference_value=MIN_RELATIVE_REFERENCE,
    )


def _patient_task(path: str, patient: str, sources, settings: dict[str, Any]) -> dict[str, Any]:
    """One patient on a worker: its row with the `PatientResult`, never an exception."""
    return guarded_study(
        lambda: {"result": evaluate_study_sources(path, patient, sources, **settings)}
    )


def _map_reference(sources: Sequence[Source], reference: str, map_reference: str | None) -> str:
    names = [s.name for s in sources]
    if reference not in names:
        raise InputError("--reference", f"expected one of the sources {names}, got {reference!r}")
    chosen = map_reference or (TRUTH if TRUTH in names else reference)
    kinds = {s.name: s.kind for s in sources}
    if kinds.get(chosen) not in ("method", "truth"):
        raise InputError(
            "--map-reference", f"expected a source with maps (a method or truth), got {chosen!r}"
        )
    return chosen


def _chain(options: dict[str, Any], sources: Sequence[Source]) -> dict[str, Any]:
    """The chain options, checked (unknown names, the U-Net's device and weights) first."""
    try:
        ChainOptions(**options)
    except TypeError as exc:
        raise InputError("options", str(exc)) from None
    if any(s.name == "cnn" for s in sources):
        from ..nn.predict import resolve_device
        from .predict import load_network

        options = {**options, "device": resolve_device(options.get("device"))}
        load_network(options.get("weights"), "cpu")  # WeightsError before any work
    return options


def evaluate_sources(
    cohort: str | Path,
    out: str | Path,
    *,
    sources: Sequence[str],
    reference: str = TRUTH,
    map_reference: str | None = None,
    patients: Sequence[str] | None = None,
    patients_from: str | Path | None = None,
    training: Sequence[str | Path] = (),
    frames: int | None = None,
    rule: str | None = None,
    min_reference_ml: float = 1.0,
    workers: int | None = 1,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress: Callable[[str, dict[str, Any]], None] | None = None,
    **chain: Any,
) -> EvaluationRun:
    """Evaluate sources of maps and lesions over a cohort and write every table and figure.

    Parameters
    ----------
    cohort : str or Path
        A cohort folder (`ctpmaps.io.cohort.find_studies`; the phantom's layout for a
        ``truth`` source).
    out : str or Path
        Output folder: new, empty, or an earlier run's with ``overwrite``.
    sources : sequence of str
        Two or more of: a registry method, ``truth``, ``NAME=FOLDER`` (a rater).
    reference : str
        Reference of the lesion masks (Dice exclusion rule, pairs' second member).
    map_reference : str, optional
        Reference of the maps; ``truth`` when it is a source, else ``reference``.
    patients, patients_from : optional
        Patients to evaluate by name, or the test patients of a ``splits.json``.
    training : sequence of path
        ``ctpmaps train`` run folders (the seed's Table 1 and Figure 4).
    frames : int, optional
        Evaluate every method on this many frames by uniform stride (fewer frames, less
        dose); all by default.
    rule : {"tmax", "cbv"}, optional
        Lesion rule of every method source; by default the one all of them allow
        (`lesion_rule`). Give ``"cbv"`` to segment NLR as the U-Net in another evaluation.
    min_reference_ml : float
        Exclusion threshold on the reference's lesion volume, mL (`summarise_cohort`).
    workers, scheduler : optional
        The dask cluster (`ctpmaps.pipeline.cluster.dask_client`).
    overwrite : bool
        Replace the files of an earlier evaluation in ``out``.
    progress : callable, optional
        ``progress(patient, row)`` as each patient is done or failed.
    **chain
        Fields of `ChainOptions` for the method sources (``motion``, ``filter``,
        ``weights``, ``device`` ...).

    Returns
    -------
    EvaluationRun

    Raises
    ------
    InputError
        Bad sources, references, patients, rater files, truth folders, training runs or
        output folder (before any work), or every patient failed (nothing written).
    WeightsError
        Unusable U-Net weights (before any work).
    """
    t0 = time.perf_counter()
    srcs = parse_sources(sources)
    map_ref = _map_reference(srcs, reference, map_reference)
    studies = select_patients(cohort, patients=patients, patients_from=patients_from)
    _check_inputs(studies, srcs)
    chain = _chain(dict(chain), srcs)
    if rule is None:
        rule = lesion_rule(srcs, chain.get("weights"))
    elif rule not in ("tmax", "cbv"):
        raise InputError("--rule", f"expected tmax or cbv, got {rule!r}")
    trained = training_tables(training)
    settings = {"reference": reference, "map_reference": map_ref, "rule": rule, "frames": frames}
    say = progress or (lambda name, row: None)
    with atomic_dir(out, overwrite=overwrite, inputs=[cohort]) as tmp:
        tasks = {
            s.name: (str(s.path), s.name, srcs, {**settings, **chain, "truth_dir": _truth_dir(s)})
            for s in studies
        }
        rows = run_on_cluster(
            _patient_task, tasks, scheduler=scheduler, workers=workers, progress=say,
            prefix="ctpmaps-evaluate",
        )  # fmt: skip
        results = [rows[s.name]["result"] for s in studies if rows[s.name]["status"] == "done"]
        failures = [
            {"patient": s.name, "error": rows[s.name].get("error")}
            for s in studies
            if rows[s.name]["status"] != "done"
        ]
        if not results:
            listed = "; ".join(f"{f['patient']}: {f['error']}" for f in failures)
            raise InputError(cohort, f"no patient could be evaluated ({listed})")
        ev = summarise_cohort(
            results, reference=reference, map_reference=map_ref, sources=[s.name for s in srcs],
            min_reference_ml=min_reference_ml,
        ).as_dict()  # fmt: skip
        ev["settings"] |= {
            "rule": rule,
            "frames": frames,
            "cohort": str(cohort),
            "sources_given": [str(s) for s in sources],
            "n_failed": len(failures),
            "training_runs": [str(t) for t in training],
        }
        ev["captions"] |= {**TRAINING_CAPTIONS, "failures": _FAILURE_CAPTION}
        ev["captions"]["patients"] = _PATIENT_CAPTION
        ev["tables"] |= trained
        ev["tables"]["failures"] = failures
        ev["tables"]["patients"] = [
            {"patient": s.name, "status": rows[s.name]["status"],
             "seconds": rows[s.name].get("seconds")}
            for s in studies
        ]  # fmt: skip
        ev = jsonable(ev)
        files = _write(tmp, ev, chain, patients_from, time.perf_counter() - t0)
    run = EvaluationRun(ev, failures, Path(out))
    run.files = {k: Path(out) / p.relative_to(tmp) for k, p in files.items()}
    log.info("evaluated %d patients (%d failed) into %s", len(results), len(failures), out)
    return run


def _write(tmp: Path, ev: dict[str, Any], chain, patients_from, seconds: float) -> dict:
    from ..report.evaluation import write_evaluation_report

    files = {name: write_csv(rows, tmp / "tables" / f"{name}.csv")
             for name, rows in ev["tables"].items()}  # fmt: skip
    files["json"] = write_json(ev, tmp / "evaluation.json")
    provenance = {"command": "ctpmaps evaluate", "chain": json.dumps(jsonable(chain), default=str)}
    files["report"] = write_evaluation_report(ev, tmp / "report.html", provenance=provenance)
    files["run_json"] = write_run_json(
        tmp,
        inputs={"splits": patients_from},
        parameters=jsonable({**ev["settings"], "chain": {k: str(v) for k, v in chain.items()}}),
        timings_s={"total": seconds},
        results={
            "n_patients": ev["settings"]["n_patients"],
            "n_failed": len(ev["tables"]["failures"]),
        },
    )
    return files
