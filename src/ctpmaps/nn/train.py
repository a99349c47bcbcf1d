"""Training the U-Net with patient-wise cross-validation (``ctpmaps train``).

The seed's recipe, every number configurable (`TrainConfig`): MSE loss, Adam (lr 1e-5,
betas 0.9/0.999), batch 8, learning rate halved when the validation loss plateaus,
pre-training on slices down-sampled to 128 x 128 (250 epochs) then fine-tuning at full
resolution (50 epochs). A held-out test set and k folds are drawn patient-wise
(`ctpmaps.nn.splits`); each fold trains one model and keeps its best epoch by validation
MSE. The fold with the lowest validation MSE becomes the run's model, evaluated on the
test set.

Layout of ``OUT``::

    config.json                the settings (a resumed run must match them)
    splits.json                test patients and folds
    fold-<i>/history.csv       per epoch: stage, size, lr, train and validation MSE, PSNR,
                               validation MSE inside the brain, seconds
    fold-<i>/learning_curve.png
    fold-<i>/best.{safetensors,json}        best epoch (model format, `weights.py`)
    fold-<i>/checkpoint.{safetensors,json}  last epoch (model + optimiser + scheduler)
    <target>.{safetensors,json}  the run's model, with CV and test metrics
    cv_table.md, cv_table.csv  train/validation MSE and PSNR per fold, mean and SD
    test_metrics.json          normalised MSE, PSNR and physical errors on the test set

Interrupted runs resume from the last checkpoint of the unfinished fold. Shuffling uses a
generator seeded by (seed, fold, epoch), so a resumed run follows the same path as an
uninterrupted one; on CPU two runs with the same seed give identical weights.

Runs on CUDA when present (mixed precision with `torch.autocast`) and on several
processes with ``torchrun`` (DistributedDataParallel; gloo on CPU, nccl on CUDA;
`DistributedSampler` shards the training slices; rank 0 writes every file).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from ..errors import InputError
from ..io.atomic import atomic_path
from .dataset import SliceDataset, find_cohort, frame_selection, load_patient
from .normalise import TARGET_RANGES
from .splits import TEST_FRACTION, make_splits, read_splits, write_splits
from .unet import PRESETS, UNet
from .weights import load_checkpoint, model_paths, save_checkpoint, save_model

__all__ = ["TrainConfig", "train", "evaluate", "psnr"]

log = logging.getLogger(__name__)

HISTORY_FIELDS = [
    "epoch",
    "stage",
    "size",
    "lr",
    "train_mse",
    "train_psnr",
    "val_mse",
    "val_psnr",
    "val_mse_brain",
    "seconds",
]


@dataclass
class TrainConfig:
    """Settings of a training run (the seed's values by default).

    Attributes
    ----------
    target : str
        Map to learn (`TARGET_RANGES`).
    target_source : {"truth", "nlr"}
        Reference maps: phantom truth or NLR.
    preset : str
        Widths from `PRESETS` (``small`` or ``paper``), unless ``features`` is given.
    features : list of 5 int or None
        Explicit widths.
    n_frames : int or None
        Frames T (uniform stride from frame 0); all by default.
    epochs_pre, epochs_fine : int
        Pre-training epochs on down-sampled slices, then fine-tuning at full resolution.
    pre_size : int
        Longer side of the pre-training slices (128).
    lr : float
        Adam learning rate.
    batch : int
        Slices per batch (per process under torchrun).
    folds : int
        k of the cross-validation.
    test_fraction : float
        Share of patients held out for testing.
    seed : int
        Seed of the split, initialisation and shuffling.
    masked_loss : bool
        MSE inside the brain mask only (default: over the whole slice, as the seed).
    plateau_patience, plateau_factor : int, float
        ReduceLROnPlateau on the validation MSE.
    weights_dtype : str
        Storage of the exported model (``float32`` or ``float16``).
    command : str
        The command line that started the run (recorded with the model).
    """

    target: str = "cbv"
    target_source: str = "nlr"
    preset: str = "small"
    features: list[int] | None = None
    n_frames: int | None = None
    epochs_pre: int = 250
    epochs_fine: int = 50
    pre_size: int = 128
    lr: float = 1e-5
    batch: int = 8
    folds: int = 3
    test_fraction: float = TEST_FRACTION
    seed: int = 0
    masked_loss: bool = False
    plateau_patience: int = 10
    plateau_factor: float = 0.5
    weights_dtype: str = "float32"
    command: str = field(default="", compare=False)

    def check(self) -> TrainConfig:
        """Validate every setting (InputError naming the first bad one)."""
        if self.target not in TARGET_RANGES:
            raise InputError(
                "target", f"expected one of {list(TARGET_RANGES)}, got {self.target!r}"
            )
        if self.features is None and self.preset not in PRESETS:
            raise InputError("preset", f"expected one of {list(PRESETS)}, got {self.preset!r}")
        for name in ("epochs_pre", "epochs_fine"):
            if int(getattr(self, name)) < 0:
                raise InputError(name, f"expected >= 0, got {getattr(self, name)}")
        if self.epochs_pre + self.epochs_fine < 1:
            raise InputError("epochs", "expected at least one epoch in all")
        for name in ("pre_size", "batch", "plateau_patience"):
            if int(getattr(self, name)) < 1:
                raise InputError(name, f"expected a positive integer, got {getattr(self, name)}")
        if self.pre_size % 16:
            raise InputError("pre_size", f"expected a multiple of 16, got {self.pre_size}")
        if not (self.lr > 0 and 0 < self.plateau_factor < 1):
            raise InputError("lr", f"expected lr > 0 and 0 < factor < 1, got {self.lr}")
        if self.weights_dtype not in ("float32", "float16"):
            raise InputError(
                "weights_dtype", f"expected float32 or float16, got {self.weights_dtype!r}"
            )
        return self

    @property
    def widths(self) -> tuple[int, ...]:
        """Widths of the network."""
        return tuple(self.features) if self.features is not None else PRESETS[self.preset]

    def stages(self) -> list[tuple[str, int, int | None]]:
        """``(name, epochs, size)`` of pre-training and fine-tuning (None: full size)."""
        return [("pre", self.epochs_pre, self.pre_size), ("fine", self.epochs_fine, None)]


# ----------------------------------------------------------------------------- helpers
def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio in dB of maps on [0, 1]: ``10 log10(1 / mse)``."""
    return float(10.0 * math.log10(1.0 / mse)) if mse > 0 else float("inf")


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    initialised_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()


def _setup_distributed(device: str | None) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available() and device != "cpu"
    if world <= 1:
        dev = torch.device(device) if device else torch.device("cuda" if cuda else "cpu")
        return _Dist(device=dev)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    initialised = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        initialised = True
    if cuda:
        torch.cuda.set_device(local)
    dev = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    return _Dist(dist.get_rank(), dist.get_world_size(), dev, initialised)


def _write_json(path: Path, record: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, default=str))


