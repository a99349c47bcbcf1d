"""The seed's Table 1 and Figure 4 from ``ctpmaps train`` run folders.

A run folder (`ctpmaps.nn.train`) holds ``config.json`` (target, target source),
``cv_table.csv`` (each fold's best epoch: train and validation MSE and PSNR, over the slice
and inside the brain, the constant predictor's), ``fold-<i>/history.csv`` (every epoch) and
``test_metrics.json`` (the held-out test set). These are read as they are (no torch), and
become three tables:

``cv``              per run and fold, the metrics at the best epoch; then the mean and the
                    sample SD over the folds (rows ``fold = "mean"``, ``"sd"``) with the
                    PSNR of the mean MSE
``test``            per run, the held-out test metrics
``learning_curves`` per run, fold and epoch: training and validation MSE (Figure 4)
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..nn.normalise import FOLD_METRICS
from .maps import psnr_db

__all__ = ["CAPTIONS", "training_tables"]

CAPTIONS = {
    "cv": "Cross-validation of each training run (the seed's Table 1): MSE on the normalised "
    "[0, 1] scale at each fold's best epoch, over the slice and inside the brain, the "
    "constant predictor beside them; mean and sample SD over the folds, PSNR of the mean.",
    "test": "Each training run's held-out test set, normalised scale.",
    "learning_curves": "Training and validation MSE per epoch (the seed's Figure 4).",
}
#: Metrics of the CV table, in order.
_CV_METRICS = FOLD_METRICS
_CURVE_METRICS = ("train_mse", "val_mse", "train_mse_brain", "val_mse_brain", "lr")
_TEST_METRICS = (
    "mse",
    "psnr",
    "const_mse",
    "mse_brain",
    "psnr_brain",
    "const_mse_brain",
    "mae_brain",
    "mae_brain_physical",
    "n_slices",
)


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _run_info(folder: Path) -> dict[str, Any]:
    config = folder / "config.json"
    if not (config.is_file() and (folder / "cv_table.csv").is_file()):
        raise InputError(
            folder, "expected a ctpmaps train run folder (config.json and cv_table.csv)"
        )
    cfg = json.loads(config.read_text())
    return {
        "run": str(folder),
        "target": cfg.get("target"),
        "target_source": cfg.get("target_source"),
        "n_frames": cfg.get("n_frames"),
    }


def _cv_rows(folder: Path, info: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for r in _csv_rows(folder / "cv_table.csv"):
        row = {**info, "fold": r["fold"], "best_epoch": int(_number(r["best_epoch"]))}
        row |= {k: _number(r.get(k)) for k in _CV_METRICS}
        rows.append(row)
    values = {k: np.array([r[k] for r in rows], dtype=float) for k in _CV_METRICS}
    mean = {
        k: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan for k, v in values.items()
    }
    mean["val_psnr"] = psnr_db(mean["val_mse"])
    mean["val_psnr_brain"] = psnr_db(mean["val_mse_brain"])
    sd = {k: float(np.std(v, ddof=1)) if len(v) > 1 else math.nan for k, v in values.items()}
    sd["val_psnr"] = sd["val_psnr_brain"] = math.nan
    return [*rows, {**info, "fold": "mean", **mean}, {**info, "fold": "sd", **sd}]


def _curve_rows(folder: Path, info: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for history in sorted(folder.glob("fold-*/history.csv")):
        fold = history.parent.name.split("-", 1)[1]
        for r in _csv_rows(history):
            row = {**info, "fold": fold, "epoch": int(_number(r["epoch"])), "stage": r["stage"]}
            rows.append(row | {k: _number(r.get(k)) for k in _CURVE_METRICS})
    return rows


def _test_row(folder: Path, info: dict[str, Any]) -> list[dict[str, Any]]:
    path = folder / "test_metrics.json"
    if not path.is_file():
        return []
    test = json.loads(path.read_text())
    row = {**info, "n_patients": len(test.get("patients") or [])}
    return [row | {k: test.get(k) for k in _TEST_METRICS}]


def training_tables(runs: Iterable[str | Path]) -> dict[str, list[dict[str, Any]]]:
    """The ``cv``, ``test`` and ``learning_curves`` tables of ``ctpmaps train`` run folders.

    Raises
    ------
    InputError
        A folder that is not a training run.
    """
    tables: dict[str, list[dict[str, Any]]] = {"cv": [], "test": [], "learning_curves": []}
    for folder in map(Path, runs):
        info = _run_info(folder)
        tables["cv"] += _cv_rows(folder, info)
        tables["test"] += _test_row(folder, info)
        tables["learning_curves"] += _curve_rows(folder, info)
    return tables
