"""``ctpmaps train``: one map's U-Net on a cohort, with patient-wise cross-validation."""

from __future__ import annotations

import shlex
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .common import console, guarded, out, usage_error

__all__ = ["train_command"]


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


def say(message: str) -> None:
    """Training progress, one plain line each."""
    console.print(message, markup=False)


def _features(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        feats = [int(v) for v in value.split(",")]
    except ValueError:
        usage_error(f"--features: expected 5 comma-separated integers, got {value!r}")
    return feats


def train_command(
    cohort: Annotated[
        Path,
        typer.Argument(
            metavar="COHORT",
            help="Cohort folder (phantom or UniToBrain layout).",
            show_default=False,
        ),
    ],
    out_dir: Annotated[
        Path,
        typer.Argument(
            metavar="OUT", help="Run folder (created; resumed if it exists).", show_default=False
        ),
    ],
    target: Annotated[Target, typer.Option(help="Map to learn.")] = Target.cbv,
    target_source: Annotated[
        TargetSource, typer.Option(help="Reference maps: NLR (as the seed) or phantom truth.")
    ] = TargetSource.nlr,
    preset: Annotated[NetPreset, typer.Option(help="Network widths.")] = NetPreset.small,
    features: Annotated[
        str | None, typer.Option(help="Explicit widths, e.g. 8,16,32,64,128 (overrides --preset).")
    ] = None,
    temporal: Annotated[
        int,
        typer.Option(help="Width of a per-pixel temporal stem before the U-Net (0: none).", min=0),
    ] = 0,
    time_head: Annotated[
        bool,
        typer.Option(
            "--time-head",
            help="TTP only: end in a soft argmax over the frames' times instead of a sigmoid.",
        ),
    ] = False,
    frames: Annotated[
        int | None, typer.Option(help="Frames T kept by uniform stride (default: all).", min=1)
    ] = None,
    epochs_pre: Annotated[int, typer.Option(help="Pre-training epochs.", min=0)] = 250,
    epochs_fine: Annotated[int, typer.Option(help="Fine-tuning epochs (full size).", min=0)] = 50,
    pre_size: Annotated[int, typer.Option(help="Pre-training slice size (px).", min=16)] = 128,
    lr: Annotated[float, typer.Option(help="Adam learning rate.", show_default="1e-5")] = 1e-5,
    batch: Annotated[int, typer.Option(help="Slices per batch (per process).", min=1)] = 8,
    folds: Annotated[int, typer.Option(help="Cross-validation folds.", min=2)] = 3,
    test_fraction: Annotated[
        float,
        typer.Option(
            metavar="FRACTION",
            help="Share of patients held out for testing.",
            show_default="15/115 = 0.13, the seed's",
        ),
    ] = 15 / 115,
    seed: Annotated[int, typer.Option(help="Seed of split, initialisation and shuffling.")] = 0,
    masked_loss: Annotated[
        bool, typer.Option(help="MSE inside the brain mask only (and the best epoch by it).")
    ] = False,
    augment: Annotated[
        bool, typer.Option(help="Flip training slices at random (left-right, front-back).")
    ] = False,
    time_shift: Annotated[
        bool,
        typer.Option(
            help="Start training slices' frames up to a stride later at random (TTP moves)."
        ),
    ] = False,
    enhancement_scale: Annotated[
        bool,
        typer.Option(
            help="Scale each study's enhancement to one input-function area (its automatic "
            "AIF's; kept by the model, applied at inference)."
        ),
    ] = False,
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

    from ..nn.train import TrainConfig, train

    if threads:
        torch.set_num_threads(threads)
    cfg = TrainConfig(
        target=target.value,
        target_source=target_source.value,
        preset=preset.value,
        features=_features(features),
        temporal=temporal,
        time_head=time_head,
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
        augment=augment,
        time_shift=time_shift,
        enhancement_scale=enhancement_scale,
        plateau_patience=patience,
        weights_dtype=weights_dtype,
        command="ctpmaps " + shlex.join(sys.argv[1:]),
    )
    t0 = time.perf_counter()
    with guarded():
        result = train(cohort, out_dir, cfg, cache_dir=cache_dir, device=device, progress=say)
    if result["model"] is None:  # not rank 0 under torchrun
        return
    table = Table(
        title=f"{target.value.upper()} U-Net -> {out_dir} ({time.perf_counter() - t0:.0f} s)"
    )
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
    out.print(table)
    test = result["test"]
    if test:
        out.print(
            f"test ({len(test['patients'])} patients): MSE {test['mse']:.4f} "
            f"(PSNR {test['psnr']:.1f} dB), MSE in brain {test['mse_brain']:.4f}"
        )
    out.print(f"model: {result['model']}")
