"""The U-Net's maps stage of the chain (``run --method cnn``, ``ctpmaps predict``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..io.study import Study
from ..perfusion.maps import MapsResult
from ..preprocess.brainmask import ct_brain_mask
from ..preprocess.unenhanced import DEFAULT_BASELINE_FRAMES

__all__ = ["load_network", "cnn_maps"]


def load_network(weights: str | Path | Sequence[str | Path] | None, device: str | None) -> list:
    """The U-Net models (one per map, or several: an ensemble) from files or folders,
    ``$CTPMAPS_WEIGHTS`` or the shipped demo weights; checked against their metadata
    (`ctpmaps.nn.load_models`).

    Raises
    ------
    WeightsError
        Missing, corrupt or inconsistent weights.
    """
    from ..nn.predict import load_models

    if isinstance(weights, (str, Path)):
        weights = [weights]
    return load_models(list(weights) if weights else None, device=device or "cpu")


def cnn_maps(
    study: Study, models: list, *, mask: np.ndarray | bool | None = None, device: str | None = None
) -> MapsResult:
    """Maps of a preprocessed study from trained U-Nets (no AIF; models trained on one
    input-function area, `ctpmaps.nn.scale`, take the study's automatic one's area).

    Parameters
    ----------
    study : Study
        Registered, filtered HU frames (as the networks' training frames).
    models : list
        From `load_network`.
    mask : ndarray (x, y, z) bool, False or None
        Brain mask; None for the automatic CT brain mask; False keeps every voxel.
    device : str, optional
        ``cpu`` or ``cuda`` (CUDA when available by default).
    """
    from ..nn import validation_caveat
    from ..nn.predict import ensembles, input_scale_for, predict_maps

    if mask is None:
        brain = ct_brain_mask(study.frames, study.spacing)
    elif mask is False:
        brain = np.ones(study.shape, bool)
    else:
        brain = np.asarray(mask, bool)
    t0 = time.perf_counter()
    # models trained on one bolus area: the study's, searched once and recorded
    scale = input_scale_for(study, models, mask=None if mask is False else brain)
    maps = predict_maps(
        study, models, mask=None if mask is False else brain, device=device, scale=scale
    )
    params = {
        "method": "cnn",
        "device": device,
        # one record per map; an ensemble's holds its members' records (its map is their mean)
        "models": {
            target: _record(members[0])
            if len(members) == 1
            else {
                "ensemble": "mean of the members' maps",
                "members": [_record(m) for m in members],
            }
            for target, members in ensembles(models).items()
        },
        "validation_caveat": validation_caveat(models),
        "input_function": scale.record() if scale is not None else None,
    }
    return MapsResult(
        maps, brain, scale.baseline_frames if scale else DEFAULT_BASELINE_FRAMES, None, None,
        params,
        {"unet": time.perf_counter() - t0},
    )  # fmt: skip


def _record(m) -> dict:
    """What run.json says of one model (`ctpmaps.nn.LoadedModel`)."""
    return {
        "enhancement_scale_hu_s": m.enhancement_reference,
        "file": str(m.path),
        "n_frames": m.meta["n_frames"],
        "value_range": m.meta["value_range"],
        "target_source": m.meta.get("target_source"),
        "architecture": m.meta["architecture"],
        "command": m.meta.get("command"),
        "test_metrics": (m.meta.get("metrics") or {}).get("test"),
        "validated_on": m.validation.on,
        "pixel_mm": m.pixel_mm,
        "filter_sigmas": list(m.filter_sigmas),
    }
