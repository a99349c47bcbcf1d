"""``ctpmaps batch``: the whole chain over every study of a cohort, on dask.distributed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from . import options as o
from .common import CountDisplay, guarded, out

__all__ = ["batch_command"]


def batch_command(
    cohort: Annotated[
        Path,
        typer.Argument(
            metavar="COHORT",
            help="Cohort folder: NIfTI files, or one folder per study (DICOM, ctp.nii.gz, "
            "UniToBrain).",
            show_default=False,
        ),
    ],
    out_dir: Annotated[
        Path,
        typer.Argument(
            metavar="OUT",
            help="Batch folder: new, empty, or an earlier batch's (complete studies skipped).",
            show_default=False,
        ),
    ],
    scheduler: o.Scheduler = None,
    workers: o.Workers = 1,
    method: o.Method = o.MethodChoice.nlr,
    motion: o.Motion = True,
    motion_method: o.MotionMethod = o.MotionMethodChoice["gauss-newton"],
    filter_: o.Filter = True,
    dicom: Annotated[
        bool, typer.Option("--dicom/--no-dicom", help="DICOM Parametric Maps and SEG.")
    ] = True,
    report: Annotated[bool, typer.Option("--report/--no-report", help="HTML reports.")] = True,
    weights: o.Weights = None,
    anonymize: o.Anonymize = False,
) -> None:
    """The whole chain on every study of a cohort (one study per worker at a time; rerun to
    resume), with a cohort summary (CSV, JSON, HTML)."""
    from ..io.cohort import find_studies
    from ..pipeline.batch import run_batch

    t0 = time.perf_counter()
    with guarded():
        n = len(find_studies(cohort))
        with CountDisplay("studies", n) as shown:
            result = run_batch(
                cohort,
                out_dir,
                scheduler=scheduler,
                workers=workers,
                progress=lambda name, row: shown.advance(f"{name}: {row['status']}"),
                method=method.value,
                motion=motion,
                motion_method=motion_method.value,
                filter=filter_,
                dicom=dicom,
                report=report,
                weights=weights,
                anonymize=anonymize,
            )
    done = sum(r["status"] == "done" for r in result.rows)
    skipped = sum(r["status"].startswith("skipped") for r in result.rows)
    table = Table(title=f"batch of {cohort} -> {out_dir} ({time.perf_counter() - t0:.0f} s)")
    for col in ("done", "skipped (complete)", "failed"):
        table.add_column(col, justify="right")
    table.add_row(str(done), str(skipped), str(len(result.failed)))
    out.print(table)
    for r in result.failed:
        out.print(f"failed {r['study']}: {r['error']}", markup=False)
    out.print(f"summary: {result.files['html']}", markup=False)
