"""Perfusion maps from trained U-Nets: one model per map, no AIF (``ctpmaps predict``).

Each model's metadata says which map it predicts, on which frames (T, by uniform stride
from frame 0) and in which physical range; `predict_maps` sub-samples the study's frames
the same way, normalises them, runs every slice, maps the [0, 1] output back to physical
units and returns `PerfusionMaps` in which maps without a model are NaN.

Weights are found offline: explicit files or folders, else ``$CTPMAPS_WEIGHTS``, else the
demo weights shipped in the package (``ctpmaps/nn/weights``: small models trained on a
phantom cohort, see ``docs/unet.md``; not for clinical use).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError, WeightsError
from ..io.study import Study
from ..perfusion.base import MAP_NAMES, UNITS, PerfusionMaps
from .dataset import AIR, pad_slices
from .normalise import denormalise_target, frames_to_slices, slices_to_map, subsample_frames
from .weights import FORMAT, load_model, model_paths

__all__ = [
    "LoadedModel",
    "WEIGHTS_ENV",
    "default_weights_dir",
    "find_weights",
    "load_models",
    "predict_maps",
    "predict_map",
]

log = logging.getLogger(__name__)

#: Environment variable naming a folder (or files, separated by ``os.pathsep``) of weights.
WEIGHTS_ENV = "CTPMAPS_WEIGHTS"


@dataclass
class LoadedModel:
    """A network with its metadata and the file it came from."""

    net: torch.nn.Module
    meta: dict[str, Any]
    path: Path

    @property
    def target(self) -> str:
        return self.meta["target"]


def default_weights_dir() -> Path:
    """The package's demo weights folder."""
    return Path(str(resources.files("ctpmaps.nn") / "weights"))


def _models_in_folder(folder: Path) -> list[Path]:
    found = []
    for meta in sorted(folder.glob("*.json")):
        weights = model_paths(meta)[0]
        if weights.is_file() and f'"format": "{FORMAT}"' in meta.read_text()[:4096]:
            found.append(weights)
    if not found:
        raise WeightsError(f"{folder}: no model files (<map>.safetensors with <map>.json)")
    return found


def find_weights(spec: str | Path | Sequence[str | Path] | None = None) -> list[Path]:
    """Resolve weights files: files and folders given, else ``$CTPMAPS_WEIGHTS``, else the
    package's demo weights.

    Raises
    ------
    WeightsError
        A path that does not exist, or a folder without models.
    """
    if spec is None:
        env = os.environ.get(WEIGHTS_ENV)
        spec = env.split(os.pathsep) if env else [default_weights_dir()]
    items = [spec] if isinstance(spec, str | Path) else list(spec)
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            paths.extend(_models_in_folder(p))
        elif model_paths(p)[0].is_file() or model_paths(p)[1].is_file():
            paths.append(model_paths(p)[0])
        else:
            raise WeightsError(f"{p}: no such weights file or folder")
    return paths


def load_models(
    weights: str | Path | Sequence[str | Path] | None = None, *, device: str | torch.device = "cpu"
) -> list[LoadedModel]:
    """Load and check models (one per map).

    Raises
    ------
    WeightsError
        Unreadable or mismatched files, or two models for the same map.
    """
    models = []
    for path in find_weights(weights):
        net, meta = load_model(path, device=device)
        models.append(LoadedModel(net, meta, path))
    targets = [m.target for m in models]
    dup = sorted({t for t in targets if targets.count(t) > 1})
    if dup:
        files = [str(m.path) for m in models if m.target in dup]
        raise WeightsError(f"two models for {', '.join(dup)}: {', '.join(files)}")
    return models


def _frame_indices(study: Study, meta: dict[str, Any], source: Path) -> np.ndarray:
    t = int(meta["n_frames"])
    if study.n_frames < t:
        raise InputError(
            "study", f"{study.n_frames} frames, the model {source.name} needs at least {t}"
        )
    idx = subsample_frames(study.n_frames, t)
    trained = np.asarray(meta.get("frame_times_s") or [], dtype=float)
    if trained.size == t:
        step = float(np.median(np.diff(trained))) if t > 1 else 1.0
        off = float(np.max(np.abs(study.times[idx] - trained)))
        if off > max(0.5, step / 2):
            log.warning(
                "%s: frame times differ from training by up to %.1f s (protocol differs): "
                "maps may be biased",
                source.name,
                off,
            )
    return idx


