"""``ctpmaps preprocess``: motion correction and the guided bilateral filter, on their own.

Registered on `ctpmaps.cli.app`. Writes the preprocessed study as a 4D NIfTI with its
FrameTimes sidecar (and a DICOM series when the input was DICOM), the motion report
(``motion.csv``, ``motion.png``) and ``run.json``, all or nothing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from .cli import _fail, _fail_usage, app, console, out_console
from .errors import CtpmapsError


@app.command()
def preprocess(
    study: Annotated[
        Path, typer.Argument(help="NIfTI file, DICOM folder or UniToBrain patient folder.")
    ],
    out: Annotated[Path, typer.Argument(help="Output folder (created).")],
    motion: Annotated[
        bool, typer.Option("--motion/--no-motion", help="Rigid motion correction.")
    ] = True,
    filter_: Annotated[
        bool, typer.Option("--filter/--no-filter", help="Guided 3D bilateral filter.")
    ] = True,
    sigma_spatial: Annotated[
        float | None, typer.Option(help="Filter spatial sigma, mm [default: 2; the seed's: 3].")
    ] = None,
    sigma_range: Annotated[
        float | None, typer.Option(help="Filter range sigma, HU [default: 3; the seed's: 20].")
    ] = None,
    flag_mm: Annotated[float, typer.Option(help="Flag frames moving more than this, mm.")] = 1.0,
    flag_deg: Annotated[
        float, typer.Option(help="Flag frames rotating more than this, deg.")
    ] = 1.0,
    series_uid: Annotated[str | None, typer.Option(help="DICOM series to read.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
) -> None:
    """Rigid motion correction (elastix, as the seed) and the guided bilateral filter."""
    from .io import load_study, write_nifti_study
    from .io.atomic import atomic_dir
    from .io.runinfo import write_run_json
    from .preprocess import (
        SIGMA_RANGE_HU,
        SIGMA_SPATIAL_MM,
        filter_study,
        motion_report,
        register_study,
    )

    sigma_spatial = SIGMA_SPATIAL_MM if sigma_spatial is None else sigma_spatial
    sigma_range = SIGMA_RANGE_HU if sigma_range is None else sigma_range
    if out.exists() and not overwrite:
        _fail_usage(f"{out}: already exists (use --overwrite to replace it)")
    if not (motion or filter_):
        _fail_usage("--no-motion and --no-filter together leave nothing to do")
    timings: dict[str, float] = {}
    try:
        with console.status("loading") as status:
            t0 = time.perf_counter()
            s = load_study(study, series_uid=series_uid)
            timings["load"] = time.perf_counter() - t0
            result = None
            if motion:
                status.update("motion correction")
                t0 = time.perf_counter()
                s, result = register_study(s, flag_mm=flag_mm, flag_deg=flag_deg)
                timings["motion"] = time.perf_counter() - t0
            if filter_:
                status.update("guided bilateral filter")
                t0 = time.perf_counter()
                s = filter_study(s, sigma_spatial_mm=sigma_spatial, sigma_range_hu=sigma_range)
                timings["filter"] = time.perf_counter() - t0
            status.update("writing")
            t0 = time.perf_counter()
            with atomic_dir(out, overwrite=overwrite) as tmp:
                steps = ("registered" if motion else "") + ("+filtered" if filter_ else "")
                write_nifti_study(s, tmp / "ctp.nii.gz", extra={"Preprocessing": steps})
                if s.source == "dicom":
                    from .io.dicom import write_dicom_study

                    desc = f"{s.metadata.get('series_description') or 'CT perfusion'} {steps}"
                    write_dicom_study(s, tmp / "dicom", series_description=desc[:64])
                if result is not None:
                    motion_report(result, tmp)
                timings["write"] = time.perf_counter() - t0
                params = {
                    "motion": motion,
                    "filter": filter_,
                    "sigma_spatial_mm": sigma_spatial,
                    "sigma_range_hu": sigma_range,
                    "flag_mm": flag_mm,
                    "flag_deg": flag_deg,
                }
                moved = {}
                if result is not None:
                    moved = {
                        "flagged_frames": np.nonzero(result.flagged)[0].tolist(),
                        "max_translation_mm": float(np.abs(result.translations_mm).max()),
                        "max_rotation_deg": float(np.abs(result.rotations_deg).max()),
                    }
                write_run_json(
                    tmp,
                    inputs={"study": study},
                    parameters=params,
                    timings_s=timings,
                    results=moved,
                )
    except CtpmapsError as exc:
        _fail(exc)
    table = Table(title=f"preprocessed {study} → {out}")
    table.add_column("step")
    table.add_column("s", justify="right")
    for k, v in timings.items():
        table.add_row(k, f"{v:.1f}")
    out_console.print(table)
    if result is not None:
        n = int(result.flagged.sum())
        out_console.print(
            f"motion: largest translation {np.abs(result.translations_mm).max():.2f} mm, "
            f"rotation {np.abs(result.rotations_deg).max():.2f}°; {n} frame(s) flagged "
            f"beyond {flag_mm} mm / {flag_deg}° (motion.csv, motion.png)"
        )
