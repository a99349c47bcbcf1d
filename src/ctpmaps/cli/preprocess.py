"""``ctpmaps preprocess``: motion correction and the guided bilateral filter on their own."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from ..preprocess.bilateral import SIGMA_RANGE_HU, SIGMA_SPATIAL_MM
from . import options as o
from .common import out, usage_error
from .run import reading, run_shown

__all__ = ["preprocess_command"]


def preprocess_command(
    study: o.Study,
    out_dir: o.Out,
    motion: o.Motion = True,
    motion_method: o.MotionMethod = o.MotionMethodChoice["gauss-newton"],
    filter_: o.Filter = True,
    sigma_spatial: Annotated[
        float, typer.Option(metavar="MM", help="Filter spatial sigma in mm (the seed's: 3).")
    ] = SIGMA_SPATIAL_MM,
    sigma_range: Annotated[
        float, typer.Option(metavar="HU", help="Filter range sigma in HU (the seed's: 20).")
    ] = SIGMA_RANGE_HU,
    flag_mm: Annotated[
        float, typer.Option(metavar="MM", help="Flag frames moving more than this, in mm.")
    ] = 1.0,
    flag_deg: Annotated[
        float, typer.Option(metavar="DEG", help="Flag frames rotating more than this, in degrees.")
    ] = 1.0,
    series_uid: o.SeriesUID = None,
    frame_interval: o.FrameInterval = None,
    anonymize: o.Anonymize = False,
    identifiers: o.Identifiers = False,
    overwrite: o.Overwrite = False,
) -> None:
    """Rigid motion correction and the guided bilateral filter (the seed's preprocessing):
    the preprocessed frames as NIfTI (and DICOM when the input was DICOM), the motion
    report and run.json."""
    if not (motion or filter_):
        usage_error("--no-motion and --no-filter together leave nothing to do")
    result, seconds = run_shown(
        study, out_dir, api="preprocess_study", motion=motion,
        motion_method=motion_method.value, filter=filter_,
        filter_sigmas=(sigma_spatial, sigma_range), flag_mm=flag_mm, flag_deg=flag_deg,
        **reading(series_uid, frame_interval, identifiers, anonymize, overwrite),
    )  # fmt: skip
    table = Table(title=f"preprocessed {study} -> {out_dir} ({seconds:.1f} s)")
    table.add_column("step")
    table.add_column("s", justify="right")
    for k, v in result.timings_s.items():
        table.add_row(k, f"{v:.1f}")
    out.print(table)
    m = result.motion
    if m is not None:
        out.print(
            f"motion: largest translation {np.abs(m.translations_mm).max():.2f} mm, "
            f"rotation {np.abs(m.rotations_deg).max():.2f} deg; {int(m.flagged.sum())} frame(s) "
            f"flagged beyond {flag_mm} mm / {flag_deg} deg (motion.csv, motion.png)",
            markup=False,
        )
