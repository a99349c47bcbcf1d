"""``ctpmaps demo``: a built-in phantom study through the whole chain, scored against its
truth (maps and lesions)."""

from __future__ import annotations

import time
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from ..evaluation import dice
from . import options as o
from .common import StageDisplay, console, guarded, out
from .phantom import Matrix
from .run import STAGE_LABELS, print_decision

__all__ = ["demo_command", "map_accuracy_rows"]


def map_accuracy_rows(est, truth_maps, tissue, healthy) -> list[tuple[str, str, str, str, str]]:
    """Median of each map in healthy grey and white matter, estimate against truth.

    Rows ``(map, tissue, truth, estimate, bias %)``; Tmax and delay as differences in s.
    """
    rows = []
    for name, unit in (("cbf", "mL/100 g/min"), ("cbv", "mL/100 g"), ("tmax", "s")):
        for label, code in (("grey matter", 1), ("white matter", 2)):
            sel = healthy & (tissue == code) & np.isfinite(getattr(est, name))
            if not sel.any():
                continue
            t = float(np.median(truth_maps[name][sel]))
            e = float(np.median(getattr(est, name)[sel]))
            bias = f"{e - t:+.1f} s" if unit == "s" else f"{100 * (e - t) / t:+.0f} %"
            rows.append((f"{name.upper()} ({unit})", label, f"{t:.1f}", f"{e:.1f}", bias))
    return rows


def demo_command(
    out_dir: Annotated[
        str, typer.Argument(metavar="OUT", help="Output folder.", show_default=True)
    ] = "demo-out",
    matrix: Annotated[Matrix, typer.Option(help="In-plane matrix size.")] = Matrix.m512,
    seed: Annotated[int, typer.Option(help="Phantom seed.")] = 7,
    method: o.Method = o.MethodChoice.nlr,
    overwrite: Annotated[
        bool, typer.Option("--overwrite/--no-overwrite", help="Replace an earlier demo's files.")
    ] = True,
) -> None:
    """Simulate a built-in phantom study (DICOM + NIfTI + truth), run the whole chain on
    its DICOM series and compare maps and lesions with the phantom's truth."""
    from pathlib import Path

    from ..phantom import PhantomConfig, acquisition_preset, simulate_patient
    from ..phantom.write import write_phantom_study
    from ..pipeline import run_study

    cfg = PhantomConfig(
        acquisition=acquisition_preset("seed", matrix=int(matrix.value)),
        motion_mm=1.5,
        motion_deg=1.5,
    )
    t0 = time.perf_counter()
    with guarded():
        with console.status("simulating a phantom study"):
            ph = simulate_patient(cfg, seed=seed, normal=False, patient_id="MOL-001")
            folder = write_phantom_study(
                ph, Path(out_dir), formats=("nifti", "dicom"), overwrite=overwrite
            )
    truth = ph.truth
    out.print(
        f"phantom study {folder} ({time.perf_counter() - t0:.1f} s): "
        f"{' x '.join(map(str, ph.study.shape))} x {ph.study.n_frames} frames, residue "
        f"{truth.params['residue_shape']}, head motion up to 1.5 mm / 1.5 deg, "
        f"{truth.params['lesion']['side']} MCA lesion",
        markup=False,
    )
    t1 = time.perf_counter()
    with guarded(), StageDisplay(STAGE_LABELS) as show:
        result = run_study(
            folder / "dicom", Path(out_dir) / "run", method=method.value, overwrite=overwrite,
            progress=show,
        )  # fmt: skip
    print_decision(result, folder / "dicom", time.perf_counter() - t1)
    _against_truth(result, ph)


def _against_truth(result, ph) -> None:
    truth, v = ph.truth, ph.truth.volumes_ml
    healthy = truth.masks["brain"] & ~truth.masks["hypoperfusion"] & ~truth.masks["oligaemia"]
    table = Table(title="maps against the phantom's truth (healthy tissue, medians)")
    for col in ("map", "tissue", "truth", "estimate", "bias"):
        table.add_column(col)
    for row in map_accuracy_rows(result.maps.maps, truth.maps, truth.tissue, healthy):
        table.add_row(*row)
    out.print(table)
    table = Table(title="lesions against the phantom's truth")
    for col in ("lesion", "truth mL", "estimate mL", "Dice"):
        table.add_column(col)
    voxel_ml = float(np.prod(ph.study.spacing)) / 1000
    for name in ("core", "penumbra", "hypoperfusion"):
        est, t = getattr(result.lesions, name), truth.masks[name]
        overlap = dice(est, t, empty=1.0)
        table.add_row(name, f"{v[name]:.1f}", f"{est.sum() * voxel_ml:.1f}", f"{overlap:.2f}")
    out.print(table)
