"""Training one fold: epochs of pre-training and fine-tuning, best epoch, checkpoints.

A fold trains one network through the stages of `TrainConfig.stages` (down-sampled, then
full size), keeps the epoch with the lowest validation MSE of the last stage run
(``best``), and after every epoch writes its history, a checkpoint (model, Adam, scheduler)
and now and then the learning curve. An interrupted fold resumes after its checkpoint.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from ...errors import InputError
from ..dataset import SliceDataset
from ..normalise import FOLD_METRICS
from ..unet import UNet
from ..weights import load_checkpoint, load_model, model_paths, save_checkpoint
from .config import TrainConfig
from .distributed import Dist
from .export import export_model, grid_of
from .history import HISTORY_METRICS, plot_learning_curve, read_history, write_history
from .metrics import MapErrors, evaluate

__all__ = ["FoldData", "train_fold"]

#: What the best epoch of a fold records.
BEST_FIELDS = ("epoch", "stage", "size", *FOLD_METRICS)


@dataclass
class FoldData:
    """Training and validation patients (`PatientSlices`) of a fold."""

    train: list
    val: list


def _loss(pred: torch.Tensor, y: torch.Tensor, m: torch.Tensor, hw, masked: bool) -> torch.Tensor:
    h, w = hw
    err = (pred.float()[..., :h, :w] - y[..., :h, :w]) ** 2
    if masked:
        mm = m[..., :h, :w].float()
        return (err * mm).sum() / mm.sum().clamp_min(1.0)
    return err.mean()


def _flip(x, y, m, hw, gen: torch.Generator):
    """Each slice of a batch flipped along each in-plane axis with probability 1/2 (the
    same for its frames, target and mask); only the ``hw`` corner that holds the slice is
    flipped, so that the padding stays where the metrics expect it."""
    h, w = hw
    flips = torch.rand((x.shape[0], 2), generator=gen) < 0.5
    for i, (flip_h, flip_w) in enumerate(flips.tolist()):
        dims = [d for d, on in ((-2, flip_h), (-1, flip_w)) if on]
        if dims:
            for t in (x, y, m):
                t[i, ..., :h, :w] = t[i, ..., :h, :w].flip(dims)
    return x, y, m


def _train_epoch(
    net, loader, optimizer, scaler, env: Dist, hw, masked: bool, flip_gen=None
) -> dict:
    """One pass over the training slices; the errors of the predictions made on the way
    (`MapErrors.result`, summed over the processes). With ``flip_gen`` (a seeded
    generator) the slices are flipped at random (`_flip`)."""
    net.train()
    h, w = hw
    sums = MapErrors()
    for x, y, m in loader:
        if flip_gen is not None:
            x, y, m = _flip(x.clone(), y.clone(), m.clone(), hw, flip_gen)
        x, y, m = x.to(env.device), y.to(env.device), m.to(env.device)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(env.device.type, dtype=torch.float16, enabled=env.amp):
            pred = net(x)
        loss = _loss(pred, y, m, hw, masked)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        crop = (..., slice(0, h), slice(0, w))
        sums.add(pred.detach().float()[crop], y[crop], m[crop])
    return MapErrors.from_list(env.sum(sums.as_list())).result()


def _epoch_seed(cfg: TrainConfig, fold: int, epoch: int) -> int:
    """Seed of one fold's epoch (shuffling, flips): runs resume and repeat exactly."""
    return cfg.seed * 1_000_003 + fold * 10_007 + epoch


def _loader(ds: SliceDataset, cfg: TrainConfig, env: Dist, fold: int, epoch: int) -> DataLoader:
    seed = _epoch_seed(cfg, fold, epoch)
    if env.world > 1:
        sampler = DistributedSampler(ds, env.world, env.rank, shuffle=True, seed=cfg.seed + fold)
        sampler.set_epoch(epoch)
    else:
        g = torch.Generator().manual_seed(seed)
        sampler = RandomSampler(ds, generator=g)
    return DataLoader(ds, batch_size=cfg.batch, sampler=sampler, num_workers=0, drop_last=False)


