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
    away_from_bone,
    curve_from_mask,
    default_aif_voxels,
    find_aif,
    find_vof,
    partial_volume_scale,
    read_curve_csv,
    tissue_spill,
)
from .base import PerfusionMaps, voxel_curves
from .boxnlr import BoxNLRModel
from .concentration import (
    bolus_arrival_frame,
    check_baseline_frames,
    enhancement,
    noise_sd,
    rebaseline,
)
from .methods import MODEL_METHODS, method_info

__all__ = ["MapsResult", "automatic_input_functions", "compute_maps"]

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
        ``parameters["quality"]`` (``fit_at_bound_fraction``, and per bound
        ``fit_at_bound_mtt_min_fraction``, ``..._mtt_max_...``, ``..._delay_max_...``;
        for the NLR also ``neighbourhood_mtt_fraction``, the share whose MTT and residue
        shape are their neighbourhood's, `BoxNLRFit.neighbourhood_mtt`).
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
    baseline_frames: int | None = None,
    hematocrit_factor: float = HEMATOCRIT_FACTOR,
    density: float = BRAIN_DENSITY,
    neighbourhood_mtt: bool = False,
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
        Manual VOF mask; the AIF is then scaled to its area, once the tissue that shares
        the AIF's voxels is removed (`ctpmaps.perfusion.aif.tissue_spill`).
    baseline_frames : int, optional
        Pre-bolus frames (1 to t) whose mean is every voxel's baseline. By default the
        frames before the earliest bolus arrival of the study: the AIF's own (found on its
        HU curve, or on the CSV curve), or the brain's mean curve's if that comes first.
        The same window serves the AIF and the tissue.
    hematocrit_factor, density : float
        ``kappa`` and ``rho`` (see `ctpmaps.physics`).
    neighbourhood_mtt : bool
        ``nlr`` only: every voxel takes its neighbourhood's MTT and residue shape unless
        its curve rejects them (`ctpmaps.perfusion.BoxNLRModel`); recorded in
        ``parameters``.
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
        Not a model-based method, both an AIF mask and an AIF CSV, a mask that does not
        fit, ``baseline_frames`` outside 1 to t, ``neighbourhood_mtt`` with another method
        than ``nlr``.
    FitError
        No contrast bolus, no artery found.
    """
    info = method_info(method)
    if not info.model_based:
        raise InputError(
            "method", f"expected a model-based method ({', '.join(MODEL_METHODS)}), got {method!r}"
        )
    check_neighbourhood_mtt(method, neighbourhood_mtt)
    if aif_mask is not None and aif_csv is not None:
        raise InputError("aif", "give either an AIF mask or an AIF CSV, not both")
    if baseline_frames is not None:
        baseline_frames = check_baseline_frames(baseline_frames, study.n_frames)
    src = study if input_study is None else input_study
    if src.frames.shape != study.frames.shape:
        raise InputError(
            "input_study", f"expected frames of shape {study.frames.shape}, got {src.frames.shape}"
        )
    clock = Stopwatch(progress)
    with clock.stage("brain_mask"):
        if mask is None:
            brain = ct_brain_mask(study.frames, study.spacing)
        else:
            brain = mask if isinstance(mask, np.ndarray) else read_mask(mask, study)
        if not brain.any():
            raise InputError("mask", "the brain mask is empty: nothing to fit")

    with clock.stage("input_functions"):
        aif, vof, n_base, base_source, src_enh = _input_functions(
            src, study, brain, aif_mask, aif_csv, vof_mask, baseline_frames
        )
        if src is study:
            enh = src_enh
        else:
            del src_enh
            enh = enhancement(study.frames, study.times, n_baseline=n_base)

    with clock.stage("deconvolution"):
        options = {"neighbourhood_mtt": True} if neighbourhood_mtt else {}
        model = info.model(
            aif.curve, study.times, hematocrit_factor=hematocrit_factor, density=density,
            **options,
        )  # fmt: skip
        curves, layout = voxel_curves(enh, brain, model.n_frames)
        fit = model.fit_gathered(curves, layout, spacing=study.spacing)
        maps = fit.maps()
        maps.method = method
        if info.tmax_from is not None:  # the Tmax of another method's residue
            other = method_info(info.tmax_from).model(
                aif.curve, study.times, hematocrit_factor=hematocrit_factor, density=density
            )
            maps.tmax = other.fit_gathered(curves, layout).tmax
        del curves
    hits = fit.bound_hits() if hasattr(fit, "bound_hits") else {}
    flags = {"fit_at_bound": np.logical_or.reduce(list(hits.values()))} if hits else {}
    # the NLR's voxels whose MTT is their neighbourhood's: a share in quality, not a flag
    shared = (
        {"neighbourhood_mtt": fit.neighbourhood_mtt()} if hasattr(fit, "neighbourhood_mtt") else {}
    )
    params = {
        "method": method,
        "tmax_method": info.tmax_from or method,
        "hematocrit_factor": hematocrit_factor,
        "density": density,
        "neighbourhood_mtt": bool(neighbourhood_mtt),
        "baseline_frames": n_base,
        "baseline_end_s": float(study.times[n_base - 1]),
        "baseline_source": base_source,
        "aif_source": aif.source,
        "aif_scale": aif.scale,
        "aif_tissue_fraction": aif.tissue_fraction,
        "aif_voxels": len(aif.voxels),
        "vof_source": vof.source if vof else None,
        "input_function_notes": aif.notes + (vof.notes if vof else []),
        "quality": _quality(study, brain, n_base, maps, flags | shared, enh, hits),
    }
    return MapsResult(maps, brain, n_base, aif, vof, params, clock.timings, flags)


def automatic_input_functions(
    study: Study, *, brain: np.ndarray | None = None
) -> tuple[InputFunction, InputFunction | None, int]:
    """The automatic AIF and VOF of a study and its baseline frames, as `compute_maps`
    finds them (no deconvolution).

    Parameters
    ----------
    study : Study
        HU frames (x, y, z, t).
    brain : ndarray (x, y, z) bool, optional
        Brain mask (its mean curve times the bolus); the automatic CT brain mask by default.

    Returns
    -------
    aif : InputFunction
        Enhancement (HU) scaled to the VOF's area, the tissue in its voxels removed.
    vof : InputFunction or None
    baseline_frames : int

    Raises
    ------
    FitError
        No contrast bolus, no artery or no vein found.
    """
    if brain is None:
        brain = ct_brain_mask(study.frames, study.spacing)
    aif, vof, n_base, _, _ = _input_functions(study, study, brain, None, None, None, None)
    return aif, vof, n_base


def check_neighbourhood_mtt(method: str, neighbourhood_mtt: bool) -> None:
    """Refuse ``neighbourhood_mtt`` for a method without it (`InputError`): only the NLR's
    model (`BoxNLRModel`) takes its neighbourhood's MTT."""
    if neighbourhood_mtt and method_info(method).model is not BoxNLRModel:
        raise InputError("neighbourhood_mtt", f"only the nlr method has it, not {method}")


