"""``ctpmaps run`` (the whole chain) and ``ctpmaps maps`` (maps only): one call each into
`ctpmaps.pipeline.run_study`."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from ..lesion.segment import DEFAULT_CORE_RCBF
from ..perfusion.methods import METHODS
from . import options as o
from .common import StageDisplay, fmt, guarded, out

__all__ = [
    "run_command",
    "maps_command",
    "run_shown",
    "reading",
    "manual_inputs",
    "STAGE_LABELS",
    "print_maps",
    "print_caveats",
]

#: What each stage is called on screen.
STAGE_LABELS = {
    "load": "loading the study",
    "motion": "motion correction",
    "filter": "guided bilateral filter",
    "maps": "perfusion maps",
    "lesions": "core and penumbra",
    "nifti": "NIfTI, volumes, curves",
    "dicom": "DICOM parametric maps and SEG",
    "report": "HTML report",
    "write": "writing",
}


#: ``--baseline-frames`` of ``run`` and ``maps``.
BaselineFrames = Annotated[
    int | None,
    typer.Option(
        min=1,
        metavar="N",
        help="Pre-bolus frames averaged as every voxel's baseline (default: the frames "
        "before the AIF's arrival, found per study).",
        show_default=False,
    ),
]


class Rule(str, Enum):
    auto = "auto"
    tmax = "tmax"
    cbv = "cbv"


def run_shown(study, out_dir, *, api: str = "run_study", **options):
    """A `ctpmaps.pipeline` call (``run_study``, ``preprocess_study``, ``predict_study``)
    with its stages shown and its errors in one line; (result, seconds)."""
    from .. import pipeline

    t0 = time.perf_counter()
    with guarded(), StageDisplay(STAGE_LABELS) as show:
        result = getattr(pipeline, api)(study, out_dir, progress=show, **options)
    return result, time.perf_counter() - t0


#: The options of reading the study and of the outputs' privacy and place, in `reading`'s
#: order; and what a user may give instead of the automatic brain mask, input functions and
#: baseline, in `manual_inputs`' order.
READING = ("series_uid", "frame_interval", "identifiers", "anonymize", "overwrite")
MANUAL_INPUTS = ("mask", "aif_mask", "aif_csv", "vof_mask", "baseline_frames")


def reading(*values) -> dict[str, Any]:
    """Keyword arguments of the pipeline from the values of `READING`, in order."""
    return dict(zip(READING, values, strict=True))


def manual_inputs(*values) -> dict[str, Any]:
    """Keyword arguments of the pipeline from the values of `MANUAL_INPUTS`, in order."""
    return dict(zip(MANUAL_INPUTS, values, strict=True))


def run_command(
    study: o.Study,
    out_dir: o.Out,
    method: o.Method = o.MethodChoice.nlr,
    motion: o.Motion = True,
    motion_method: o.MotionMethod = o.MotionMethodChoice["gauss-newton"],
    filter_: o.Filter = True,
    sigma_spatial: o.SigmaSpatial = None,
    sigma_range: o.SigmaRange = None,
    dicom: Annotated[
        bool, typer.Option("--dicom/--no-dicom", help="DICOM Parametric Maps and SEG.")
    ] = True,
    report: Annotated[bool, typer.Option("--report/--no-report", help="HTML report.")] = True,
    rule: Annotated[
        Rule, typer.Option(help="Lesion rule: tmax (RAPID-like), cbv (maps without Tmax), auto.")
    ] = Rule.auto,
    core_rcbf: Annotated[
        float | None,
        typer.Option(
            metavar="FRACTION",
            help="Core: CBF below this fraction of the median CBF of healthy contralateral "
            "tissue (default per method: "
            + ", ".join(f"{m.name} {m.core_rcbf:g}" for m in METHODS.values())
            + f"; RAPID's {DEFAULT_CORE_RCBF:g}).",
            show_default=False,
        ),
    ] = None,
    tmax_threshold: Annotated[
        float | None,
        typer.Option(
            metavar="S",
            help="Hypoperfusion: Tmax above this, in s (default per method: "
            + ", ".join(f"{m.name} {m.hypoperfusion_tmax_s:g}" for m in METHODS.values())
            + ").",
            show_default=False,
        ),
    ] = None,
    severe_tmax: Annotated[
        float,
        typer.Option(
            metavar="S", help="Severe hypoperfusion (HIR numerator): Tmax above this, in s."
        ),
    ] = 10.0,
    ttp_delay: Annotated[
        float,
        typer.Option(
            metavar="S",
            help="cbv rule: hypoperfusion where TTP is this much later than healthy, in s.",
        ),
    ] = 4.0,
    core_rcbv: Annotated[
        float,
        typer.Option(
            metavar="FRACTION",
            help="cbv rule: core where CBV is below this fraction of the mirror side.",
        ),
    ] = 0.60,
    min_cluster_ml: Annotated[
        float, typer.Option(metavar="ML", help="Drop lesion clusters smaller than this, in mL.")
    ] = 0.5,
    median_mm: Annotated[
        float,
        typer.Option(
            metavar="MM",
            help="tmax rule: median-filter Tmax and relative CBF in-plane over about this "
            "size before the thresholds, in mm (0: none).",
        ),
    ] = 3.0,
    mask: o.Mask = None,
    aif_mask: o.AifMask = None,
    aif_csv: o.AifCsv = None,
    vof_mask: o.VofMask = None,
    baseline_frames: BaselineFrames = None,
    neighbourhood_mtt: o.NeighbourhoodMtt = False,
    weights: o.Weights = None,
    series_uid: o.SeriesUID = None,
    frame_interval: o.FrameInterval = None,
    anonymize: o.Anonymize = False,
    identifiers: o.Identifiers = False,
    overwrite: o.Overwrite = False,
) -> None:
    """The whole chain: preprocessing, maps, core and penumbra, NIfTI and DICOM outputs and
    an HTML report, with the decision numbers on screen."""
    from ..lesion import LesionCriteria

    with guarded():
        criteria = LesionCriteria(
            rule=rule.value,
            core_rcbf=core_rcbf,
            hypoperfusion_tmax_s=tmax_threshold,
            severe_tmax_s=severe_tmax,
            hypoperfusion_ttp_delay_s=ttp_delay,
            core_rcbv=core_rcbv,
            min_cluster_ml=min_cluster_ml,
            median_mm=median_mm,
        )
    result, seconds = run_shown(
        study, out_dir, method=method.value, motion=motion, motion_method=motion_method.value,
        filter=filter_, filter_sigmas=(sigma_spatial, sigma_range), criteria=criteria,
        dicom=dicom, report=report, weights=weights, neighbourhood_mtt=neighbourhood_mtt,
        **reading(series_uid, frame_interval, identifiers, anonymize, overwrite),
        **manual_inputs(mask, aif_mask, aif_csv, vof_mask, baseline_frames),
    )  # fmt: skip
    print_decision(result, study, seconds)


def maps_command(
    study: o.Study,
    out_dir: o.Out,
    method: o.Method = o.MethodChoice.nlr,
    motion: Annotated[
        bool,
        typer.Option(
            "--motion/--no-motion",
            help="Rigid motion correction first (skipped when the frames are registered already).",
        ),
    ] = True,
    motion_method: o.MotionMethod = o.MotionMethodChoice["gauss-newton"],
    filter_: Annotated[
        bool,
        typer.Option(
            "--filter/--no-filter",
            help="Guided bilateral filter first (skipped when the frames are filtered "
            "already); --no-motion --no-filter fits the frames as given.",
        ),
    ] = True,
    sigma_spatial: o.SigmaSpatial = None,
    sigma_range: o.SigmaRange = None,
    mask: o.Mask = None,
    aif_mask: o.AifMask = None,
    aif_csv: o.AifCsv = None,
    vof_mask: o.VofMask = None,
    baseline_frames: BaselineFrames = None,
    hematocrit_factor: o.HematocritFactor = 0.55 / 0.75,
    density: o.Density = 1.05,
    neighbourhood_mtt: o.NeighbourhoodMtt = False,
    weights: o.Weights = None,
    series_uid: o.SeriesUID = None,
    frame_interval: o.FrameInterval = None,
    anonymize: o.Anonymize = False,
    identifiers: o.Identifiers = False,
    overwrite: o.Overwrite = False,
) -> None:
    """Perfusion maps (CBF, CBV, MTT, TTP, Tmax, delay) of a study, without lesions."""
    result, seconds = run_shown(
        study, out_dir, method=method.value, motion=motion, motion_method=motion_method.value,
        filter=filter_, filter_sigmas=(sigma_spatial, sigma_range), lesions=False,
        dicom=False, report=False, hematocrit_factor=hematocrit_factor, density=density,
        neighbourhood_mtt=neighbourhood_mtt, weights=weights,
        **reading(series_uid, frame_interval, identifiers, anonymize, overwrite),
        **manual_inputs(mask, aif_mask, aif_csv, vof_mask, baseline_frames),
    )  # fmt: skip
    print_maps(result, f"{method.value} maps of {study} -> {out_dir}", seconds)


def print_maps(result, title: str, elapsed: float) -> None:
    """Median and quartiles of every map inside the brain; the input functions."""
    made = result.maps
    table = Table(title=f"{title} ({elapsed:.1f} s)")
    for col in ("map", "median", "IQR", "unit"):
        table.add_column(col)
    for name, arr in made.maps.as_dict().items():
        values = arr[made.brain & np.isfinite(arr)]
        if values.size:
            q = np.percentile(values, [25, 50, 75])
            table.add_row(
                name.upper(), f"{q[1]:.2f}", f"{q[0]:.2f}-{q[2]:.2f}", made.maps.units[name]
            )
    out.print(table)
    if made.aif is not None:
        vof = made.vof.source if made.vof else "none"
        out.print(
            f"AIF: {made.aif.source}, {len(made.aif.voxels)} voxels, scale {made.aif.scale:.2f}; "
            f"VOF: {vof}",
            markup=False,
        )
    print_caveats(result)


def print_caveats(result) -> None:
    """The run's quality findings, one line each."""
    for c in result.caveats:
        out.print(f"caveat ({c['severity']}): {c['message']}", markup=False)


