"""The one writer of the chain's outputs: what files a result becomes, in which format.

Every command writes through here into a staging folder (`ctpmaps.io.atomic.atomic_dir`),
which is moved into place only when everything is written. The formats themselves belong
to ``io/`` (NIfTI, DICOM, CSV, JSON) and ``report/`` (figures, HTML).

Files of a run (``ctpmaps run``; ``maps`` and ``predict`` write the maps part):

=========================================  =============================================
``cbf cbv mtt ttp tmax delay .nii.gz``     maps in physical units (units in ``descrip``)
``brain_mask.nii.gz``                      the voxels fitted
``fit_at_bound.nii.gz``                    box NLR fits that ended on a bound (not trusted)
``core penumbra hypoperfusion [severe_hypoperfusion] .nii.gz``, ``lesions.nii.gz``,
``hemispheres.nii.gz``, ``volumes.json``, ``volumes.csv``           lesions (``run``)
``aif.csv vof.csv aif_voxels.csv vof_voxels.csv input_functions.png``  input functions
``motion.csv motion.png``                  head motion, when corrected
``dicom/``                                 Parametric Maps and SEG (``run --dicom``)
``report.html``                            the report (``run --report``)
``run.json``                               how it was made, what it found, its caveats
=========================================  =============================================
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..clock import Stopwatch
from ..io.curves import write_input_function_csv
from ..io.lesions import write_lesion_outputs
from ..io.nifti import write_nifti_map, write_nifti_study
from ..io.runinfo import write_run_json
from ..preprocess.unenhanced import unenhanced
from .result import StudyResult

__all__ = ["MAIN_FILES", "write_outputs", "write_preprocessed"]

#: Main output files by name (`StudyResult.files`).
MAIN_FILES = {
    "report": "report.html",
    "volumes_json": "volumes.json",
    "volumes_csv": "volumes.csv",
    "run_json": "run.json",
    "dicom": "dicom",
    "lesions": "lesions.nii.gz",
    "cbf": "cbf.nii.gz",
    "ctp": "ctp.nii.gz",
}


def _present(maps) -> dict[str, np.ndarray]:
    """Maps that hold values (a U-Net set may lack some)."""
    return {k: v for k, v in maps.as_dict().items() if np.isfinite(v).any()}


def write_maps(folder: Path, result: StudyResult) -> None:
    """The maps (NIfTI, physical units), the brain mask and the input functions."""
    made, affine = result.maps, result.study.affine
    for name, arr in _present(made.maps).items():
        write_nifti_map(
            arr,
            affine,
            folder / f"{name}.nii.gz",
            units=made.maps.units[name],
            description=f"{name.upper()} {made.maps.method}",
        )
    write_nifti_map(made.brain, affine, folder / "brain_mask.nii.gz", description="brain mask")
    for name, mask in made.flags.items():
        write_nifti_map(mask, affine, folder / f"{name}.nii.gz", description=name.replace("_", " "))
    if made.aif is not None:
        from ..report.figures import input_functions_figure, write_png

        for curve in (made.aif, made.vof):
            if curve is not None:
                write_input_function_csv(folder, curve)
        write_png(folder / "input_functions.png", input_functions_figure(made.aif, made.vof))


def _write_motion(folder: Path, result: StudyResult) -> None:
    if result.motion is not None:
        from ..io.motion import write_motion_csv
        from ..report.figures import motion_figure, write_png

        write_motion_csv(result.motion, folder)
        write_png(folder / "motion.png", motion_figure(result.motion))


def _export_dicom(folder: Path, result: StudyResult, anonymize: bool) -> dict[str, Any]:
    from ..io.dicom import export_dicom

    made, lesions = result.maps, result.lesions
    info = export_dicom(
        _present(made.maps),
        {"core": lesions.core, "penumbra": lesions.penumbra},
        result.study,
        folder / "dicom",
        method=made.maps.method,
        lesion_description=f"{lesions.rule} rule (ctpmaps {__version__})",
        image=unenhanced(result.study.frames, made.baseline_frames),
        anonymize=anonymize,
    )
    info["files"] = {k: str(Path(v).relative_to(folder)) for k, v in info["files"].items()}
    return info


def settings_rows(result: StudyResult) -> list[tuple[str, str]]:
    """How the maps and lesions were made, one human-readable row each (the report)."""
    from ..perfusion.methods import METHODS

    p, made = result.parameters, result.maps
    mp = made.parameters
    method = METHODS[p["method"]]
    rows = [("method", f"{method.name}: {method.label}")]
    motion = p.get("motion")
    rows.append(
        ("motion correction", "off" if not motion else
         f"{motion['frames_registered']} frames registered, largest "
         f"{motion['max_translation_mm']:.2f} mm / {motion['max_rotation_deg']:.2f} deg")
    )  # fmt: skip
    sig = p["filter_sigmas"]
    rows.append(
        ("bilateral filter", f"{sig['spatial_mm']:g} mm, {sig['range_hu']:g} HU" if p["filter"]
         else result.skipped.get("filter", "off"))
    )  # fmt: skip
    if "baseline_frames" in mp:
        rows.append(("pre-bolus frames", str(mp["baseline_frames"])))
    if mp.get("method") == "nlr" and "neighbourhood_mtt" in mp:
        own = "each voxel's own (the neighbourhood's shape where the box fits worse)"
        pooled = "its neighbourhood's where the voxel's curve does not reject them"
        pooled += " (--neighbourhood-mtt)"
        rows.append(("MTT and residue shape", pooled if mp["neighbourhood_mtt"] else own))
    if mp.get("tmax_method", mp.get("method")) != mp.get("method"):
        rows.append(("Tmax", f"from the {mp['tmax_method']} residue"))
    if made.aif is not None:
        rows.append(("AIF", f"{mp['aif_source']}, {mp['aif_voxels']} voxels, "
                            f"{100 * mp.get('aif_tissue_fraction', 0.0):.0f} % tissue removed, "
                            f"partial-volume scale {mp['aif_scale']:.2f}"))  # fmt: skip
        rows.append(("VOF", str(mp["vof_source"] or "none (manual AIF used as given)")))
        rows.append(("hematocrit factor, density", f"{mp['hematocrit_factor']:.3f}, "
                                                   f"{mp['density']:g} g/mL"))  # fmt: skip
    q = mp.get("quality", {})
    if q:
        rows.append(("noise of the frames", f"{q['noise_hu']:.1f} HU"))
        for key, value in q.items():
            if key.endswith("_fraction"):
                rows.append(
                    (key.removesuffix("_fraction").replace("_", " "), f"{100 * value:.1f} %")
                )
    if result.lesions is not None:
        rows += _rule_rows(result.lesions)
    return rows


def _rule_rows(lesions) -> list[tuple[str, str]]:
    c, ref = lesions.criteria, lesions.reference
    if lesions.rule == "tmax":
        refs = ", ".join(
            f"{side} {ref[f'reference_for_{side}']:.1f}" for side in ("right", "left")
            if f"reference_for_{side}" in ref
        )  # fmt: skip
        return [
            ("lesion rule", "Tmax (RAPID-like)"),
            ("hypoperfusion", f"Tmax > {c.hypoperfusion_tmax_s:g} s"),
            ("severe hypoperfusion", f"Tmax > {c.severe_tmax_s:g} s"),
            (
                "core",
                f"CBF < {c.core_rcbf:g} x the {c.reference_statistic} CBF of healthy "
                f"contralateral tissue (Tmax < {c.healthy_tmax_s:g} s)",
            ),  # fmt: skip
            ("reference CBF (mL/100 g/min)", refs),
            ("smoothing before the thresholds", ref.get("median", "none")),
            ("smallest cluster kept", f"{c.min_cluster_ml:g} mL"),
        ]
    hypo = (
        f"TTP > {c.hypoperfusion_ttp_delay_s:g} s later than healthy tissue"
        if c.hypoperfusion_on == "ttp"
        else f"CBF < {c.hypoperfusion_rcbf:g} x mirror side"
    )
    core = (
        f"CBV < {c.core_cbv_ml:g} mL/100 g"
        if c.core_cbv_ml is not None
        else f"CBV < {c.core_rcbv:g} x mirror side"
    )
    return [
        ("lesion rule", "CBV/TTP (maps without Tmax)"),
        ("hypoperfusion", hypo),
        ("core", core),
        ("smallest cluster kept", f"{c.min_cluster_ml:g} mL"),
    ]


def _report(path: Path, result: StudyResult) -> None:
    from ..report.build import study_report

    study_report(
        path,
        study=result.study,
        maps=result.maps.maps,
        lesions=result.lesions,
        decision=result.decision,
        study_summary=result.summary,
        settings=settings_rows(result),
        brain=result.maps.brain,
        aif=result.maps.aif,
        vof=result.maps.vof,
        motion=result.motion,
        problems=result.problems,
        caveats=result.caveats,
        baseline_frames=result.maps.baseline_frames,
        provenance={
            "method": result.parameters["method"],
            "timings_s": {k: round(v, 2) for k, v in result.timings_s.items()},
            "inputs": {"study": result.summary.get("path")},
        },
    )


def _maps_summary(result: StudyResult) -> dict[str, Any]:
    """Median and quartiles of every map inside the brain, with its unit."""
    made = result.maps
    out = {}
    for name, arr in _present(made.maps).items():
        values = arr[made.brain & np.isfinite(arr)]
        q = np.percentile(values, [25, 50, 75]) if values.size else [np.nan] * 3
        out[name] = {
            "median": float(q[1]),
            "q1": float(q[0]),
            "q3": float(q[2]),
            "unit": made.maps.units[name],
        }
    return out


def write_outputs(
    folder: Path,
    result: StudyResult,
    *,
    clock: Stopwatch,
    dicom: bool,
    report: bool,
    inputs: dict[str, Any],
    anonymize: bool = False,
) -> None:
    """Write every output of a run (maps, lesions, curves, motion, DICOM, report, run.json)
    into ``folder``, timing the stages ``nifti``, ``dicom`` and ``report``.

    The NIfTI files are written on a second thread while the DICOM series are made (they
    share no file and no state; gzip compresses without the GIL): about a second less at
    512 x 512 x 8, and the two stages' times then overlap.
    """
    skipped = result.skipped
    with ThreadPoolExecutor(1) as pool:
        nifti = pool.submit(_write_nifti, folder, result, clock)
        if dicom and result.lesions is not None:
            with clock.stage("dicom"):
                result.parameters["dicom"] = _export_dicom(folder, result, anonymize)
        else:
            skipped.setdefault("dicom", "switched off")
        nifti.result()
    if report and result.lesions is not None:
        result.timings_s = dict(clock.timings)
        with clock.stage("report"):
            _report(folder / "report.html", result)
    else:
        skipped.setdefault("report", "switched off")
    timings = dict(clock.timings)
    timings["total"] = clock.total()
    timings.update({f"maps.{k}": v for k, v in result.maps.timings_s.items()})
    result.timings_s = timings
    results: dict[str, Any] = {"maps": _maps_summary(result), "caveats": result.caveats}
    if result.lesions is not None:
        results |= {"decision": result.decision, "volumes_ml": result.lesions.volumes_ml()}
    write_run_json(
        folder, inputs=inputs, parameters=result.parameters, timings_s=timings, results=results
    )


def _write_nifti(folder: Path, result: StudyResult, clock: Stopwatch) -> None:
    """The maps, lesions and motion report: the stage ``nifti``."""
    with clock.stage("nifti"):
        write_maps(folder, result)
        if result.lesions is not None:
            write_lesion_outputs(
                folder,
                result.lesions,
                result.decision,
                result.midline,
                result.study.affine,
                patient_id=result.summary.get("patient_id"),
            )
        _write_motion(folder, result)


def write_preprocessed(
    folder: Path,
    result: StudyResult,
    *,
    steps: str,
    inputs,
    clock: Stopwatch,
    anonymize: bool = False,
) -> None:
    """The preprocessed frames (NIfTI + sidecar; a derived DICOM series when the input was
    DICOM), the motion report and run.json; the stage ``write`` is timed."""
    study = result.study
    with clock.stage("write"):
        write_nifti_study(
            study, folder / "ctp.nii.gz", extra={"Preprocessing": steps}, anonymize=anonymize
        )
        if study.source == "dicom":
            from ..io.dicom import write_dicom_study

            desc = f"{study.metadata.get('series_description') or 'CT perfusion'} {steps}"
            write_dicom_study(
                study, folder / "dicom", series_description=desc[:64], anonymize=anonymize
            )
        _write_motion(folder, result)
    result.timings_s = dict(clock.timings)
    moved: dict[str, Any] = {}
    m = result.motion
    if m is not None:
        moved = {
            "flagged_frames": np.nonzero(m.flagged)[0].tolist(),
            "max_translation_mm": float(np.abs(m.translations_mm).max()),
            "max_rotation_deg": float(np.abs(m.rotations_deg).max()),
        }
    write_run_json(
        folder,
        inputs=inputs,
        parameters=result.parameters,
        timings_s=result.timings_s,
        results=moved,
    )
