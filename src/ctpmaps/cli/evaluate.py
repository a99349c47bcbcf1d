"""``ctpmaps evaluate``: the seed study's evaluation of sources of maps and lesions over a
cohort (Tables 1 and 2, Figures 4 to 7), one call into `ctpmaps.pipeline.evaluate`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from . import options as o
from .common import CountDisplay, fmt, guarded, out

__all__ = ["evaluate_command"]


def _patients(value: str | None) -> list[str] | None:
    return [p.strip() for p in value.split(",") if p.strip()] if value else None


def evaluate_command(
    cohort: Annotated[
        Path,
        typer.Argument(
            metavar="COHORT",
            help="Cohort folder (a phantom cohort for the truth source).",
            show_default=False,
        ),
    ],
    out_dir: o.Out,
    source: Annotated[
        list[str],
        typer.Option(
            "--source",
            "-s",
            metavar="SOURCE",
            help="A method (nlr, ssvd, bsvd, osvd, cnn), truth (the phantom's), truth-rule (its "
            "true maps segmented by the lesion rule), or "
            "NAME=FOLDER (a rater's segmentations, docs/evaluation.md); repeat, two or more.",
            show_default=False,
        ),
    ],
    reference: Annotated[
        str, typer.Option(metavar="SOURCE", help="Reference of the lesion masks.")
    ] = "truth",
    map_reference: o.unset_option(
        str, "SOURCE", "Reference of the maps (default: truth when a source, else --reference)."
    ) = None,
    patients_from: Annotated[
        Path | None,
        typer.Option(
            metavar="SPLITS", help="Evaluate the test patients of a ctpmaps train splits.json."
        ),
    ] = None,
    patients: o.unset_option(str, "A,B", "Evaluate these patients only.") = None,
    training: o.unset_option(
        list[Path],
        "RUN",
        "A ctpmaps train run folder (Table 1, Figure 4); repeat for several maps.",
        "--training",
    ) = None,
    frames: Annotated[
        int | None,
        typer.Option(
            metavar="T",
            min=2,
            help="Evaluate every method on T frames by uniform stride (fewer frames, less dose).",
            show_default=False,
        ),
    ] = None,
    rule: o.unset_option(
        str,
        "tmax|cbv",
        "Lesion rule of every method (default: tmax, or cbv when a method has no Tmax).",
    ) = None,
    min_reference_ml: Annotated[
        float,
        typer.Option(
            metavar="ML",
            help="Leave a patient out of a lesion's Dice when the reference's lesion is smaller.",
        ),
    ] = 1.0,
    weights: o.Weights = None,
    device: o.Device = None,
    motion: o.Motion = True,
    filter_: o.Filter = True,
    workers: o.Workers = 1,
    scheduler: o.Scheduler = None,
    overwrite: o.Overwrite = False,
) -> None:
    """Compare sources of perfusion maps and lesions over a cohort: map errors, Dice, volume
    agreement (Pearson, Bland-Altman, ICC, Friedman), CSV/JSON tables and one HTML page."""
    from ..io.cohort import find_studies
    from ..pipeline.evaluate import evaluate_sources, select_patients

    t0 = time.perf_counter()
    with guarded():
        find_studies(cohort)
        n = len(select_patients(cohort, patients=_patients(patients), patients_from=patients_from))
        with CountDisplay("patients", n) as shown:
            run = evaluate_sources(
                cohort,
                out_dir,
                sources=source,
                reference=reference,
                map_reference=map_reference,
                patients=_patients(patients),
                patients_from=patients_from,
                training=training or (),
                frames=frames,
                rule=rule,
                min_reference_ml=min_reference_ml,
                workers=workers,
                scheduler=scheduler,
                overwrite=overwrite,
                progress=lambda name, row: shown.advance(f"{name}: {row['status']}"),
                weights=weights,
                device=device,
                motion=motion,
                filter=filter_,
            )
    table = Table(title=f"Dice against {reference} ({time.perf_counter() - t0:.0f} s)")
    for col in ("lesion", "pair", "n", "mean", "SD"):
        table.add_column(col)
    for r in run.tables["dice"]:
        pair = f"{r['source_a']} vs {r['source_b']}"
        table.add_row(r["lesion"], pair, str(r["n"]), fmt(r["dice_mean"], 3), fmt(r["dice_sd"], 3))
    out.print(table)
    for r in run.failures:
        out.print(f"failed {r['patient']}: {r['error']}", markup=False)
    out.print(f"report: {run.files['report']}", markup=False)