def _build(cfg: TrainConfig, times: list[float], fold: int, env: Dist, prior: float):
    """Network and optimiser of a fold (input frames at ``times``, s). The output bias
    starts at the logit of the mean training target (``prior``): the sigmoid then starts
    near the mostly-zero background instead of 0.5, which Adam would need thousands of
    steps to unlearn. A time head starts as its own (`ctpmaps.nn.unet.TimeHead`)."""
    torch.manual_seed(cfg.seed * 7919 + fold)
    net = UNet(
        len(times),
        features=cfg.widths,
        temporal=cfg.temporal,
        time_head=cfg.time_head_of(times),
    )
    if cfg.init_weights:
        net = _initial_model(cfg.init_weights, net.config())
    elif not cfg.time_head:
        p = min(max(prior, 1e-3), 1 - 1e-3)
        with torch.no_grad():
            net.head.bias.fill_(math.log(p / (1 - p)))
    net = net.to(env.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    return net, optimizer


def _initial_model(path: str, config: dict[str, Any]) -> UNet:
    """The model to fine-tune (`TrainConfig.init_weights`), checked against the run's."""
    net, meta = load_model(path)
    if net.config() != config:
        raise InputError(
            "init_weights",
            f"{path}: architecture {net.config()} differs from the run's {config}",
        )
    return net.train()


class _Fold:
    """The state of one fold's training: network, optimiser, history, best epoch."""

    def __init__(self, cfg, fold, data: FoldData, folder: Path, env: Dist, frames, say) -> None:
        self.cfg, self.fold, self.data, self.folder = cfg, fold, data, folder
        self.env, self.frames, self.say = env, frames, say
        folder.mkdir(parents=True, exist_ok=True)
        prior = float(np.mean([p.target.mean() for p in data.train]))
        self.net, self.optimizer = _build(cfg, list(frames["times"]), fold, env, prior)
        self.ckpt = folder / "checkpoint"
        self.state: dict[str, Any] = {"epoch": -1, "best": None, "scheduler": None}
        env.barrier()
        if model_paths(self.ckpt)[1].is_file():
            self.state = load_checkpoint(self.ckpt, self.net, self.optimizer)
            say(f"fold {fold}: resuming after epoch {self.state['epoch']}")
        last = self.state["epoch"]
        self.rows = [r for r in read_history(folder / "history.csv") if r["epoch"] <= last]
        self.ddp = (
            torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[env.device] if env.device.type == "cuda" else None
            )
            if env.world > 1
            else self.net
        )
        self.scaler = torch.amp.GradScaler(env.device.type, enabled=env.amp)

    def run(self) -> dict[str, Any]:
        """Every stage not finished yet; returns the best epoch's metrics."""
        epoch0 = 0
        for stage, n_epochs, size in self.cfg.stages():
            if n_epochs == 0:
                continue
            last = epoch0 + n_epochs - 1
            if self.state["epoch"] < last:
                self._stage(stage, size, max(epoch0, self.state["epoch"] + 1), last)
            epoch0 = last + 1
        self.env.barrier()
        return self.state["best"]

    def _stage(self, stage: str, size: int | None, first: int, last: int) -> None:
        train_ds = SliceDataset(self.data.train, size, time_shift=self.cfg.time_shift)
        val_ds = SliceDataset(self.data.val, size)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer,
            mode="min",
            factor=self.cfg.plateau_factor,
            patience=self.cfg.plateau_patience,
        )
        resumed = self.state.get("stage") == stage
        if resumed and self.state.get("scheduler"):
            sched.load_state_dict(self.state["scheduler"])
        best = self.state["best"] if resumed else None
        key = self.cfg.selection_metric
        for epoch in range(first, last + 1):
            row = self._epoch(epoch, stage, train_ds, val_ds)
            sched.step(row[key])
            if best is None or row[key] < best[key]:
                best = {k: row[k] for k in BEST_FIELDS}
                if self.env.main:
                    extra = {"fold": self.fold, "best_epoch": best}
                    path = self.folder / "best"
                    grid = grid_of(train_ds)
                    export_model(self.net, self.cfg, self.frames, path, grid=grid, extra=extra)
            self.state = {
                "epoch": epoch,
                "stage": stage,
                "best": best,
                "scheduler": sched.state_dict(),
            }
            self._record(row, last)

    def _epoch(self, epoch: int, stage: str, train_ds, val_ds) -> dict[str, Any]:
        cfg, env = self.cfg, self.env
        t0 = time.perf_counter()
        loader = _loader(train_ds, cfg, env, self.fold, epoch)
        flip_gen = None
        seed = _epoch_seed(cfg, self.fold, epoch) * 31 + env.rank
        if cfg.augment:  # seeded per fold, epoch and process: reproducible, resumable
            flip_gen = torch.Generator().manual_seed(seed)
        if cfg.time_shift:
            train_ds.draw_shifts(torch.Generator().manual_seed(seed + 1))
        train = _train_epoch(
            self.ddp, loader, self.optimizer, self.scaler, env, train_ds.hw, cfg.masked_loss,
            flip_gen,
        )  # fmt: skip
        val = evaluate(self.net, val_ds, device=env.device, batch=cfg.batch)
        row = {
            "epoch": epoch,
            "stage": stage,
            "size": train_ds.hw[0],
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        for part, errors in (("train", train), ("val", val)):
            row.update({f"{part}_{k}": errors[k] for k in HISTORY_METRICS[part]})
        return {**row, "seconds": time.perf_counter() - t0}

    def _record(self, row: dict[str, Any], last: int) -> None:
        self.rows.append(row)
        epoch = row["epoch"]
        if self.env.main:
            write_history(self.folder / "history.csv", self.rows)
            save_checkpoint(self.ckpt, self.net, self.optimizer, self.state)
            if epoch % 10 == 0 or epoch == last:
                title = f"{self.cfg.target.upper()} fold {self.fold}"
                plot_learning_curve(self.rows, self.folder / "learning_curve.png", title)
        self.say(
            f"fold {self.fold} {row['stage']} epoch {epoch}: train MSE {row['train_mse']:.4g}, "
            f"val MSE {row['val_mse']:.4g} ({row['seconds']:.1f} s)"
        )


def train_fold(
    cfg: TrainConfig, fold: int, data: FoldData, folder: Path, env: Dist, frames: dict, say
) -> dict[str, Any]:
    """Train one fold, resuming from its checkpoint; returns the best epoch's metrics.

    Parameters
    ----------
    cfg : TrainConfig
    fold : int
        Index of the fold (seeds the initialisation and the shuffling).
    data : FoldData
    folder : Path
        ``OUT/fold-<i>``.
    env : Dist
    frames : dict
        ``indices`` and ``times`` (s) of the frames (`ctpmaps.nn.dataset.frame_selection`).
    say : callable
        One line per epoch.
    """
    return _Fold(cfg, fold, data, folder, env, frames, say).run()