def print_decision(result, study: Path, elapsed: float) -> None:
    """The decision numbers, the time per stage and where the report is."""
    d = result.decision
    supported = d.get("supported", True)
    title = f"{study} -> {result.out} ({elapsed:.1f} s)"
    if not supported:
        title += " - NOT FOR A TREATMENT DECISION (caveats below)"
    table = Table(title=title)
    table.add_column("lesion")
    table.add_column("value", justify="right")
    ratio = "inf" if d["mismatch_ratio_infinite"] else fmt(d["mismatch_ratio"], 2)
    verdict = fmt(d["target_mismatch"]) if supported else "withheld"
    for label, value in (
        ("core (mL)", fmt(d["core_ml"])),
        ("penumbra = mismatch (mL)", fmt(d["penumbra_ml"])),
        ("hypoperfusion (mL)", fmt(d["hypoperfusion_ml"])),
        ("severe hypoperfusion (mL)", fmt(d["severe_hypoperfusion_ml"])),
        ("mismatch ratio", ratio),
        ("hypoperfusion intensity ratio", fmt(d["hypoperfusion_intensity_ratio"], 2)),
        ("affected side", fmt(d["affected_side"])),
        ("DEFUSE-3 target mismatch", verdict),
        ("rule", d["rule"]),
    ):
        table.add_row(label, value)
    out.print(table)
    times = Table(title="time per stage")
    times.add_column("stage")
    times.add_column("s", justify="right")
    for stage, seconds in result.timings_s.items():
        if "." not in stage:
            times.add_row(stage, f"{seconds:.1f}")
    out.print(times)
    for stage, why in result.skipped.items():
        out.print(f"skipped {stage}: {why}", markup=False)
    print_caveats(result)
    if result.report is not None:
        out.print(f"report: {result.report}", markup=False)
