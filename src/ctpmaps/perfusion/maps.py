"""Perfusion maps of a study in one call: brain mask, pre-bolus baseline, input functions
and the deconvolution of every brain voxel (`compute_maps`).

This is the model-based half of the chain; `ctpmaps.pipeline` runs it after the
preprocessing and before the lesions, and the U-Net (`ctpmaps.nn`) is its data-driven twin.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..clock import Progress, Stopwatch
from ..errors import InputError
from ..io.masks import read_mask
from ..io.study import Study
from ..physics import BRAIN_DENSITY, HEMATOCRIT_FACTOR
from ..preprocess.brainmask import ct_brain_mask, intracranial_mask
from ..preprocess.unenhanced import unenhanced
from .aif import (
    InputFunction,
    curve_from_mask,
    default_aif_voxels,
    find_aif,
    find_vof,
    partial_volume_scale,
    read_curve_csv,
)
from .base import PerfusionMaps
from .concentration import bolus_arrival_frame, enhancement, noise_sd
from .methods import MODEL_METHODS, method_info

__all__ = ["MapsResult", "compute_maps"]

log = logging.getLogger(__name__)


@dataclass
class MapsResult:
    """Perfusion maps of a study and how they were made (model-based or the U-Net).

    Attributes
    ----------
    maps : PerfusionMaps
        CBF (mL/100 g/min), CBV (mL/100 g), MTT, TTP, Tmax, delay (s); NaN outside ``brain``.
    brain : ndarray (x, y, z) bool
        The voxels fitted.
    baseline_frames : int
        Pre-bolus frames (the unenhanced image is their mean: `ctpmaps.preprocess.unenhanced`).
    aif, vof : InputFunction or None
        Arterial input (scaled as used) and venous output; None for the U-Net.
    parameters : dict
        Everything the maps depend on, JSON-ready (method, factors, input functions ...).
    timings_s : dict
        Seconds per step.
    flags : dict of str to ndarray (x, y, z) bool
        Voxels whose values are not to be trusted, by reason (``fit_at_bound``: the fit
        ended on a bound of the model); their share of the brain is in
        ``parameters["quality"]``.
    """

    maps: PerfusionMaps
    brain: np.ndarray
    baseline_frames: int
    aif: InputFunction | None = None
    vof: InputFunction | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    flags: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def method(self) -> str:
        """The registered method that made the maps (`ctpmaps.perfusion.METHODS`)."""
        return self.maps.method


def compute_maps(
    study: Study,
    *,
    method: str = "nlr",
    mask: np.ndarray | str | Path | None = None,
    aif_mask: np.ndarray | str | Path | None = None,
    aif_csv: str | Path | None = None,
    vof_mask: np.ndarray | str | Path | None = None,
    hematocrit_factor: float = HEMATOCRIT_FACTOR,
    density: float = BRAIN_DENSITY,
    input_study: Study | None = None,
    progress: Progress | None = None,
) -> MapsResult:
    """Perfusion maps of a study, on its frames as given.

    Parameters
    ----------
    study : Study
        HU frames (x, y, z, t) and times.
    method : {"nlr", "ssvd", "bsvd", "osvd"}
        A model-based method of `ctpmaps.perfusion.METHODS`.
    mask : array or NIfTI path, optional
        Voxels to fit; the automatic CT brain mask by default.
    aif_mask, aif_csv : optional
        A manual AIF (mask of arterial voxels, or ``time_s, hu`` CSV of enhancement); used
        as given unless ``vof_mask`` is given too. Automatic by default.
    vof_mask : optional
        Manual VOF mask; the AIF is then scaled to its first-pass area.
    hematocrit_factor, density : float
        ``kappa`` and ``rho`` (see `ctpmaps.physics`).
    input_study : Study, optional
        Frames on which to measure the AIF and VOF when ``study`` was filtered: a spatial
        filter blurs small arteries into their surroundings, so the input functions are
        best taken before it (same grid and times). ``study`` itself by default.
    progress : callable, optional
        ``progress(step, None)`` as each step starts, ``progress(step, seconds)`` as it
        ends (`ctpmaps.clock.Progress`): ``brain_mask``, ``input_functions``,
        ``deconvolution``.

    Returns
    -------
    MapsResult
        Maps in mL/100 g/min (CBF), mL/100 g (CBV) and s (MTT, TTP, Tmax, delay).

    Raises
    ------
    InputError
        Not a model-based method, both an AIF mask and an AIF CSV, a mask that does not fit.
    FitError
        No contrast bolus, no artery found.
    """
    info = method_info(method)
    if not info.model_based:
        raise InputError(
            "method", f"expected a model-based method ({', '.join(MODEL_METHODS)}), got {method!r}"
        )
    if aif_mask is not None and aif_csv is not None:
        raise InputError("aif", "give either an AIF mask or an AIF CSV, not both")
    clock = Stopwatch(progress)
    with clock.stage("brain_mask"):
        if mask is None:
            brain = ct_brain_mask(study.frames, study.spacing)
        else:
            brain = mask if isinstance(mask, np.ndarray) else read_mask(mask, study)
        if not brain.any():
            raise InputError("mask", "the brain mask is empty: nothing to fit")
        n_base = bolus_arrival_frame(study.frames[brain], study.times) + 1
        enh = enhancement(study.frames, study.times, n_baseline=n_base)

    with clock.stage("input_functions"):
        src = study if input_study is None else input_study
        if src.frames.shape != study.frames.shape:
            raise InputError(
                "input_study",
                f"expected frames of shape {study.frames.shape}, got {src.frames.shape}",
            )
        src_enh = enh if src is study else enhancement(src.frames, src.times, n_baseline=n_base)
        tissue_ttp = float(study.times[np.argmax(enh[brain].mean(axis=0))])
        region = intracranial_mask(unenhanced(src.frames), study.spacing)
        aif, vof = _input_functions(src, src_enh, region, aif_mask, aif_csv, vof_mask, tissue_ttp)
        del src_enh

    with clock.stage("deconvolution"):
        model = info.model(
            aif.curve, study.times, hematocrit_factor=hematocrit_factor, density=density
        )
        fit = model.fit(enh, mask=brain)
        maps = fit.maps()
        maps.method = method
    flags = {"fit_at_bound": fit.at_bounds()} if hasattr(fit, "at_bounds") else {}
    params = {
        "method": method,
        "hematocrit_factor": hematocrit_factor,
        "density": density,
        "baseline_frames": n_base,
        "aif_source": aif.source,
        "aif_scale": aif.scale,
        "aif_voxels": len(aif.voxels),
        "vof_source": vof.source if vof else None,
        "quality": _quality(study, brain, n_base, maps, flags, enh),
    }
    return MapsResult(maps, brain, n_base, aif, vof, params, clock.timings, flags)


def _quality(study: Study, brain, n_base: int, maps: PerfusionMaps, flags, enh) -> dict:
    """Numbers that say whether the maps can be trusted (`ctpmaps.pipeline.quality`)."""
    n = max(int(brain.sum()), 1)
    mtt = maps.mtt[brain]
    noise = noise_sd(study.frames[brain], n_base)
    peak = float(enh[brain].mean(axis=0, dtype=np.float64).max())
    out = {
        "noise_hu": noise,
        "tissue_peak_hu": peak,
        "contrast_to_noise": peak / noise if noise > 0 else float("inf"),
        "frame_interval_s": study.frame_interval,
        "mtt_below_frame_interval_fraction": float(
            np.count_nonzero(mtt < study.frame_interval) / n
        ),
        "mtt_below_1s_fraction": float(np.count_nonzero(mtt < 1.0) / n),
    }
    for name, mask in flags.items():
        out[f"{name}_fraction"] = float(np.count_nonzero(mask & brain) / n)
    return out


def _as_mask(m: np.ndarray | str | Path, study: Study) -> tuple[np.ndarray, str]:
    if isinstance(m, np.ndarray):
        return m.astype(bool), "array"
    return read_mask(m, study), str(m)


def _input_functions(study, enh, region, aif_mask, aif_csv, vof_mask, tissue_ttp):
    times = study.times
    if aif_csv is not None:
        aif = read_curve_csv(aif_csv, times)
    elif aif_mask is not None:
        m, name = _as_mask(aif_mask, study)
        aif = curve_from_mask(enh, times, m, kind="aif", source=name)
    else:
        aif = find_aif(
            enh, times, region, n_voxels=default_aif_voxels(study.spacing), tissue_ttp=tissue_ttp
        )
    manual = aif.source != "automatic"
    if vof_mask is not None:
        m, name = _as_mask(vof_mask, study)
        vof = curve_from_mask(enh, times, m, kind="vof", source=name)
    elif not manual:
        vof = find_vof(enh, times, region, aif)
    else:
        vof = None  # a manual AIF is used as given
    if vof is not None:
        k = partial_volume_scale(aif, vof)
        if not 0.2 < k < 20:
            log.warning("AIF partial-volume scale %.2f is implausible; check the AIF and VOF", k)
        aif.curve = aif.curve * k
        aif.scale = k
    return aif, vof