def _quality(study: Study, brain, n_base: int, maps: PerfusionMaps, flags, enh, hits) -> dict:
    """Numbers that say whether the maps can be trusted (`ctpmaps.pipeline.quality`)."""
    n = max(int(brain.sum()), 1)
    mtt = maps.mtt[brain]
    noise = noise_sd(study.frames, n_base, mask=brain)
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
    for name, mask in hits.items():  # which bound, for the caveat and the report
        out[f"fit_at_bound_{name}_fraction"] = float(np.count_nonzero(mask & brain) / n)
    return out


def _as_mask(m: np.ndarray | str | Path, study: Study) -> tuple[np.ndarray, str]:
    if isinstance(m, np.ndarray):
        return m.astype(bool), "array"
    return read_mask(m, study), str(m)


def _input_functions(src, study, brain, aif_mask, aif_csv, vof_mask, n_given):
    """The AIF (and VOF) and the baseline window, from ``src``'s frames.

    Returns the input functions, the number of baseline frames, what set it and ``src``'s
    enhancement with that baseline. The automatic AIF is searched on enhancement with the
    brain's baseline (its arrival is not known yet); then every curve is moved to the
    window that ends at the AIF's own arrival (`rebaseline`).
    """
    times = src.times
    # The brain's mean curve, once: bolus_arrival_frame would average a float64 copy of
    # every brain curve (380 MB at 512) to the same values.
    brain_mean = study.frames[brain].mean(axis=0, dtype=np.float64)
    n_brain = bolus_arrival_frame(brain_mean, times) + 1
    n0 = n_given or n_brain
    enh = enhancement(src.frames, times, n_baseline=n0)
    region = None
    if aif_csv is not None:
        aif = read_curve_csv(aif_csv, times)  # enhancement already: used as given
        arrival = bolus_arrival_frame(aif.curve, times)
    else:
        if aif_mask is not None:
            m, name = _as_mask(aif_mask, src)
            aif = curve_from_mask(enh, times, m, kind="aif", source=name)
        else:
            # Where the mean brain curve peaks (the baseline does not move it).
            tissue_ttp = float(times[np.argmax(brain_mean)])
            unenh = unenhanced(src.frames, n0)
            region = intracranial_mask(unenh, study.spacing)
            n_vox = default_aif_voxels(src.spacing)
            arteries = away_from_bone(region, unenh, study.spacing)
            aif = find_aif(enh, times, arteries, n_voxels=n_vox, tissue_ttp=tissue_ttp)
        arrival = bolus_arrival_frame(src.frames[tuple(aif.voxels.T)], times)
    if n_given is not None:
        n_base, source = int(n_given), "manual"
    elif arrival + 1 <= n_brain:
        n_base, source = arrival + 1, "aif arrival"
    else:  # an AIF later than the brain is no artery's: keep the earliest arrival
        n_base, source = n_brain, "brain arrival"
    rebaseline(enh, src.frames, n0, n_base)
    if aif.voxels.size:
        aif.curve = enh[tuple(aif.voxels.T)].mean(axis=0)
    log.info("baseline: %d frames (to %.1f s, %s)", n_base, times[n_base - 1], source)
    if vof_mask is not None:
        m, name = _as_mask(vof_mask, src)
        vof = curve_from_mask(enh, times, m, kind="vof", source=name)
    elif region is not None:
        vof = find_vof(enh, times, region, aif)
    else:
        vof = None  # a manual AIF is used as given
    if vof is not None:
        if aif.voxels.size:  # a CSV's AIF has no voxels, hence no tissue in them
            if region is None:  # manual masks: the same region as the automatic search's
                region = intracranial_mask(unenhanced(src.frames, n0), study.spacing)
            spill = tissue_spill(aif, vof, enh, region, study.spacing)
            if spill.fraction > 0:
                aif.curve = (aif.curve - spill.fraction * spill.tissue).astype(aif.curve.dtype)
                aif.tissue_fraction = spill.fraction
                log.info("AIF: %.0f %% of its voxels is tissue (%d voxels around them)",
                         100 * spill.fraction, spill.n_voxels)  # fmt: skip
        k = partial_volume_scale(aif, vof)
        if not 0.2 < k < 20:
            log.warning("AIF partial-volume scale %.2f is implausible; check the AIF and VOF", k)
        aif.curve = aif.curve * k
        aif.scale = k
    return aif, vof, n_base, source, enh
