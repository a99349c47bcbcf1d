"""Command line of the clinical outputs (``ctpmaps run``): registered on `ctpmaps.cli.app`."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from .cli import _fail, app, console, out_console
from .errors import CtpmapsError


class RunMethod(str, Enum):
    nlr = "nlr"
    ssvd = "ssvd"
    bsvd = "bsvd"
    osvd = "osvd"
    cnn = "cnn"


class Rule(str, Enum):
    auto = "auto"
    tmax = "tmax"
    cbv = "cbv"


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
}


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


@app.command("run")
def run_cmd(
    study: Annotated[
        Path, typer.Argument(help="NIfTI file, DICOM folder or UniToBrain patient folder.")
    ],
    out: Annotated[Path, typer.Argument(help="Output folder (created).")],
    method: Annotated[
        RunMethod, typer.Option(help="Deconvolution method, or cnn (the U-Net).")
    ] = RunMethod.nlr,
    motion: Annotated[bool, typer.Option("--motion/--no-motion", help="Motion correction.")] = True,
    filter_: Annotated[
        bool, typer.Option("--filter/--no-filter", help="Guided bilateral filter.")
    ] = True,
    sigma_spatial: Annotated[
        float | None,
        typer.Option(help="Filter spatial sigma, mm [default: 2, cnn 3; the seed's: 3]."),
    ] = None,
    sigma_range: Annotated[
        float | None,
        typer.Option(help="Filter range sigma, HU [default: 3, cnn 20; the seed's: 20]."),
    ] = None,
    dicom: Annotated[
        bool, typer.Option("--dicom/--no-dicom", help="DICOM Parametric Maps and SEG.")
    ] = True,
    report: Annotated[bool, typer.Option("--report/--no-report", help="HTML report.")] = True,
    rule: Annotated[
        Rule, typer.Option(help="Lesion rule: tmax (RAPID-like), cbv (no Tmax), auto.")
    ] = Rule.auto,
    core_rcbf: Annotated[
        float | None,
        typer.Option(
            help="Core: CBF below this fraction of the healthy contralateral mean "
            "[default: per method, 0.30 for the SVD family, 0.20 for nlr and cnn]."
        ),
    ] = None,
    tmax_threshold: Annotated[float, typer.Option(help="Hypoperfusion: Tmax above this, s.")] = 6.0,
    severe_tmax: Annotated[
        float, typer.Option(help="Severe hypoperfusion (HIR numerator): Tmax above this, s.")
    ] = 10.0,
    ttp_delay: Annotated[
        float, typer.Option(help="cbv rule: hypoperfusion where TTP is later than this, s.")
    ] = 4.0,
    core_rcbv: Annotated[
        float, typer.Option(help="cbv rule: core where CBV is below this fraction (mirror).")
    ] = 0.60,
    min_cluster_ml: Annotated[
        float, typer.Option(help="Drop lesion clusters smaller than this, mL.")
    ] = 0.5,
    mask: Annotated[
        Path | None, typer.Option(help="Brain mask (NIfTI) instead of the automatic one.")
    ] = None,
    aif_mask: Annotated[Path | None, typer.Option(help="Arterial voxels (NIfTI mask).")] = None,
    aif_csv: Annotated[Path | None, typer.Option(help="AIF as 'time_s, hu' rows.")] = None,
    vof_mask: Annotated[Path | None, typer.Option(help="Venous voxels (NIfTI mask).")] = None,
    weights: Annotated[Path | None, typer.Option(help="U-Net weights for --method cnn.")] = None,
    series_uid: Annotated[str | None, typer.Option(help="DICOM series to read.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
) -> None:
    """The whole chain: preprocessing, maps, core and penumbra, NIfTI and DICOM outputs and
    an HTML report, with the decision numbers (mismatch, HIR, DEFUSE-3) on screen."""
    from .clinical import filter_sigmas_for, run_study
    from .lesion import LesionCriteria

    sigmas = filter_sigmas_for(method.value)
    sigmas = (
        sigmas[0] if sigma_spatial is None else sigma_spatial,
        sigmas[1] if sigma_range is None else sigma_range,
    )

    t0 = time.perf_counter()
    try:
        criteria = LesionCriteria(
            rule=rule.value,
            core_rcbf=core_rcbf,
            hypoperfusion_tmax_s=tmax_threshold,
            severe_tmax_s=severe_tmax,
            hypoperfusion_ttp_delay_s=ttp_delay,
            core_rcbv=core_rcbv,
            min_cluster_ml=min_cluster_ml,
        )
        with Progress(
            SpinnerColumn(finished_text="[green]✓"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
        ) as prog:
            tasks: dict[str, int] = {}

            def show(stage: str, seconds: float | None) -> None:
                label = STAGE_LABELS.get(stage, stage)
                if seconds is None:
                    tasks[stage] = prog.add_task(label, total=1)
                else:
                    prog.update(tasks[stage], completed=1, description=f"{label} ({seconds:.1f} s)")

            result = run_study(
                study,
                out,
                method=method.value,
                motion=motion,
                filter=filter_,
                filter_sigmas=sigmas,
                criteria=criteria,
                dicom=dicom,
                report=report,
                overwrite=overwrite,
                series_uid=series_uid,
                mask=mask,
                aif_mask=aif_mask,
                aif_csv=aif_csv,
                vof_mask=vof_mask,
                weights=weights,
                progress=show,
            )
    except CtpmapsError as exc:
        _fail(exc)
    _summary(result, study, time.perf_counter() - t0)


def _summary(result, study: Path, elapsed: float) -> None:
    d = result.decision
    table = Table(title=f"{study} → {result.out} ({elapsed:.1f} s)")
    table.add_column("lesion")
    table.add_column("value", justify="right")
    ratio = "inf" if d["mismatch_ratio_infinite"] else _fmt(d["mismatch_ratio"], 2)
    for label, value in (
        ("core (mL)", _fmt(d["core_ml"])),
        ("penumbra = mismatch (mL)", _fmt(d["penumbra_ml"])),
        ("hypoperfusion (mL)", _fmt(d["hypoperfusion_ml"])),
        ("severe hypoperfusion (mL)", _fmt(d["severe_hypoperfusion_ml"])),
        ("mismatch ratio", ratio),
        ("hypoperfusion intensity ratio", _fmt(d["hypoperfusion_intensity_ratio"], 2)),
        ("affected side", _fmt(d["affected_side"])),
        ("DEFUSE-3 target mismatch", _fmt(d["target_mismatch"])),
        ("rule", d["rule"]),
    ):
        table.add_row(label, value)
    out_console.print(table)
    times = Table(title="time per stage")
    times.add_column("stage")
    times.add_column("s", justify="right")
    for stage, seconds in result.timings_s.items():
        if "." not in stage:
            times.add_row(stage, f"{seconds:.1f}")
    out_console.print(times)
    for stage, why in result.skipped.items():
        out_console.print(f"skipped {stage}: {why}")
    if result.report is not None:
        out_console.print(f"report: {result.report}")
