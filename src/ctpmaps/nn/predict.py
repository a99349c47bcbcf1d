"""Perfusion maps from trained U-Nets: one model per map, no AIF (``ctpmaps predict``).

Each model's metadata says which map it predicts, on which frames (T, by uniform stride
from frame 0) and in which physical range; `predict_maps` sub-samples the study's frames
the same way, normalises them, runs every slice, maps the [0, 1] output back to physical
units and returns `PerfusionMaps` in which maps without a model are NaN. Several models of
one map (trained on the same kind of target) form an ensemble: the map is the mean of
theirs, in physical units (each model on its own frames and grid). A model trained on
frames scaled to one input-function area (``enhancement_scale`` in its metadata,
`ctpmaps.nn.scale`) gets the study scaled the same way: its automatic AIF and VOF are
searched once (the one step that needs them).

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
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError, WeightsError
from ..io.study import Study
from ..perfusion.base import MAP_NAMES, UNITS, PerfusionMaps
from .dataset import AIR, pad_slices
from .grid import (
    brain_fraction,
    downsample_slices,
    grid_shape,
    training_pixel_mm,
    upsample_slices,
)
from .model_info import Validation, enhancement_reference, training_filter, validation
from .normalise import (
    denormalise_target,
    map_to_slices,
    normalise_frames,
    slices_to_map,
    subsample_frames,
)
from .scale import InputScale, input_scale, scaled
from .weights import FORMAT, load_model, model_paths

__all__ = [
    "LoadedModel",
    "WEIGHTS_ENV",
    "default_weights_dir",
    "ensembles",
    "find_weights",
    "input_scale_for",
    "load_models",
    "predict_maps",
    "predict_map",
    "resolve_device",
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
        """Map name (``cbv``, ``cbf``...)."""
        return self.meta["target"]

    @cached_property
    def pixel_mm(self) -> tuple[float, float] | None:
        """Pixel size ``(x, y)`` in mm of its training slices (`training_pixel_mm`)."""
        return training_pixel_mm(self.meta, self.path.name)

    @cached_property
    def filter_sigmas(self) -> tuple[float, float]:
        """Filter of its training frames, (spatial mm, range HU) (`training_filter`)."""
        return training_filter(self.meta, self.path.name)

    @property
    def enhancement_reference(self) -> float | None:
        """Input-function area (HU s) its inputs are scaled to, None: as they are."""
        return enhancement_reference(self.meta)

    @cached_property
    def validation(self) -> Validation:
        """What it was validated on (`ctpmaps.nn.model_info.validation`)."""
        return validation(self.meta, self.path.name)


def resolve_device(device: str | torch.device | None) -> str:
    """The torch device to run on: CUDA when present and nothing is asked, else as asked.

    Parameters
    ----------
    device : str, torch.device or None
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; None picks CUDA when available.

    Raises
    ------
    InputError
        Another device, or CUDA asked for on a machine without it (before any work).

    Examples
    --------
    >>> resolve_device("cpu")
    'cpu'
    """
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    name = str(device)
    if name.split(":", 1)[0] not in ("cpu", "cuda"):
        raise InputError("--device", f"expected cpu or cuda (cuda:N), got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(
            "--device", f"{name} asked for, but torch {torch.__version__} sees no CUDA device"
        )
    return name


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
    """Load and check models: one per map, or several (an ensemble, `predict_maps`
    averages their maps).

    Raises
    ------
    WeightsError
        Unreadable or mismatched files, the same file twice, or models of one map trained
        on different targets (``target_source``: the phantom's truth, NLR maps...), whose
        mean would estimate neither.
    """
    paths = find_weights(weights)
    seen = [p.resolve() for p in paths]
    twice = sorted({str(p) for p in paths if seen.count(p.resolve()) > 1})
    if twice:
        raise WeightsError(f"the same model given twice: {', '.join(twice)}")
    models = []
    for path in paths:
        net, meta = load_model(path, device=device)
        models.append(LoadedModel(net, meta, path))
    for target, members in ensembles(models).items():
        sources = {m.meta.get("target_source") for m in members}
        if len(sources) > 1:
            listed = ", ".join(f"{m.path} ({m.meta.get('target_source')})" for m in members)
            raise WeightsError(
                f"{target} models trained on different targets cannot be averaged: {listed}"
            )
        if len(members) > 1:  # said aloud: a folder may hold a model by mistake
            names = ", ".join(str(m.path) for m in members)
            log.warning("%s: the mean of %d models (%s)", target, len(members), names)
    return models


def ensembles(models: Sequence[LoadedModel]) -> dict[str, list[LoadedModel]]:
    """The models of each map, in the order given (several: an ensemble)."""
    out: dict[str, list[LoadedModel]] = {}
    for m in models:
        out.setdefault(m.target, []).append(m)
    return out


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


def _checked_mask(mask: np.ndarray | None, study: Study) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != study.shape:
        raise InputError("mask", f"expected shape {study.shape} like the study, got {mask.shape}")
    return mask


def _model_hw(study: Study, model: LoadedModel) -> tuple[int, int] | None:
    """Slice size ``(H, W)`` on the model's training grid, or None to keep the study's."""
    pixel = model.pixel_mm
    if pixel is None:
        return None
    nx, ny, _ = study.shape
    shape = grid_shape((nx, ny), study.spacing[:2], pixel)
    if shape is None:
        return None
    log.info(
        "%s: %d x %d slices of %.3f mm resampled to the model's %.3f mm (%d x %d) and back",
        model.path.name,
        nx,
        ny,
        study.spacing[0],
        pixel[0],
        *shape,
    )
    return shape[1], shape[0]


def _net_inputs(study: Study, z: slice, idx: np.ndarray, hw: tuple[int, int] | None):
    """Normalised inputs ``(b, T, h, w)`` of slices ``z``, on the model's grid if ``hw``."""
    hu = torch.from_numpy(
        np.ascontiguousarray(study.frames[:, :, z][..., idx].transpose(2, 3, 1, 0))
    )
    if hw is not None:
        hu = downsample_slices(hu, hw)
    return torch.from_numpy(normalise_frames(hu.numpy()))


@torch.no_grad()
def predict_map(
    study: Study,
    model: LoadedModel,
    *,
    mask: np.ndarray | None = None,
    device: str | torch.device = "cpu",
    batch: int = 4,
    resample: bool = True,
    scale: InputScale | None = None,
) -> np.ndarray:
    """One map of a study in physical units, shape (x, y, z) float32 (no mask applied).

    The study's frames should be preprocessed as the training inputs were (registered,
    filtered: `ctpmaps.preprocess.filter_study`). Slices whose pixel size differs from the
    model's training pixel size are resampled onto it and the map back
    (`ctpmaps.nn.grid`); ``mask`` (brain, (x, y, z)) then weights the up-sampling so that
    voxels at the brain's edge keep brain values. ``resample=False`` runs the network on
    the study's own grid (for comparison: what earlier versions did). A model with an
    ``enhancement_scale`` scales the study's enhancement first, by ``scale`` (the study's
    `input_scale`, found here when not given).
    """
    mask = _checked_mask(mask, study)
    reference = model.enhancement_reference
    if reference is not None:
        study = scaled(study, scale or input_scale(study, brain=mask), reference)
    idx = _frame_indices(study, model.meta, model.path)
    hw = _model_hw(study, model) if resample else None
    nx, ny, nz = study.shape
    masks = map_to_slices(mask) if mask is not None and hw is not None else None
    device = torch.device(device)
    net = model.net.to(device).eval()
    out = np.empty((nz, ny, nx), dtype=np.float32)
    step = max(1, int(batch))
    for z0 in range(0, nz, step):
        z = slice(z0, min(z0 + step, nz))
        x = _net_inputs(study, z, idx, hw)
        h, w = x.shape[-2:]
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            y = net(pad_slices(x, AIR).to(device))
        y = y.float()[:, :1, :h, :w].cpu()
        if hw is not None:
            weight = brain_fraction(masks[z], hw) if masks is not None else None
            y = upsample_slices(y, (ny, nx), weight)
        out[z] = y[:, 0].numpy()
    low, high = model.meta["value_range"]
    return slices_to_map(denormalise_target(out, model.target, value_range=(low, high)))


def predict_maps(
    study: Study,
    weights: str | Path | Sequence[str | Path] | Sequence[LoadedModel] | None = None,
    *,
    mask: np.ndarray | None = None,
    device: str | torch.device | None = None,
    batch: int = 4,
    resample: bool = True,
    scale: InputScale | None = None,
) -> PerfusionMaps:
    """Perfusion maps of a study from trained U-Nets.

    Parameters
    ----------
    study : Study
        Preprocessed (registered, filtered) HU frames ``(x, y, z, t)``, at least T frames
        for each model.
    weights : path, sequence of paths or of `LoadedModel`, optional
        Model files (``cbv.safetensors`` or ``cbv.json``) or folders of them, one model per
        map or several (an ensemble: the map is the mean of theirs); by default
        ``$CTPMAPS_WEIGHTS`` or the package's demo weights.
    mask : ndarray of bool, shape (x, y, z), optional
        Brain mask; maps are NaN outside it. None keeps every voxel: a model trained with
        its loss inside the brain only (``training.masked_loss``, e.g. the demo weights)
        says nothing outside it, and a warning says so.
    device : str or torch.device, optional
        CUDA when available by default.
    batch : int, optional
        Slices per forward pass.
    resample : bool, optional
        Resample slices onto each model's training pixel size and the maps back
        (`ctpmaps.nn.grid`; default); False uses the study's grid as it is.
    scale : InputScale, optional
        The study's input function (`ctpmaps.nn.scale.input_scale`) for models trained
        on scaled enhancement; found once here when one of them needs it.

    Returns
    -------
    PerfusionMaps
        ``method="cnn"`` (the registry's name); predicted maps in physical units (CBF
        mL/100 g/min, CBV mL/100 g, times in s), maps without a model all NaN.

    Examples
    --------
    >>> from ctpmaps.io import load_study                          # doctest: +SKIP
    >>> maps = predict_maps(load_study("MOL-001_Registered_Filtered_3mm_20HU"))  # doctest: +SKIP
    >>> maps.cbv.shape                                              # doctest: +SKIP
    (512, 512, 8)
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    mask = _checked_mask(mask, study)
    models = (
        list(weights)
        if isinstance(weights, Sequence)
        and not isinstance(weights, str)
        and weights
        and all(isinstance(m, LoadedModel) for m in weights)
        else load_models(weights, device=device)
    )
    maps = {name: np.full(study.shape, np.nan, dtype=np.float32) for name in MAP_NAMES}
    inside_only = [m.target for m in models if m.meta.get("training", {}).get("masked_loss")]
    if mask is None and inside_only:
        log.warning(
            "the %s model(s) were trained inside the brain only: without a brain mask their "
            "values outside it are not estimates of anything",
            ", ".join(inside_only),
        )
    if scale is None:
        scale = input_scale_for(study, models, mask=mask)
    for target, members in ensembles(models).items():
        t0 = time.perf_counter()
        values = np.zeros(study.shape, dtype=np.float64)
        for model in members:
            values += predict_map(
                study, model, mask=mask, device=device, batch=batch, resample=resample,
                scale=scale,
            )  # fmt: skip
        values = (values / len(members)).astype(np.float32)
        if mask is not None:
            values[~mask] = np.nan
        maps[target] = values
        log.info(
            "%s predicted in %.2f s%s",
            target,
            time.perf_counter() - t0,
            f" (mean of {len(members)} models)" if len(members) > 1 else "",
        )
    return PerfusionMaps(**maps, units=dict(UNITS), method="cnn")


def input_scale_for(
    study: Study, models: Sequence[LoadedModel], *, mask: np.ndarray | None = None
) -> InputScale | None:
    """The study's input function (`ctpmaps.nn.scale.input_scale`, ``mask`` its brain)
    when one of ``models`` was trained on scaled enhancement, else None (nothing searched)."""
    if any(m.enhancement_reference is not None for m in models):
        return input_scale(study, brain=mask)
    return None


def predicted(maps: PerfusionMaps) -> list[str]:
    """Names of the maps that hold a prediction (not all NaN)."""
    return [k for k, v in maps.as_dict().items() if np.isfinite(v).any()]
