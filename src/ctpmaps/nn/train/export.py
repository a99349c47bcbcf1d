"""A trained network as a model file (`ctpmaps.nn.weights`) with what made it."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..dataset import SliceDataset
from ..unet import UNet
from ..weights import save_model
from .config import TrainConfig

__all__ = ["export_model", "grid_of", "cohort_info"]

log = logging.getLogger(__name__)


def export_model(
    net: UNet,
    cfg: TrainConfig,
    frames: dict,
    path: Path,
    *,
    grid: dict[str, Any],
    extra: dict[str, Any],
) -> None:
    """Write ``path.safetensors`` and ``path.json``: the network, its frames, the grid
    (``pixel_mm``, ``matrix``: `grid_of`) and filter of its training slices, the target
    source and the training settings, plus ``extra`` (metrics, command, cohort...)."""
    save_model(
        path,
        net,
        target=cfg.target,
        frame_indices=frames["indices"],
        frame_times_s=frames["times"],
        pixel_mm=grid["pixel_mm"],
        matrix=grid["matrix"],
        filter_sigmas=cfg.filter_sigmas,
        enhancement_scale=cfg.enhancement_reference,
        dtype=getattr(torch, cfg.weights_dtype),
        extra={
            "target_source": cfg.target_source,
            "training": dict(asdict(cfg).items()),
            **extra,
        },
    )


def grid_of(ds: SliceDataset) -> dict[str, Any]:
    """``pixel_mm`` and ``matrix`` (x, y) of a dataset's slices (before padding)."""
    h, w = ds.hw
    return {"pixel_mm": list(ds.pixel_mm), "matrix": [w, h]}


def cohort_info(cohort) -> dict[str, Any]:
    """What the model was trained on: folder, layout, kind (``phantom`` or ``patients``),
    patients, and a phantom's seed and matrix.

    A UniToBrain-layout folder written by the phantom (``cohort.json`` in it or its parent)
    is a phantom cohort."""
    info: dict[str, Any] = {
        "path": str(cohort.root),
        "layout": cohort.layout,
        "n_patients": len(cohort.patients),
    }
    manifests = [cohort.root / "cohort.json", cohort.root.parent / "cohort.json"]
    manifest = next((m for m in manifests if m.is_file()), None)
    if manifest is not None:
        try:
            m = json.loads(manifest.read_text())
            info["phantom_seed"] = m["seed"]
            info["phantom_matrix"] = m["config"]["acquisition"]["matrix"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            log.warning("%s: not a phantom cohort manifest (%s)", manifest, exc)
    phantom = cohort.layout == "phantom" or "phantom_seed" in info
    info["kind"] = "phantom" if phantom else "patients"
    return info
