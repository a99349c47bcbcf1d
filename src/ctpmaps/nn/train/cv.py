"""A whole run: split, load the cohort, train every fold, test and export the best."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ..dataset import SliceDataset, find_cohort, frame_selection, load_patient
from ..normalise import TARGET_RANGES
from ..splits import make_splits, read_splits, write_splits
from ..weights import load_model, model_paths, read_metadata
from .config import TrainConfig
from .distributed import Dist, setup_distributed
from .export import cohort_info, export_model
from .history import write_cv_table, write_json
from .loop import FoldData, train_fold
from .metrics import evaluate

__all__ = ["train"]

log = logging.getLogger(__name__)


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
    env = setup_distributed(device)
    try:
        return _run(
            cfg, Path(cohort_dir), out, Path(cache_dir) if cache_dir else out / "cache", env, say
        )
    finally:
        env.close()


def _prepare_out(out: Path, cfg: TrainConfig, patients: tuple[str, ...], env: Dist) -> dict:
    """Write (or check, on resume) config.json and splits.json; returns the split."""
    cfg_path, split_path = out / "config.json", out / "splits.json"
    settings = {k: v for k, v in asdict(cfg).items() if k != "command"}
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
        if cfg_path.is_file():
            # settings added since a run began read as their defaults
            previous = {**_defaults(), **json.loads(cfg_path.read_text())}
            if previous != settings:
                diff = sorted(k for k in settings if previous.get(k) != settings[k])
                raise InputError(
                    out, f"holds a run with other settings ({', '.join(diff)}): use a new folder"
                )
        else:
            write_json(cfg_path, settings)
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


def _defaults() -> dict[str, Any]:
    return {f.name: f.default for f in fields(TrainConfig) if f.name != "command"}


def _load_all(cohort, patients, cfg: TrainConfig, cache_dir: Path, env: Dist, say) -> dict:
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
                filter_sigmas=cfg.filter_sigmas,
                time_shift=cfg.time_shift,
                enhancement_scale=cfg.enhancement_reference,
            )

    if env.main:
        load()
    env.barrier()
    if not env.main:
        load()
    return loaded


def _run(cfg: TrainConfig, cohort_dir: Path, out: Path, cache_dir: Path, env: Dist, say) -> dict:
    cohort = find_cohort(cohort_dir)
    if env.world > 1:
        say(f"process {env.rank} of {env.world} on {env.device}")
    split = _prepare_out(out, cfg, cohort.patients, env)
    data = _load_all(cohort, cohort.patients, cfg, cache_dir, env, say)
    frames = frame_selection(
        cohort, cohort.patients[0], cfg.n_frames, cache_dir, filter_sigmas=cfg.filter_sigmas,
        enhancement_scale=cfg.enhancement_reference,
    )  # fmt: skip
    _check_init(cfg, frames)
    results = []
    for i, fold in enumerate(split["folds"]):
        fold_data = FoldData([data[p] for p in fold["train"]], [data[p] for p in fold["val"]])
        results.append(train_fold(cfg, i, fold_data, out / f"fold-{i}", env, frames, say))
    best_fold = int(np.argmin([r[cfg.selection_metric] for r in results]))
    summary = {"folds": results, "best_fold": best_fold, "test": None, "model": None}
    if env.main:
        summary.update(
            _finish(cfg, out, split, data, results, best_fold, frames, env.device, cohort)
        )
    env.barrier()
    return summary


def _check_init(cfg: TrainConfig, frames: dict) -> None:
    """A model to fine-tune must take the run's frames (before any training starts)."""
    if not cfg.init_weights:
        return
    meta = read_metadata(cfg.init_weights)
    if meta["frame_indices"] != frames["indices"] or meta["target"] != cfg.target:
        raise InputError(
            "init_weights",
            f"{cfg.init_weights}: a {meta['target']} model on frames {meta['frame_indices']}, "
            f"the run trains {cfg.target} on frames {frames['indices']}",
        )


def _finish(cfg, out: Path, split, data, results, best_fold, frames, device, cohort) -> dict:
    net, meta = load_model(out / f"fold-{best_fold}" / "best", device=device)
    test = None
    if split["test"]:
        test = evaluate(net, SliceDataset([data[p] for p in split["test"]]), device=device)
        low, high = TARGET_RANGES[cfg.target]
        test["mae_brain_physical"] = test["mae_brain"] * (high - low)
        test["patients"] = split["test"]
        write_json(out / "test_metrics.json", {"target": cfg.target, **test})
    write_cv_table(out, cfg.target, results)
    info = cohort_info(cohort)
    extra = {
        "metrics": {"cv": results, "best_fold": best_fold, "test": test},
        "command": cfg.command,
        "cohort": info,
        "validated_on": info["kind"],
    }
    grid = {k: meta[k] for k in ("pixel_mm", "matrix")}
    export_model(net.cpu(), cfg, frames, out / cfg.target, grid=grid, extra=extra)
    return {"test": test, "model": str(model_paths(out / cfg.target)[0])}
