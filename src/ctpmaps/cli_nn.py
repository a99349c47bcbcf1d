"""Command line of the U-Net (``ctpmaps train``, ``ctpmaps predict``): registered on
`ctpmaps.cli.app`."""

from __future__ import annotations

import shlex
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .cli import _fail, _fail_usage, app, console, out_console
from .errors import CtpmapsError


class Target(str, Enum):
    cbv = "cbv"
    cbf = "cbf"
    ttp = "ttp"
    mtt = "mtt"
    tmax = "tmax"
    delay = "delay"


class TargetSource(str, Enum):
    nlr = "nlr"
    truth = "truth"


class NetPreset(str, Enum):
    small = "small"
    paper = "paper"


class Preprocess(str, Enum):
    auto = "auto"
    filter = "filter"
    none = "none"


def _features(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        feats = [int(v) for v in value.split(",")]
    except ValueError:
        _fail_usage(f"--features: expected 5 comma-separated integers, got {value!r}")
    return feats


@app.command("train")
def train_cmd(
    cohort: Annotated[Path, typer.Argument(help="Cohort folder (phantom or UniToBrain layout).")],
    out: Annotated[Path, typer.Argument(help="Run folder (created; resumed if it exists).")],
    target: Annotated[Target, typer.Option(help="Map to learn.")] = Target.cbv,
    target_source: Annotated[
        TargetSource, typer.Option(help="Reference maps: NLR (as the seed) or phantom truth.")
    ] = TargetSource.nlr,
    preset: Annotated[NetPreset, typer.Option(help="Network widths.")] = NetPreset.small,
    features: Annotated[
        str | None, typer.Option(help="Explicit widths, e.g. 8,16,32,64,128 (overrides --preset).")
    ] = None,
    frames: Annotated[
        int | None, typer.Option(help="Frames T kept by uniform stride (default: all).", min=1)
    ] = None,
    epochs_pre: Annotated[int, typer.Option(help="Pre-training epochs.", min=0)] = 250,
    epochs_fine: Annotated[int, typer.Option(help="Fine-tuning epochs (full size).", min=0)] = 50,
    pre_size: Annotated[int, typer.Option(help="Pre-training slice size (px).", min=16)] = 128,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-5,
    batch: Annotated[int, typer.Option(help="Slices per batch (per process).", min=1)] = 8,
    folds: Annotated[int, typer.Option(help="Cross-validation folds.", min=2)] = 3,
    test_fraction: Annotated[
        float, typer.Option(help="Share of patients held out for testing.")
    ] = 15 / 115,
    seed: Annotated[int, typer.Option(help="Seed of split, initialisation and shuffling.")] = 0,
    masked_loss: Annotated[bool, typer.Option(help="MSE inside the brain mask only.")] = False,
    patience: Annotated[int, typer.Option(help="Plateau epochs before the LR halves.")] = 10,
    weights_dtype: Annotated[str, typer.Option(help="float32 or float16 weights.")] = "float32",
    cache_dir: Annotated[
        Path | None, typer.Option(help="Cache of preprocessed slices (default OUT/cache).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda if any).")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch.", min=1)] = None,
) -> None:
    """Train one map's U-Net with a held-out test set and patient-wise k-fold CV.

    Run under ``torchrun --nproc_per_node N -m ctpmaps train ...`` for several GPUs or
    processes. Writes per-fold histories, learning curves and checkpoints, the CV table,
    test metrics and OUT/<target>.safetensors + .json.
    """
    import torch

    from .nn.train import TrainConfig, train

    if threads:
        torch.set_num_threads(threads)
    cfg = TrainConfig(
        target=target.value,
        target_source=target_source.value,
        preset=preset.value,
        features=_features(features),
        n_frames=frames,
        epochs_pre=epochs_pre,
        epochs_fine=epochs_fine,
        pre_size=pre_size,
        lr=lr,
        batch=batch,
        folds=folds,
        test_fraction=test_fraction,
        seed=seed,
        masked_loss=masked_loss,
        plateau_patience=patience,
        weights_dtype=weights_dtype,
        command="ctpmaps " + shlex.join(sys.argv[1:]),
    )
    t0 = time.perf_counter()
    try:
        result = train(cohort, out, cfg, cache_dir=cache_dir, device=device, progress=console.log)
    except CtpmapsError as exc:
        _fail(exc)
    if result["model"] is None:  # not rank 0 under torchrun
        return
    table = Table(title=f"{target.value.upper()} U-Net → {out} ({time.perf_counter() - t0:.0f} s)")
    for col in ("fold", "best epoch", "train MSE", "val MSE", "val PSNR (dB)"):
        table.add_column(col)
    for i, r in enumerate(result["folds"]):
        mark = " *" if i == result["best_fold"] else ""
        table.add_row(
            f"{i}{mark}",
            str(int(r["epoch"])),
            f"{r['train_mse']:.4f}",
            f"{r['val_mse']:.4f}",
            f"{r['val_psnr']:.1f}",
        )
    out_console.print(table)
    test = result["test"]
    if test:
        out_console.print(
            f"test ({len(test['patients'])} patients): MSE {test['mse']:.4f} "
            f"(PSNR {test['psnr']:.1f} dB), MSE in brain {test['mse_brain']:.4f}"
        )
    out_console.print(f"model: {result['model']}")


@app.command("predict")
def predict_cmd(
    study: Annotated[
        Path, typer.Argument(help="NIfTI file, DICOM folder or UniToBrain patient folder.")
    ],
    out: Annotated[Path, typer.Argument(help="Output folder.")],
    weights: Annotated[
        list[Path] | None,
        typer.Option(
            "--weights",
            "-w",
            help="Model file (one per map) or folder; repeat. Default: $CTPMAPS_WEIGHTS or "
            "the demo weights.",
        ),
    ] = None,
    preprocess: Annotated[
        Preprocess,
        typer.Option(
            help="Guided bilateral filter (the seed's 3 mm / 20 HU, as the training frames) "
            "before the network: auto filters unless the study is a UniToBrain filtered stage."
        ),
    ] = Preprocess.auto,
    mask: Annotated[
        Path | None, typer.Option(help="Brain mask (NIfTI) instead of the automatic one.")
    ] = None,
    no_mask: Annotated[
        bool, typer.Option("--no-mask", help="Keep values outside the brain.")
    ] = False,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda if any).")] = None,
    series_uid: Annotated[str | None, typer.Option(help="DICOM series to read.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
) -> None:
    """Perfusion maps from trained U-Nets (no AIF): one NIfTI per predicted map and run.json."""
    import numpy as np

    from .io import load_study
    from .nn.predict import load_models, predict_maps, predicted, write_predicted_maps

    if out.exists() and not overwrite:
        _fail_usage(f"{out}: already exists (use --overwrite to replace it)")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        models = load_models(weights or None, device=device or "cpu")
        s = load_study(study, series_uid=series_uid)
        timings["load"] = time.perf_counter() - t0
        filtered = s.metadata.get("unitobrain_stage") == "filtered"
        if preprocess is Preprocess.filter or (preprocess is Preprocess.auto and not filtered):
            from .preprocess import SEED_SIGMAS, filter_study

            with console.status("guided bilateral filter"):
                spatial, range_hu = SEED_SIGMAS  # what the network's training frames had
                s = filter_study(s, sigma_spatial_mm=spatial, sigma_range_hu=range_hu)
        timings["preprocess"] = time.perf_counter() - t0 - timings["load"]
        brain = None
        if mask is not None:
            from .pipeline import read_mask

            brain = read_mask(mask, s)
        elif not no_mask:
            from .preprocess.brainmask import ct_brain_mask

            brain = ct_brain_mask(s.frames, s.spacing)
        t1 = time.perf_counter()
        with console.status("U-Net"):
            maps = predict_maps(s, models, mask=brain, device=device)
        timings["predict"] = time.perf_counter() - t1
        write_predicted_maps(
            maps,
            s,
            out,
            models=models,
            mask=brain,
            parameters={"preprocess": preprocess.value, "mask": str(mask) if mask else None},
            timings_s=timings,
            overwrite=overwrite,
        )
    except CtpmapsError as exc:
        _fail(exc)
    table = Table(title=f"U-Net maps of {study} → {out} ({time.perf_counter() - t0:.1f} s)")
    for col in ("map", "median", "IQR", "unit"):
        table.add_column(col)
    inside = brain if brain is not None else np.ones(s.shape, dtype=bool)
    for name in predicted(maps):
        q = np.nanpercentile(getattr(maps, name)[inside], [25, 50, 75])
        table.add_row(name.upper(), f"{q[1]:.2f}", f"{q[0]:.2f}-{q[2]:.2f}", maps.units[name])
    out_console.print(table)
