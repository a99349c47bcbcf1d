"""Forward simulation of one phantom patient: known maps → scanner-like HU frames.

The steps follow the data: a head (`ctpmaps.phantom.head`: pose, anatomy, vessels), a
forward model (`ctpmaps.phantom.heterogeneous` by default, `ctpmaps.phantom.classic` as a
preset) that gives the enhancement and the truth, then the acquisition: unenhanced image,
rigid motion (`ctpmaps.phantom.motion`) and CT noise (`ctpmaps.phantom.noise`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..io.study import Study
from ..physics import MAP_UNITS
from .classic import simulate_classic
from .config import PhantomConfig
from .head import BASELINE_HU, HEMISPHERES, Head, build_head
from .heterogeneous import simulate_heterogeneous
from .motion import apply_motion, rigid_motion
from .noise import add_ct_noise, noise_sigma_on_grid
from .truth import RESIDUE_LABELS, ModelOutput, PhantomStudy, Truth, residue_labels

__all__ = ["Truth", "PhantomStudy", "simulate_patient", "BASELINE_HU", "noise_sigma_on_grid"]

log = logging.getLogger(__name__)

_MODELS = {"heterogeneous": simulate_heterogeneous, "classic": simulate_classic}


def simulate_patient(
    config: PhantomConfig | None = None,
    *,
    seed: int | np.random.Generator = 0,
    normal: bool | None = None,
    residue_shape: str | None = None,
    noise: bool = True,
    keep_noise_free: bool = False,
    patient_id: str = "PHANTOM-000",
) -> PhantomStudy:
    """Simulate one CTP study with known perfusion.

    Parameters
    ----------
    config : PhantomConfig, optional
        Cohort settings (model, acquisition, tissue values, lesion ranges); defaults to the
        heterogeneous model and the seed protocol at 512 x 512.
        ``PhantomConfig(model="classic")`` gives the earlier phantom.
    seed : int or numpy.random.Generator
        Randomness of this patient (pose, haemodynamics, lesion, noise).
    normal : bool, optional
        Force normal perfusion (True) or a stroke (False); drawn with
        ``config.normal_fraction`` when None.
    residue_shape : {"box", "exponential", "gamma"}, optional
        Force one residue shape on every voxel (gamma: shape parameter 3). When None, the
        heterogeneous model gives each voxel its own shape and the classic one draws one
        per patient from ``config.residue_shapes``.
    noise : bool
        Add CT noise (False gives noise-free frames).
    keep_noise_free : bool
        Keep the noise-free frames in ``truth.noise_free``.
    patient_id : str
        Written into metadata.

    Returns
    -------
    PhantomStudy
        ``study.frames`` (x, y, z, t) float32 HU and ``truth``.

    Examples
    --------
    >>> from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient
    >>> cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=64))
    >>> ph = simulate_patient(cfg, seed=1)
    >>> ph.study.frames.shape
    (64, 64, 8, 89)
    """
    cfg = config or PhantomConfig()
    if residue_shape is not None and residue_shape not in ("box", "exponential", "gamma"):
        raise ValueError(
            f"residue_shape: expected box, exponential or gamma, got {residue_shape!r}"
        )
    acq = cfg.acquisition
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    head = build_head(acq, rng)
    out = _MODELS[cfg.model](cfg, head, rng, normal=normal, shape=residue_shape)
    frames = out.frames
    motion = rigid_motion(rng, len(acq.times), cfg.motion_mm, cfg.motion_deg)
    # With motion, the motion-free frames (same noise) are what an ideal registration gives.
    registered = frames.copy() if np.any(motion) else None
    apply_motion(frames, head.affine, motion)
    noise_free = frames.copy() if keep_noise_free else None
    sigma = noise_sigma_on_grid(acq.noise_sigma_hu, acq.matrix, acq.pixel_mm) if noise else 0.0
    if noise:
        add_ct_noise(
            frames, sigma, acq.pixel_mm, rng, relative_sd=out.noise_relative_sd, also=registered
        )
    truth = _truth(cfg, head, out, seed, patient_id, motion, sigma, noise_free, registered)
    metadata = {
        "patient_id": patient_id,
        "series_description": "CT perfusion phantom",
        "modality": "CT",
        "kvp": acq.kvp,
        "exposure_mas": acq.exposure_mas,
        "manufacturer": "ctpmaps phantom",
        "slice_thickness_mm": acq.slice_thickness_mm,
    }
    study = Study(frames, head.affine, acq.times, source="array", metadata=metadata)
    return PhantomStudy(study, truth)


def _truth(
    cfg: PhantomConfig,
    head: Head,
    out: ModelOutput,
    seed: int | np.random.Generator,
    patient_id: str,
    motion: np.ndarray,
    sigma: float,
    noise_free: np.ndarray | None,
    registered: np.ndarray | None,
) -> Truth:
    """Assemble the `Truth` of a simulated study."""
    anat = head.anat
    brain = anat.brain_mask()
    masks = {"brain": brain, **out.lesions, "artery": anat.artery >= 0.5, "vein": anat.vein >= 0.5}
    rel = out.noise_relative_sd
    noise_sd = np.full(head.shape, sigma, np.float32) if rel is None else sigma * rel
    params = _params(cfg, head, out, seed, patient_id, motion, sigma)
    params["volumes_ml"] = {
        k: float(masks[k].sum() * head.voxel_ml)
        for k in ("core", "penumbra", "hypoperfusion", "oligaemia", "severe")
    }
    return Truth(
        maps=out.maps,
        masks=masks,
        tissue=anat.labels(),
        fractions=anat,
        aif=out.aif,
        vof=out.vof,
        params=params,
        noise_free=noise_free,
        motion=motion,
        registered=registered,
        dispersion=out.dispersion,
        residue_k=out.residue_k,
        residue_label=residue_labels(out.residue_k),
        response_peak=out.response_peak,
        hemisphere=out.hemisphere,
        noise_sd=noise_sd.astype(np.float32),
        reference_cbf=out.reference_cbf,
        vof_aif_area_ratio=out.vof_aif_area_ratio,
    )


def _params(cfg, head, out, seed, patient_id, motion, sigma) -> dict[str, Any]:
    """Every parameter of the simulation, JSON-ready."""
    acq, pose = cfg.acquisition, head.pose
    params = {
        "patient_id": patient_id,
        "seed": seed if isinstance(seed, int) else None,
        "model": cfg.model,
        "config": cfg.to_dict(),
        **out.params,
        "pose": {
            "angles_deg": list(pose.angles_deg),
            "shift_mm": list(pose.shift_mm),
            "scale": list(pose.scale),
            "centre_mni": list(pose.centre_mni),
        },
        "reference_cbf": out.reference_cbf,
        "vof_aif_area_ratio": out.vof_aif_area_ratio,
        "baseline_hu": BASELINE_HU,
        "vessels": head.vessel_summary(),
        "noise_sigma_hu": sigma,
        "noise_sigma_hu_at_0.49mm": acq.noise_sigma_hu if sigma > 0 else 0.0,
        "noise_spatially_varying": out.noise_relative_sd is not None,
        "motion": motion.tolist(),
        "map_units": MAP_UNITS,
        "hemispheres": HEMISPHERES,
        "residue_labels": RESIDUE_LABELS,
        "ttp_definition": "time of the maximum of the noise-free tissue curve at the frame times",
    }
    params["tissue"] = {
        **params["tissue"],
        "units": {"cbf": MAP_UNITS["cbf"], "cbv": MAP_UNITS["cbv"]},
    }
    return params
