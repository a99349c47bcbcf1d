"""``ctpmaps phantom``: simulated CTP studies with known truth."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .common import CountDisplay, guarded, out, usage_error

__all__ = ["phantom_command", "Matrix"]


class Matrix(str, Enum):
    m64 = "64"
    m128 = "128"
    m256 = "256"
    m512 = "512"


class Preset(str, Enum):
    seed = "seed"
    shuttle = "shuttle"


def phantom_command(
    out_dir: Annotated[
        Path,
        typer.Argument(metavar="OUT", help="Cohort folder (created).", show_default=False),
    ],
    patients: Annotated[int, typer.Option(help="Number of patients.", min=1)] = 1,
    seed: Annotated[int, typer.Option(help="Cohort seed (reproducible).")] = 0,
    matrix: Annotated[Matrix, typer.Option(help="In-plane matrix size.")] = Matrix.m512,
    preset: Annotated[Preset, typer.Option(help="Acquisition protocol.")] = Preset.seed,
    fmt: Annotated[
        list[str],
        typer.Option("--format", help="nifti, dicom and/or unitobrain (repeat the option)."),
    ] = ["nifti"],  # noqa: B006
    mas: Annotated[
        float,
        typer.Option(metavar="MAS", help="Tube current-time product; noise scales as 1/sqrt(mAs)."),
    ] = 150.0,
    noise_sigma: Annotated[
        float, typer.Option(metavar="HU", help="Noise SD at 150 mAs, in HU.")
    ] = 12.0,
    motion_mm: Annotated[
        float, typer.Option(metavar="MM", help="Largest head translation, in mm.")
    ] = 0.0,
    motion_deg: Annotated[
        float, typer.Option(metavar="DEG", help="Largest head rotation, in degrees.")
    ] = 0.0,
    normal_fraction: Annotated[
        float, typer.Option(help="Share of normal-perfusion patients.", min=0.0, max=1.0)
    ] = 0.2,
    workers: Annotated[int | None, typer.Option(help="Processes (default: all cores).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing patient folders.")] = False,
) -> None:
    """Simulate phantom CTP studies with known perfusion (truth written beside each)."""
    from ..phantom import PhantomConfig, acquisition_preset
    from ..phantom.write import FORMATS, write_cohort
    from ..pipeline import seed_filter

    formats = [f for item in fmt for f in item.split(",") if f]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        usage_error(f"--format: expected some of {', '.join(FORMATS)}, got {', '.join(bad)}")
    acq = acquisition_preset(
        preset.value,
        matrix=int(matrix.value),
        exposure_mas=mas,
        noise_sigma_hu_at_150mas=noise_sigma,
    )
    cfg = PhantomConfig(
        acquisition=acq, motion_mm=motion_mm, motion_deg=motion_deg, normal_fraction=normal_fraction
    )
    t0 = time.perf_counter()
    with guarded():
        with CountDisplay("simulating patients", patients) as shown:
            results = write_cohort(
                out_dir,
                n_patients=patients,
                seed=seed,
                config=cfg,
                formats=formats,
                workers=workers,
                overwrite=overwrite,
                progress=lambda r: shown.advance(r["patient_id"]),
                filter_frames=seed_filter if "unitobrain" in formats else None,
            )
    table = Table(
        title=f"{patients} phantom patient(s) in {out_dir} ({time.perf_counter() - t0:.1f} s)"
    )
    for col in ("patient", "residue", "side", "core mL", "hypoperf. mL", "penumbra mL"):
        table.add_column(col)
    for r in results:
        v = r["volumes_ml"]
        table.add_row(
            r["patient_id"],
            r["residue_shape"],
            r["lesion_side"] or "normal",
            f"{v['core']:.1f}",
            f"{v['hypoperfusion']:.1f}",
            f"{v['penumbra']:.1f}",
        )
    out.print(table)