@torch.no_grad()
def predict_map(
    study: Study, model: LoadedModel, *, device: str | torch.device = "cpu", batch: int = 4
) -> np.ndarray:
    """One map of a study in physical units, shape (x, y, z) float32 (no mask applied).

    The study's frames should be preprocessed as the training inputs were (registered,
    filtered: `ctpmaps.preprocess.filter_study`).
    """
    idx = _frame_indices(study, model.meta, model.path)
    slices = torch.from_numpy(frames_to_slices(study.frames, idx))  # (z, T, H, W)
    h, w = slices.shape[-2:]
    device = torch.device(device)
    net = model.net.to(device).eval()
    out = np.empty((slices.shape[0], h, w), dtype=np.float32)
    amp = device.type == "cuda"
    for start in range(0, slices.shape[0], max(1, int(batch))):
        x = pad_slices(slices[start : start + batch], AIR).to(device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            y = net(x)
        out[start : start + batch] = y.float()[:, 0, :h, :w].cpu().numpy()
    low, high = model.meta["value_range"]
    return slices_to_map(denormalise_target(out, model.target, value_range=(low, high)))


def predict_maps(
    study: Study,
    weights: str | Path | Sequence[str | Path] | Sequence[LoadedModel] | None = None,
    *,
    mask: np.ndarray | None = None,
    device: str | torch.device | None = None,
    batch: int = 4,
) -> PerfusionMaps:
    """Perfusion maps of a study from trained U-Nets.

    Parameters
    ----------
    study : Study
        Preprocessed (registered, filtered) HU frames ``(x, y, z, t)``, at least T frames
        for each model.
    weights : path, sequence of paths or of `LoadedModel`, optional
        Model files (``cbv.safetensors`` or ``cbv.json``) or folders of them, one model per
        map; by default ``$CTPMAPS_WEIGHTS`` or the package's demo weights.
    mask : ndarray of bool, shape (x, y, z), optional
        Brain mask; maps are NaN outside it. None keeps every voxel.
    device : str or torch.device, optional
        CUDA when available by default.
    batch : int, optional
        Slices per forward pass.

    Returns
    -------
    PerfusionMaps
        ``method="unet"``; predicted maps in physical units (CBF mL/100 g/min, CBV
        mL/100 g, times in s), maps without a model all NaN.

    Examples
    --------
    >>> from ctpmaps.io import load_study                          # doctest: +SKIP
    >>> maps = predict_maps(load_study("MOL-001_Registered_Filtered_3mm_20HU"))  # doctest: +SKIP
    >>> maps.cbv.shape                                              # doctest: +SKIP
    (512, 512, 8)
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != study.shape:
            raise InputError(
                "mask", f"expected shape {study.shape} like the study, got {mask.shape}"
            )
    models = (
        list(weights)
        if isinstance(weights, Sequence)
        and not isinstance(weights, str)
        and weights
        and all(isinstance(m, LoadedModel) for m in weights)
        else load_models(weights, device=device)
    )
    maps = {name: np.full(study.shape, np.nan, dtype=np.float32) for name in MAP_NAMES}
    for model in models:
        t0 = time.perf_counter()
        values = predict_map(study, model, device=device, batch=batch)
        if mask is not None:
            values[~mask] = np.nan
        maps[model.target] = values
        log.info("%s predicted in %.2f s", model.target, time.perf_counter() - t0)
    return PerfusionMaps(**maps, units=dict(UNITS), method="unet")


def predicted(maps: PerfusionMaps) -> list[str]:
    """Names of the maps that hold a prediction (not all NaN)."""
    return [k for k, v in maps.as_dict().items() if np.isfinite(v).any()]
