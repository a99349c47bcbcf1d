"""A trained network as a model file (`ctpmaps.nn.weights`) with what made it."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..unet import UNet
from ..weights import save_model
from .config import TrainConfig

__all__ = ["export_model", "cohort_info"]

log = logging.getLogger(__name__)


def export_model(
    net: UNet, cfg: TrainConfig, frames: dict, path: Path, extra: dict[str, Any]
) -> None:
    """Write ``path.safetensors`` and ``path.json``: the network, its frames, the target
    source and the training settings, plus ``extra`` (metrics, command, cohort)."""
    save_model(
        path,
        net,
        target=cfg.target,
        frame_indices=frames["indices"],
        frame_times_s=frames["times"],
        dtype=getattr(torch, cfg.weights_dtype),
        extra={
            "target_source": cfg.target_source,
            "training": dict(asdict(cfg).items()),
            **extra,
        },
    )


def cohort_info(cohort) -> dict[str, Any]:
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
