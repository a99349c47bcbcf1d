"""Command line: a thin typer layer over the Python API.

Errors of the project (`ctpmaps.errors`) print one line and exit with their code
(input 2, fit 3, weights 4); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from .errors import CtpmapsError

app = typer.Typer(
    name="ctpmaps",
    help="CT perfusion maps for acute ischemic stroke, with a digital CTP phantom.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
out_console = Console()
_state = {"debug": False}


class Matrix(str, Enum):
    m64 = "64"
    m128 = "128"
    m256 = "256"
    m512 = "512"


class Preset(str, Enum):
    seed = "seed"
    shuttle = "shuttle"


def _version(value: bool) -> None:
    if value:
        out_console.print(f"ctpmaps {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """CT perfusion maps for acute ischemic stroke."""
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _fail(exc: CtpmapsError) -> None:
    if _state["debug"]:
        raise exc
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=exc.exit_code)


@app.command()
def phantom(
    out: Annotated[Path, typer.Argument(help="Output folder (created).")],
    patients: Annotated[int, typer.Option(help="Number of patients.", min=1)] = 1,
    seed: Annotated[int, typer.Option(help="Cohort seed (reproducible).")] = 0,
    matrix: Annotated[Matrix, typer.Option(help="In-plane matrix size.")] = Matrix.m512,
    preset: Annotated[Preset, typer.Option(help="Acquisition protocol.")] = Preset.seed,
    fmt: Annotated[
        list[str],
        typer.Option("--format", help="nifti, dicom and/or unitobrain (repeat the option)."),
    ] = ["nifti"],  # noqa: B006
    mas: Annotated[
        float, typer.Option(help="Tube current-time product (mAs); noise scales as 1/sqrt(mAs).")
    ] = 150.0,
    noise_sigma: Annotated[float, typer.Option(help="Noise SD in HU at 150 mAs.")] = 12.0,
    motion_mm: Annotated[float, typer.Option(help="Largest head translation, mm.")] = 0.0,
    motion_deg: Annotated[float, typer.Option(help="Largest head rotation, degrees.")] = 0.0,
    normal_fraction: Annotated[
        float, typer.Option(help="Share of normal-perfusion patients.", min=0.0, max=1.0)
    ] = 0.2,
    workers: Annotated[int | None, typer.Option(help="Processes (default: all cores).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing patient folders.")] = False,
) -> None:
    """Simulate phantom CTP studies with known perfusion (truth written beside each)."""
    from .phantom import PhantomConfig, acquisition_preset
    from .phantom.write import FORMATS, write_cohort

    formats = [f for item in fmt for f in item.split(",") if f]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        _fail_usage(f"--format: expected some of {', '.join(FORMATS)}, got {', '.join(bad)}")
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
    try:
        with _progress() as prog:
            task = prog.add_task("simulating patients", total=patients)
            results = write_cohort(
                out,
                n_patients=patients,
                seed=seed,
                config=cfg,
                formats=formats,
                workers=workers,
                overwrite=overwrite,
                progress=lambda r: prog.advance(task),
            )
    except (CtpmapsError, FileExistsError, ValueError) as exc:
        if isinstance(exc, CtpmapsError):
            _fail(exc)
        _fail_usage(str(exc))
    table = Table(
        title=f"{patients} phantom patient(s) in {out} ({time.perf_counter() - t0:.1f} s)"
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
    out_console.print(table)


def _fail_usage(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@app.command()
def info(
    study: Annotated[
        Path, typer.Argument(help="NIfTI file, DICOM folder or UniToBrain patient folder.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    series_uid: Annotated[
        str | None, typer.Option(help="Series to read when a DICOM folder holds several.")
    ] = None,
) -> None:
    """Print what was read from a study: source, dimensions, spacing, frame times, problems."""
    from .io import load_study

    try:
        s = load_study(study, series_uid=series_uid)
    except CtpmapsError as exc:
        _fail(exc)
    summary = s.summary()
    if as_json:
        out_console.print_json(json.dumps(summary, default=str))
        return
    table = Table(show_header=False, title=str(study))
    table.add_row("source", summary["source"])
    table.add_row("dimensions (x, y, z)", " x ".join(map(str, summary["shape"])))
    table.add_row("voxel spacing (mm)", " x ".join(f"{v:.3f}" for v in summary["spacing_mm"]))
    table.add_row("frames", str(summary["n_frames"]))
    t = [f"{v:g}" for v in summary["times_s"]]
    table.add_row("frame times (s)", ", ".join(t if len(t) <= 8 else t[:4] + ["…"] + t[-3:]))
    table.add_row("duration (s)", f"{summary['duration_s']:g}")
    table.add_row("HU range", f"{summary['hu_range'][0]:.0f} to {summary['hu_range'][1]:.0f}")
    table.add_row("series description", str(summary["series_description"] or "-"))
    table.add_row("problems", "\n".join(summary["problems"]) or "none")
    out_console.print(table)


class Method(str, Enum):
    nlr = "nlr"
    ssvd = "ssvd"
    bsvd = "bsvd"
    osvd = "osvd"


@app.command()
def maps(
    study: Annotated[
        Path, typer.Argument(help="NIfTI file, DICOM folder or UniToBrain patient folder.")
    ],
    out: Annotated[Path, typer.Argument(help="Output folder.")],
    method: Annotated[Method, typer.Option(help="Deconvolution method.")] = Method.nlr,
    mask: Annotated[
        Path | None, typer.Option(help="Brain mask (NIfTI) instead of the automatic one.")
    ] = None,
    aif_mask: Annotated[Path | None, typer.Option(help="Arterial voxels (NIfTI mask).")] = None,
    aif_csv: Annotated[Path | None, typer.Option(help="AIF as 'time_s, hu' rows.")] = None,
    vof_mask: Annotated[Path | None, typer.Option(help="Venous voxels (NIfTI mask).")] = None,
    hematocrit_factor: Annotated[
        float, typer.Option(help="(1 - Hct large) / (1 - Hct small).")
    ] = 0.55 / 0.75,
    density: Annotated[float, typer.Option(help="Brain density, g/mL.")] = 1.05,
    series_uid: Annotated[str | None, typer.Option(help="DICOM series to read.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
) -> None:
    """Perfusion maps (CBF, CBV, MTT, TTP, Tmax, delay) of a study, on its frames as given."""
    from .io import load_study
    from .pipeline import compute_maps, write_maps

    if out.exists() and not overwrite:
        _fail_usage(f"{out}: already exists (use --overwrite to replace it)")
    t0 = time.perf_counter()
    try:
        s = load_study(study, series_uid=series_uid)
        with console.status("loading") as status:
            result = compute_maps(
                s,
                method=method.value,
                mask=mask,
                aif_mask=aif_mask,
                aif_csv=aif_csv,
                vof_mask=vof_mask,
                hematocrit_factor=hematocrit_factor,
                density=density,
                progress=lambda stage: status.update(stage),
            )
            status.update("writing")
            write_maps(
                result,
                s,
                out,
                overwrite=overwrite,
                inputs={
                    "mask": mask,
                    "aif_mask": aif_mask,
                    "aif_csv": aif_csv,
                    "vof_mask": vof_mask,
                },
            )
    except CtpmapsError as exc:
        _fail(exc)
    import numpy as np

    b = result.brain
    table = Table(
        title=f"{method.value} maps of {study} → {out} ({time.perf_counter() - t0:.1f} s)"
    )
    for col in ("map", "median", "IQR", "unit"):
        table.add_column(col)
    for name, arr in result.maps.as_dict().items():
        q = np.nanpercentile(arr[b], [25, 50, 75])
        table.add_row(
            name.upper(), f"{q[1]:.2f}", f"{q[0]:.2f}-{q[2]:.2f}", result.maps.units[name]
        )
    out_console.print(table)
    out_console.print(
        f"AIF: {result.aif.source}, {len(result.aif.voxels)} voxels, "
        f"scale {result.aif.scale:.2f}; VOF: "
        f"{result.vof.source if result.vof else 'none'}"
    )


@app.command()
def demo(
    out: Annotated[Path, typer.Argument(help="Output folder.")] = Path("demo-out"),
    matrix: Annotated[Matrix, typer.Option(help="In-plane matrix size.")] = Matrix.m512,
    seed: Annotated[int, typer.Option(help="Phantom seed.")] = 7,
    method: Annotated[Method, typer.Option(help="Deconvolution method.")] = Method.nlr,
) -> None:
    """Simulate a built-in phantom study (DICOM + NIfTI + truth), run the whole chain on
    its DICOM series (`ctpmaps run`) and compare the lesion with the phantom's truth."""
    import nibabel as nib
    import numpy as np

    from .cli_clinical import run_cmd
    from .phantom import PhantomConfig, acquisition_preset, simulate_patient
    from .phantom.write import write_phantom_study

    cfg = PhantomConfig(
        acquisition=acquisition_preset("seed", matrix=int(matrix.value)),
        motion_mm=1.5,
        motion_deg=1.5,
    )
    t0 = time.perf_counter()
    with console.status("simulating a phantom study"):
        ph = simulate_patient(cfg, seed=seed, normal=False, patient_id="MOL-001")
        folder = write_phantom_study(ph, out, formats=("nifti", "dicom"), overwrite=True)
    truth, v = ph.truth, ph.truth.volumes_ml
    out_console.print(
        f"phantom study {folder} ({time.perf_counter() - t0:.1f} s): "
        f"{' x '.join(map(str, ph.study.shape))} x {ph.study.n_frames} frames, residue "
        f"{truth.params['residue_shape']}, head motion up to 1.5 mm / 1.5°, "
        f"{truth.params['lesion']['side']} MCA lesion"
    )
    run_out = out / "run"
    run_cmd(
        folder / "dicom",
        run_out,
        method=RunMethodFor(method),
        motion=True,
        filter_=True,
        dicom=True,
        report=True,
        overwrite=True,
    )
    table = Table(title="against the phantom's truth")
    for col in ("lesion", "truth mL", "estimate mL", "Dice"):
        table.add_column(col)
    for name in ("core", "penumbra", "hypoperfusion"):
        path = run_out / f"{name}.nii.gz"
        est = np.asarray(nib.load(path).dataobj) > 0 if path.exists() else None
        t = truth.masks[name]
        if est is None:
            table.add_row(name, f"{v[name]:.1f}", "-", "-")
            continue
        voxel_ml = float(np.prod(ph.study.spacing)) / 1000
        dice = 2 * (est & t).sum() / max(est.sum() + t.sum(), 1)
        table.add_row(name, f"{v[name]:.1f}", f"{est.sum() * voxel_ml:.1f}", f"{dice:.2f}")
    out_console.print(table)


def RunMethodFor(method: Method):  # noqa: N802 - maps the maps-method enum onto run's
    from .cli_clinical import RunMethod

    return RunMethod(method.value)


# Commands defined in their own modules register themselves on `app` when imported.
from . import cli_clinical, cli_nn, cli_preprocess  # noqa: E402, F401


def run() -> None:  # pragma: no cover - console entry for `python -m ctpmaps`
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