def _read_history(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [
            {k: (v if k == "stage" else float(v)) for k, v in row.items()}
            for row in csv.DictReader(fh)
        ]


def _write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=HISTORY_FIELDS)
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def plot_learning_curve(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Training and validation MSE per epoch (the paper's Figure 4), log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return
    epochs = [int(r["epoch"]) for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
    ax.plot(epochs, [r["train_mse"] for r in rows], label="train")
    ax.plot(epochs, [r["val_mse"] for r in rows], label="validation")
    switch = [
        e
        for e, r, p in zip(epochs[1:], rows[1:], rows[:-1], strict=True)
        if r["stage"] != p["stage"]
    ]
    for e in switch:
        ax.axvline(e - 0.5, color="grey", ls=":", lw=1)
        ax.text(e, ax.get_ylim()[1], " fine-tuning", va="top", fontsize=7, color="grey")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (normalised map)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


# ----------------------------------------------------------------------------- epochs
def _loss(pred: torch.Tensor, y: torch.Tensor, m: torch.Tensor, hw, masked: bool) -> torch.Tensor:
    h, w = hw
    err = (pred.float()[..., :h, :w] - y[..., :h, :w]) ** 2
    if masked:
        mm = m[..., :h, :w].float()
        return (err * mm).sum() / mm.sum().clamp_min(1.0)
    return err.mean()


def _train_epoch(net, loader, optimizer, scaler, env: _Dist, hw, masked: bool) -> float:
    net.train()
    total, count = 0.0, 0
    amp = env.device.type == "cuda"
    for x, y, m in loader:
        x, y, m = x.to(env.device), y.to(env.device), m.to(env.device)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(env.device.type, dtype=torch.float16, enabled=amp):
            pred = net(x)
        loss = _loss(pred, y, m, hw, masked)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += float(loss.detach()) * x.shape[0]
        count += x.shape[0]
    total, count = env.sum([total, float(count)])
    return total / max(count, 1.0)


@torch.no_grad()
def evaluate(
    net: torch.nn.Module, ds: SliceDataset, *, device: torch.device | str = "cpu", batch: int = 8
) -> dict[str, Any]:
    """MSE of a network on a dataset, on the normalised [0, 1] scale.

    Returns
    -------
    dict
        ``mse`` (whole slice, the seed's metric), ``psnr`` (dB), ``mse_brain`` (inside the
        brain mask), ``mae_brain`` (normalised), ``n_slices``.
    """
    net.eval()
    device = torch.device(device)
    h, w = ds.hw
    sq, n, sq_b, ab_b, n_b = 0.0, 0, 0.0, 0.0, 0.0
    amp = device.type == "cuda"
    for start in range(0, len(ds), batch):
        x = ds.inputs[start : start + batch].float().to(device)
        y = ds.targets[start : start + batch].to(device)[..., :h, :w]
        m = ds.masks[start : start + batch].to(device)[..., :h, :w]
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            pred = net(x)
        err = pred.float()[..., :h, :w] - y
        sq += float((err**2).sum())
        n += err.numel()
        sq_b += float((err[m] ** 2).sum())
        ab_b += float(err[m].abs().sum())
        n_b += float(m.sum())
    mse = sq / max(n, 1)
    mse_b = sq_b / n_b if n_b else float("nan")
    return {
        "mse": mse,
        "psnr": psnr(mse),
        "mse_brain": mse_b,
        "mae_brain": ab_b / n_b if n_b else float("nan"),
        "n_slices": len(ds),
    }


# ----------------------------------------------------------------------------- one fold
@dataclass
class _FoldData:
    train: list
    val: list


def _loader(ds: SliceDataset, cfg: TrainConfig, env: _Dist, fold: int, epoch: int) -> DataLoader:
    seed = cfg.seed * 1_000_003 + fold * 10_007 + epoch
    if env.world > 1:
        sampler = DistributedSampler(ds, env.world, env.rank, shuffle=True, seed=cfg.seed + fold)
        sampler.set_epoch(epoch)
    else:
        g = torch.Generator().manual_seed(seed)
        sampler = RandomSampler(ds, generator=g)
    return DataLoader(ds, batch_size=cfg.batch, sampler=sampler, num_workers=0, drop_last=False)


def _build(cfg: TrainConfig, n_frames: int, fold: int, env: _Dist, prior: float):
    """Network and optimiser of a fold. The output bias starts at the logit of the mean
    training target (``prior``): the sigmoid then starts near the mostly-zero background
    instead of 0.5, which Adam would need thousands of steps to unlearn."""
    torch.manual_seed(cfg.seed * 7919 + fold)
    net = UNet(n_frames, features=cfg.widths)
    p = min(max(prior, 1e-3), 1 - 1e-3)
    with torch.no_grad():
        net.head.bias.fill_(math.log(p / (1 - p)))
    net = net.to(env.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    return net, optimizer


def _scheduler(optimizer, cfg: TrainConfig):
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience
    )


def _train_fold(
    cfg: TrainConfig, fold: int, data: _FoldData, folder: Path, env: _Dist, frames: dict, say
) -> dict[str, Any]:
    """Train one fold, resuming from its checkpoint; returns the best epoch's metrics."""
    folder.mkdir(parents=True, exist_ok=True)
    n_frames = len(frames["indices"])
    prior = float(np.mean([p.target.mean() for p in data.train]))
    net, optimizer = _build(cfg, n_frames, fold, env, prior)
    ckpt = folder / "checkpoint"
    state: dict[str, Any] = {"epoch": -1, "best": None, "scheduler": None}
    env.barrier()
    if model_paths(ckpt)[1].is_file():
        state = load_checkpoint(ckpt, net, optimizer)
        say(f"fold {fold}: resuming after epoch {state['epoch']}")
    rows = [r for r in _read_history(folder / "history.csv") if r["epoch"] <= state["epoch"]]
    ddp = (
        torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[env.device] if env.device.type == "cuda" else None
        )
        if env.world > 1
        else net
    )
    scaler = torch.amp.GradScaler(env.device.type, enabled=env.device.type == "cuda")
    epoch0 = 0
    for stage, n_epochs, size in cfg.stages():
        if n_epochs == 0:
            continue
        last = epoch0 + n_epochs - 1
        if state["epoch"] >= last:
            epoch0 = last + 1
            continue
        train_ds, val_ds = SliceDataset(data.train, size), SliceDataset(data.val, size)
        sched = _scheduler(optimizer, cfg)
        if state.get("scheduler") and state.get("stage") == stage:
            sched.load_state_dict(state["scheduler"])
        best = state["best"] if state.get("stage") == stage else None
        for epoch in range(max(epoch0, state["epoch"] + 1), last + 1):
            t0 = time.perf_counter()
            loader = _loader(train_ds, cfg, env, fold, epoch)
            train_mse = _train_epoch(
                ddp, loader, optimizer, scaler, env, train_ds.hw, cfg.masked_loss
            )
            val = evaluate(net, val_ds, device=env.device, batch=cfg.batch)
            sched.step(val["mse"])
            row = {
                "epoch": epoch,
                "stage": stage,
                "size": train_ds.hw[0],
                "lr": optimizer.param_groups[0]["lr"],
                "train_mse": train_mse,
                "train_psnr": psnr(train_mse),
                "val_mse": val["mse"],
                "val_psnr": val["psnr"],
                "val_mse_brain": val["mse_brain"],
                "seconds": time.perf_counter() - t0,
            }
            rows.append(row)
            if best is None or val["mse"] < best["val_mse"]:
                best = {
                    k: row[k]
                    for k in (
                        "epoch",
                        "stage",
                        "size",
                        "train_mse",
                        "val_mse",
                        "val_psnr",
                        "val_mse_brain",
                    )
                }
                if env.main:
                    _export(net, cfg, frames, folder / "best", {"fold": fold, "best_epoch": best})
            state = {"epoch": epoch, "stage": stage, "best": best, "scheduler": sched.state_dict()}
            if env.main:
                _write_history(folder / "history.csv", rows)
                save_checkpoint(ckpt, net, optimizer, state)
                if epoch % 10 == 0 or epoch == last:
                    plot_learning_curve(
                        rows, folder / "learning_curve.png", f"{cfg.target.upper()} fold {fold}"
                    )
            say(
                f"fold {fold} {stage} epoch {epoch}: train MSE {train_mse:.4g}, "
                f"val MSE {val['mse']:.4g} ({row['seconds']:.1f} s)"
            )
        epoch0 = last + 1
    env.barrier()
    return state["best"]


def _export(net: UNet, cfg: TrainConfig, frames: dict, path: Path, extra: dict[str, Any]) -> None:
    save_model(
        path,
        net,
        target=cfg.target,
        frame_indices=frames["indices"],
        frame_times_s=frames["times"],
        dtype=getattr(torch, cfg.weights_dtype),
        extra={
            "target_source": cfg.target_source,
            "training": {k: v for k, v in asdict(cfg).items()},
            **extra,
        },
    )


# ----------------------------------------------------------------------------- the run
def _prepare_out(out: Path, cfg: TrainConfig, patients: tuple[str, ...], env: _Dist) -> dict:
    """Write (or check, on resume) config.json and splits.json; returns the split."""
    cfg_path, split_path = out / "config.json", out / "splits.json"
    settings = {k: v for k, v in asdict(cfg).items() if k != "command"}
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
        if cfg_path.is_file():
            previous = json.loads(cfg_path.read_text())
            if previous != settings:
                diff = sorted(k for k in settings if previous.get(k) != settings[k])
                raise InputError(
                    out, f"holds a run with other settings ({', '.join(diff)}): use a new folder"
                )
        else:
            _write_json(cfg_path, settings)
        if not split_path.is_file():
            split = make_splits(
                patients, k=cfg.folds, test_fraction=cfg.test_fraction, seed=cfg.seed
            )
            write_splits(split_path, split)
    env.barrier()
    split = read_splits(split_path)
    if sorted(split["patients"]) != sorted(patients):
        raise InputError(split_path, "lists other patients than the cohort: use a new folder")
    return split


def _load_all(cohort, patients, cfg: TrainConfig, cache_dir: Path, env: _Dist, say) -> dict:
    """Every patient's slices; rank 0 fills the cache first, the others read it."""
    loaded: dict = {}

    def load() -> None:
        for i, pid in enumerate(patients):
            say(f"loading {pid} ({i + 1}/{len(patients)})")
            loaded[pid] = load_patient(
                cohort,
                pid,
                target=cfg.target,
                source=cfg.target_source,
                n_frames=cfg.n_frames,
                cache_dir=cache_dir,
            )

    if env.main:
        load()
    env.barrier()
    if not env.main:
        load()
    return loaded


def train(
    cohort_dir: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train one map's U-Net on a cohort with a held-out test set and k-fold CV.

    Parameters
    ----------
    cohort_dir : str or Path
        Cohort folder (phantom or UniToBrain layout, `ctpmaps.nn.dataset`).
    out : str or Path
        Run folder (created; an existing one with the same settings is resumed).
    config : TrainConfig, optional
        Settings; the seed's by default.
    cache_dir : path, optional
        Cache of preprocessed slices and NLR maps; ``out/cache`` by default.
    device : str, optional
        ``"cpu"``, ``"cuda"``...; CUDA when available by default.
    progress : callable, optional
        Called with one line per step (patient loaded, epoch finished).

    Returns
    -------
    dict
        ``folds`` (best epoch per fold), ``best_fold``, ``test`` metrics and ``model``
        (path of the exported weights).

    Under ``torchrun`` every process calls this; rank 0 writes the files.
    """
    cfg = (config or TrainConfig()).check()
    say = progress or (lambda s: log.info("%s", s))
    out = Path(out)
    env = _setup_distributed(device)
    try:
        return _run(
            cfg, Path(cohort_dir), out, Path(cache_dir) if cache_dir else out / "cache", env, say
        )
    finally:
        if env.initialised_here:
            dist.destroy_process_group()


def _run(cfg: TrainConfig, cohort_dir: Path, out: Path, cache_dir: Path, env: _Dist, say) -> dict:
    cohort = find_cohort(cohort_dir)
    if env.world > 1:
        say(f"process {env.rank} of {env.world} on {env.device}")
    split = _prepare_out(out, cfg, cohort.patients, env)
    data = _load_all(cohort, cohort.patients, cfg, cache_dir, env, say)
    frames = frame_selection(cohort, cohort.patients[0], cfg.n_frames, cache_dir)
    results = []
    for i, fold in enumerate(split["folds"]):
        fold_data = _FoldData([data[p] for p in fold["train"]], [data[p] for p in fold["val"]])
        results.append(_train_fold(cfg, i, fold_data, out / f"fold-{i}", env, frames, say))
    best_fold = int(np.argmin([r["val_mse"] for r in results]))
    summary = {"folds": results, "best_fold": best_fold, "test": None, "model": None}
    if env.main:
        summary.update(
            _finish(cfg, out, split, data, results, best_fold, frames, env.device, cohort)
        )
    env.barrier()
    return summary


def _cohort_info(cohort) -> dict[str, Any]:
    """What the model was trained on: folder, layout, patients, and a phantom's seed."""
    info: dict[str, Any] = {
        "path": str(cohort.root),
        "layout": cohort.layout,
        "n_patients": len(cohort.patients),
    }
    manifest = cohort.root / "cohort.json"
    if manifest.is_file():
        try:
            m = json.loads(manifest.read_text())
            info["phantom_seed"] = m["seed"]
            info["phantom_matrix"] = m["config"]["acquisition"]["matrix"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            log.warning("%s: not a phantom cohort manifest (%s)", manifest, exc)
    return info


def _finish(cfg, out: Path, split, data, results, best_fold, frames, device, cohort) -> dict:
    from .weights import load_model

    net, meta = load_model(out / f"fold-{best_fold}" / "best", device=device)
    test = None
    if split["test"]:
        test = evaluate(net, SliceDataset([data[p] for p in split["test"]]), device=device)
        low, high = TARGET_RANGES[cfg.target]
        test["mae_brain_physical"] = test["mae_brain"] * (high - low)
        test["patients"] = split["test"]
        _write_json(out / "test_metrics.json", {"target": cfg.target, **test})
    write_cv_table(out, cfg.target, results)
    metrics = {"cv": results, "best_fold": best_fold, "test": test}
    extra = {"metrics": metrics, "command": cfg.command, "cohort": _cohort_info(cohort)}
    _export(net.cpu(), cfg, frames, out / cfg.target, extra)
    return {"test": test, "model": str(model_paths(out / cfg.target)[0])}


def write_cv_table(out: Path, target: str, results: list[dict[str, Any]]) -> None:
    """``cv_table.md`` and ``cv_table.csv``: train and validation MSE (normalised map) and
    PSNR at each fold's best epoch, with mean and SD."""
    rows = [
        [
            target.upper(),
            str(i),
            int(r["epoch"]),
            r["train_mse"],
            r["val_mse"],
            r["val_psnr"],
            r["val_mse_brain"],
        ]
        for i, r in enumerate(results)
    ]
    tr = np.array([r["train_mse"] for r in results])
    va = np.array([r["val_mse"] for r in results])
    header = ["map", "fold", "best epoch", "train MSE", "val MSE", "val PSNR (dB)", "val MSE brain"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append(
            f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.4f} | {r[4]:.4f} | {r[5]:.1f} | {r[6]:.4f} |"
        )
    lines.append(
        f"| {target.upper()} | mean ± SD | | {tr.mean():.4f} ± {tr.std():.4f} | "
        f"{va.mean():.4f} ± {va.std():.4f} | {psnr(float(va.mean())):.1f} | |"
    )
    with atomic_path(out / "cv_table.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    with atomic_path(out / "cv_table.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["map", "fold", "best_epoch", "train_mse", "val_mse", "val_psnr", "val_mse_brain"]
        )
        w.writerows(rows)
