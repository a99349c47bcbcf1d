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
    "HISTORY_FIELDS",
    "read_history",
    "write_history",
    "plot_learning_curve",
    "write_cv_table",
    "write_json",
]

#: Columns of ``fold-<i>/history.csv``.
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
