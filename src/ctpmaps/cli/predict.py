"""``ctpmaps predict``: perfusion maps from the U-Net alone (no AIF)."""

from __future__ import annotations

from typing import Annotated

import typer

from . import options as o
from .common import usage_error
from .run import print_maps, run_shown

__all__ = ["predict_command"]


def predict_command(
    study: o.Study,
    out_dir: o.Out,
    weights: o.Weights = None,
    filter_: Annotated[
        bool,
        typer.Option(
            "--filter/--no-filter",
            help="The guided bilateral filter of the networks' training frames first "
            "(skipped when the frames are filtered already).",
        ),
    ] = True,
    mask: o.Mask = None,
    no_mask: Annotated[
        bool, typer.Option("--no-mask", help="Keep values outside the brain.")
    ] = False,
    device: o.Device = None,
    series_uid: o.SeriesUID = None,
    frame_interval: o.FrameInterval = None,
    overwrite: o.Overwrite = False,
) -> None:
    """Perfusion maps from trained U-Nets (no AIF): one NIfTI per predicted map and run.json."""
    if mask is not None and no_mask:
        usage_error("--mask and --no-mask together: choose one")
    result, seconds = run_shown(
        study, out_dir, api="predict_study", weights=weights, filter=filter_,
        mask=False if no_mask else mask, device=device, overwrite=overwrite,
        series_uid=series_uid, frame_interval=frame_interval,
    )  # fmt: skip
    print_maps(result, f"U-Net maps of {study} -> {out_dir}", seconds)
