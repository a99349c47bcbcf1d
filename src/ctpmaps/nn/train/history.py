"""What a training run writes as it goes: per-epoch history, learning curve, CV table, JSON."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ...io.atomic import atomic_path
from .metrics import psnr

__all__ = [
    "HISTORY_METRICS",
    "HISTORY_FIELDS",
    "read_history",
    "write_history",
    "plot_learning_curve",
    "write_cv_table",
    "write_json",
]

#: Metrics (`MapErrors.result` keys) per epoch of the training and validation slices.
HISTORY_METRICS = {
    "train": ("mse", "psnr", "mse_brain", "psnr_brain"),
    "val": ("mse", "psnr", "const_mse", "mse_brain", "psnr_brain", "const_mse_brain"),
}
#: Columns of ``fold-<i>/history.csv``.
HISTORY_FIELDS = [
    "epoch",
    "stage",
    "size",
    "lr",
    *(f"{part}_{k}" for part, keys in HISTORY_METRICS.items() for k in keys),
    "seconds",
]


def write_json(path: Path, record: Any) -> None:
    """Write ``record`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, default=str))


def read_history(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``history.csv`` (numbers as float; a column an older run lacks is NaN)."""
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [
            {k: (v if k == "stage" else float(v) if v else math.nan) for k, v in row.items()}
            for row in csv.DictReader(fh)
        ]


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write the rows of a fold's history (`HISTORY_FIELDS`), atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def plot_learning_curve(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Training and validation MSE per epoch (the paper's Figure 4), log scale: over the
    slice (thin) and inside the brain (thick), with the validation's constant predictor
    inside the brain (dotted), the line a network must stay under to carry information."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return
    epochs = [int(r["epoch"]) for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)

    def curve(key: str, **style) -> None:
        values = [float(r.get(key, float("nan"))) for r in rows]
        if any(np.isfinite(values)):
            ax.plot(epochs, values, **style)

    curve("train_mse", color="C0", lw=0.8, alpha=0.6, label="train, slice")
    curve("val_mse", color="C1", lw=0.8, alpha=0.6, label="validation, slice")
    curve("train_mse_brain", color="C0", lw=1.8, label="train, brain")
    curve("val_mse_brain", color="C1", lw=1.8, label="validation, brain")
    curve("val_const_mse_brain", color="k", lw=1.0, ls=":", label="constant, brain")
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
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


#: Columns of the CV table: header, key of a fold's best epoch, and for the mean row the
#: key whose mean MSE a PSNR column is computed from.
CV_COLUMNS = [
    ("train MSE", "train_mse", None),
    ("train MSE brain", "train_mse_brain", None),
    ("val MSE", "val_mse", None),
    ("val PSNR (dB)", "val_psnr", "val_mse"),
    ("const val MSE", "val_const_mse", None),
    ("val MSE brain", "val_mse_brain", None),
    ("val PSNR brain (dB)", "val_psnr_brain", "val_mse_brain"),
    ("const val MSE brain", "val_const_mse_brain", None),
]


def _cell(value: float, psnr_column: bool) -> str:
    return f"{value:.1f}" if psnr_column else f"{value:.4f}"


def write_cv_table(out: Path, target: str, results: list[dict[str, Any]]) -> None:
    """``cv_table.md`` and ``cv_table.csv``: MSE (normalised map) and PSNR at each fold's
    best epoch, over the slice and inside the brain, beside the constant predictor's
    (`MapErrors`), with mean and SD over the folds."""
    values = np.array([[float(r.get(key, math.nan)) for _, key, _ in CV_COLUMNS] for r in results])
    header = ["map", "fold", "best epoch", *(c[0] for c in CV_COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, (r, row) in enumerate(zip(results, values, strict=True)):
        cells = [_cell(v, c[2] is not None) for v, c in zip(row, CV_COLUMNS, strict=True)]
        lines.append(f"| {target.upper()} | {i} | {int(r['epoch'])} | " + " | ".join(cells) + " |")
    keys = [c[1] for c in CV_COLUMNS]
    mean_cells = []
    for j, (_, _, of) in enumerate(CV_COLUMNS):
        if of is None:
            mean_cells.append(f"{values[:, j].mean():.4f} ± {values[:, j].std():.4f}")
        else:
            mean_cells.append(f"{psnr(float(values[:, keys.index(of)].mean())):.1f}")
    lines.append(f"| {target.upper()} | mean ± SD | | " + " | ".join(mean_cells) + " |")
    with atomic_path(out / "cv_table.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    with atomic_path(out / "cv_table.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["map", "fold", "best_epoch", *keys])
        for i, (r, row) in enumerate(zip(results, values, strict=True)):
            w.writerow([target.upper(), i, int(r["epoch"]), *(f"{v:.6g}" for v in row)])
