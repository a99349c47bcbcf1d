"""Forward simulation of one phantom patient: known maps → scanner-like HU frames."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft
from scipy import ndimage

from ..io.study import Study
from ..physics import MAP_UNITS
from .anatomy import Anatomy, ct_affine, euler_matrix, load_template, random_pose, sample_anatomy
from .config import PhantomConfig
from .haemodynamics import (
    FINE_DT,
    arterial_input,
    delayed_input,
    impulse_response,
    random_input_function,
    tissue_curve,
    tmax_of_response,
    venous_output,
)
from .lesion import ZONES, draw_lesion, levels_table, smooth_field
from .vessels import vessel_tree, voxelise

__all__ = ["Truth", "PhantomStudy", "simulate_patient", "BASELINE_HU"]

log = logging.getLogger(__name__)

#: Unenhanced attenuation per tissue in HU at 80 kV.
BASELINE_HU = {
    "gm": 38.0,
    "wm": 29.0,
    "csf": 7.0,
    "bone": 1100.0,
    "scalp": 40.0,
    "blood": 45.0,
    "air": -1000.0,
}
#: Perfusion of the scalp (soft tissue), which enhances too: mL/100 g/min, s, shape.
SCALP_PERFUSION = {"cbf": 8.0, "mtt_s": 9.0, "shape": "exponential", "delay_s": 1.0}


@dataclass
class Truth:
    """What the phantom knows about a study.

    Attributes
    ----------
    maps : dict of str to ndarray (x, y, z) float32
        ``cbf`` (mL/100 g/min), ``cbv`` (mL/100 g), ``mtt`` (s), ``ttp`` (s from the first
        frame), ``tmax`` (s), ``delay`` (s); 0 where there is no brain tissue.
    masks : dict of str to ndarray (x, y, z) bool
        ``brain``, ``core``, ``penumbra``, ``hypoperfusion``, ``oligaemia``,
        ``artery``, ``vein``.
    tissue : ndarray (x, y, z) uint8
        Dominant tissue class (`ctpmaps.phantom.anatomy.TISSUE_LABELS`).
    fractions : Anatomy
        Tissue fractions per voxel.
    aif, vof : ndarray (t,)
        True arterial input and venous output, HU of enhancement at the frame times (the
        AIF before any partial volume: what the perfusion model uses).
    noise_free : ndarray (x, y, z, t) float32 or None
        Frames before noise (kept only on request).
    motion : ndarray (t, 6)
        Head motion per frame: tx, ty, tz (mm), rx, ry, rz (degrees), about the slab centre.
    registered : ndarray (x, y, z, t) float32 or None
        With motion: the frames without it but with the same noise (ideal registration).
    params : dict
        Every parameter of the simulation (JSON-ready).
    """

    maps: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    tissue: np.ndarray
    fractions: Anatomy
    aif: np.ndarray
    vof: np.ndarray
    params: dict[str, Any]
    noise_free: np.ndarray | None = None
    motion: np.ndarray | None = None
    registered: np.ndarray | None = None

    @property
    def volumes_ml(self) -> dict[str, float]:
        """Volumes of the lesion masks in mL."""
        return dict(self.params["volumes_ml"])


@dataclass
class PhantomStudy:
    """A simulated study and its truth."""

    study: Study
    truth: Truth


def _rigid_motion(rng: np.random.Generator, n: int, mm: float, deg: float) -> np.ndarray:
    """Per-frame (tx, ty, tz mm, rx, ry, rz deg): still, then a few smooth head movements."""
    motion = np.zeros((n, 6))
    if mm <= 0 and deg <= 0:
        return motion
    for _ in range(int(rng.integers(1, 4))):
        start = int(rng.integers(1, n))
        width = max(1, int(rng.integers(1, max(2, n // 8))))
        ramp = np.clip((np.arange(n) - start) / width, 0.0, 1.0)
        step = np.r_[rng.uniform(-1, 1, 3) * mm, rng.uniform(-1, 1, 3) * deg]
        motion += ramp[:, None] * step[None, :] / 2
    lim = np.r_[[mm] * 3, [deg] * 3]
    return np.clip(motion, -lim, lim)


def _apply_motion(frames: np.ndarray, affine: np.ndarray, motion: np.ndarray) -> None:
    """Resample moved frames in place: frame k shows the head moved by ``motion[k]``
    (rotation about the slab centre, then translation, in scanner mm), linearly
    interpolated. What moves in from beyond the slab repeats the edge slice (a thin slab
    has no neighbours to take it from; in-plane the edge is air)."""
    shape = np.array(frames.shape[:3])
    centre = affine[:3, :3] @ ((shape - 1) / 2) + affine[:3, 3]
    inv_aff = np.linalg.inv(affine)
    for k in np.nonzero(np.any(motion != 0, axis=1))[0]:
        rot = euler_matrix(*motion[k, 3:])
        # output point p_out came from p_in = R^-1 (p_out - c - t) + c
        m = np.eye(4)
        m[:3, :3] = rot.T
        m[:3, 3] = centre - rot.T @ (centre + motion[k, :3])
        vox = inv_aff @ m @ affine
        frames[..., k] = ndimage.affine_transform(
            frames[..., k],
            vox[:3, :3],
            vox[:3, 3],
            order=1,
            mode="nearest",
        )


#: Pixel size (mm) at which the noise SD of an `Acquisition` is set: 512 over 250 mm.
REFERENCE_PIXEL_MM = 250.0 / 512


def _nps_power(n: int, pixel_mm: float) -> float:
    """Integral of the (unnormalised) noise power spectrum over the band an n x n grid of
    ``pixel_mm`` pixels represents."""
    f = np.fft.fftfreq(n, d=pixel_mm)
    fr = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    return float(((fr * np.exp(-((fr / 0.35) ** 2))) ** 2).sum() / (n * pixel_mm) ** 2)


def noise_sigma_on_grid(sigma_reference_hu: float, matrix: int, pixel_mm: float) -> float:
    """Noise SD on a grid, from the SD at 0.49 mm pixels: a coarser grid keeps only the part
    of the same noise power spectrum below its Nyquist frequency (at 128 over 250 mm,
    0.63 of the SD; at 64, 0.22), a finer one all of it."""
    ref = _nps_power(512, REFERENCE_PIXEL_MM)
    return sigma_reference_hu * float(np.sqrt(_nps_power(matrix, pixel_mm) / ref))


def _noise_filter(shape: tuple[int, int], pixel_mm: float) -> np.ndarray:
    """Amplitude of the noise power spectrum shaping filter (ramp × Gaussian apodisation,
    peak near 0.25 lp/mm, as filtered back-projection with a soft-tissue kernel),
    normalised so white noise of unit variance keeps unit variance."""
    fx = np.fft.fftfreq(shape[0], d=pixel_mm)[:, None]
    fy = np.fft.rfftfreq(shape[1], d=pixel_mm)[None, :]
    fr = np.sqrt(fx**2 + fy**2)
    h = fr * np.exp(-((fr / 0.35) ** 2))
    # Parseval over the full (not half) spectrum: weight the rfft columns that stand for two.
    w = np.full(h.shape, 2.0)
    w[:, 0] = 1.0
    if shape[1] % 2 == 0:
        w[:, -1] = 1.0
    power = (w * h**2).sum() / (shape[0] * shape[1])
    return (h / np.sqrt(power)).astype(np.float32)


def add_ct_noise(
    frames: np.ndarray,
    sigma_hu: float,
    pixel_mm: float,
    rng: np.random.Generator,
    *,
    also: np.ndarray | None = None,
) -> None:
    """Add spatially correlated CT noise of standard deviation ``sigma_hu`` in place.

    Noise is independent between frames and slices and correlated in-plane like
    filtered back-projection noise (see `_noise_filter`). ``also`` (same shape) receives
    the same noise realisation.
    """
    if sigma_hu <= 0:
        return
    nx, ny, nz, nt = frames.shape
    filt = _noise_filter((nx, ny), pixel_mm)
    for k in range(nt):
        white = rng.standard_normal((nx, ny, nz), dtype=np.float32)
        spec = scipy.fft.rfft2(white, axes=(0, 1), workers=-1)
        spec *= filt[:, :, None] * sigma_hu
        noise = scipy.fft.irfft2(spec, s=(nx, ny), axes=(0, 1), workers=-1)
        frames[..., k] += noise
        if also is not None:
            also[..., k] += noise


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
        Cohort settings (acquisition, tissue values, lesion ranges); defaults to the seed
        protocol at 512 x 512.
    seed : int or numpy.random.Generator
        Randomness of this patient (pose, haemodynamics, lesion, noise).
    normal : bool, optional
        Force normal perfusion (True) or a stroke (False); drawn with
        ``config.normal_fraction`` when None.
    residue_shape : {"box", "exponential", "gamma"}, optional
        Force the residue shape; drawn from ``config.residue_shapes`` when None.
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
    acq = cfg.acquisition
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    times = acq.times
    shape = (acq.matrix, acq.matrix, acq.n_slices)
    spacing = (acq.pixel_mm, acq.pixel_mm, acq.slice_thickness_mm)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    affine = ct_affine(acq)

    # --- anatomy -------------------------------------------------------------------------
    pose = random_pose(rng)
    anat, ct_to_tmpl = sample_anatomy(acq, pose)
    template = load_template()
    mni_to_ct = np.linalg.inv(affine) @ pose.matrix()
    vessels = vessel_tree(template, rng)
    vessel_frac = {v.name: voxelise(v, mni_to_ct, shape, spacing) for v in vessels}
    artery = _union(
        [f for v, f in zip(vessels, vessel_frac.values(), strict=True) if v.kind == "artery"], shape
    )
    vein = _union(
        [f for v, f in zip(vessels, vessel_frac.values(), strict=True) if v.kind == "vein"], shape
    )
    keep = np.clip(1.0 - artery - vein, 0.0, 1.0)
    for name in ("gm", "wm", "csf", "bone", "scalp"):
        setattr(anat, name, getattr(anat, name) * keep)
    anat.artery, anat.vein = artery, vein

    # MNI position of every CT voxel centre (for the lesion and smooth fields).
    ii, jj, kk = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    ct_to_mni = np.linalg.inv(pose.matrix()) @ affine
    p_mni = np.stack(
        [
            ct_to_mni[c, 0] * ii + ct_to_mni[c, 1] * jj + ct_to_mni[c, 2] * kk + ct_to_mni[c, 3]
            for c in range(3)
        ]
    ).astype(np.float32)
    del ii, jj, kk

    # --- patient haemodynamics -----------------------------------------------------------
    is_normal = bool(rng.random() < cfg.normal_fraction) if normal is None else bool(normal)
    shape_name = residue_shape or str(rng.choice(list(cfg.residue_shapes)))
    level_k = float(np.exp(rng.normal(0.0, cfg.between_patient_cv)))
    gm_cbf = cfg.gm_cbf * level_k * rng.uniform(0.92, 1.08)
    wm_cbf = cfg.wm_cbf * level_k * rng.uniform(0.92, 1.08)
    gm_cbv = cfg.gm_cbv * level_k * rng.uniform(0.95, 1.05)
    wm_cbv = cfg.wm_cbv * level_k * rng.uniform(0.95, 1.05)
    inp = random_input_function(rng, duration_s=float(times[-1]))
    modulation = 1.0 + cfg.within_patient_cv * smooth_field(rng, p_mni, scale_mm=30.0)
    brain = anat.brain_mask()
    lesion = draw_lesion(
        rng,
        p_mni,
        brain,
        voxel_ml,
        normal=is_normal,
        core_volume_ml=cfg.core_volume_ml,
        mismatch_ratio=cfg.mismatch_ratio,
        oligaemia_ratio=cfg.oligaemia_ratio,
    )
    del p_mni

    # --- curves on the fine grid, then sampled at the frame times -------------------------
    t_fine = np.arange(0.0, times[-1] + 60.0, FINE_DT)
    aif_fine = arterial_input(inp, t_fine)
    vof_fine = venous_output(aif_fine, FINE_DT, inp.venous_transit_s)
    sample = lambda c: np.interp(times, t_fine, c)  # noqa: E731
    levels = levels_table()
    phys = {"hematocrit_factor": cfg.hematocrit_factor, "density": cfg.density}
    tissues = {"gm": (gm_cbf, gm_cbv), "wm": (wm_cbf, wm_cbv)}
    basis = {
        name: np.stack(
            [
                sample(
                    tissue_curve(
                        aif_fine,
                        FINE_DT,
                        cbf=cbf * lv.rel_cbf,
                        mtt_s=60.0 * cbv * lv.rel_cbv / (cbf * lv.rel_cbf),
                        shape=shape_name,
                        delay_s=lv.delay_s,
                        dispersion_s=lv.dispersion_s,
                        **phys,
                    )
                )
                for lv in levels
            ]
        ).astype(np.float32)
        for name, (cbf, cbv) in tissues.items()
    }
    scalp_curve = sample(
        tissue_curve(
            aif_fine,
            FINE_DT,
            cbf=SCALP_PERFUSION["cbf"],
            mtt_s=SCALP_PERFUSION["mtt_s"],
            shape=SCALP_PERFUSION["shape"],
            delay_s=SCALP_PERFUSION["delay_s"],
            **phys,
        )
    )
    # Arteries downstream of the occlusion (affected MCA) fill late, dispersed and weaker.
    aif = sample(aif_fine)
    artery_affected = np.zeros(shape, np.float32)
    if lesion.side is not None:
        artery_affected = np.clip(
            sum(
                f
                for v, f in zip(vessels, vessel_frac.values(), strict=True)
                if v.territory == "MCA" and v.side == lesion.side
            ),
            0,
            1,
        ).astype(np.float32)
    artery_distal = sample(0.7 * delayed_input(aif_fine, FINE_DT, 3.0, 2.0))

    # --- frames ----------------------------------------------------------------------------
    base = (
        anat.gm * BASELINE_HU["gm"]
        + anat.wm * BASELINE_HU["wm"]
        + anat.csf * BASELINE_HU["csf"]
        + anat.bone * BASELINE_HU["bone"]
        + anat.scalp * BASELINE_HU["scalp"]
        + (artery + vein) * BASELINE_HU["blood"]
        + anat.air * BASELINE_HU["air"]
    )
    frames = np.empty(shape + (len(times),), np.float32)
    frames[:] = base[..., None]
    w_gm = anat.gm * modulation
    w_wm = anat.wm * modulation
    active = np.nonzero((w_gm + w_wm + anat.scalp + artery + vein).ravel() > 0)[0]
    flat = frames.reshape(-1, len(times))
    lv_flat = lesion.level.ravel()
    for chunk in np.array_split(active, max(1, len(active) // 200_000)):
        lv = lv_flat[chunk]
        flat[chunk] += (
            w_gm.ravel()[chunk, None] * basis["gm"][lv]
            + w_wm.ravel()[chunk, None] * basis["wm"][lv]
            + anat.scalp.ravel()[chunk, None] * scalp_curve[None, :]
            + (artery - artery_affected).ravel()[chunk, None] * aif[None, :]
            + artery_affected.ravel()[chunk, None] * artery_distal[None, :]
            + vein.ravel()[chunk, None] * sample(vof_fine)[None, :]
        )

    # --- truth maps ------------------------------------------------------------------------
    rel_cbf = np.array([lv.rel_cbf for lv in levels], np.float32)
    rel_cbv = np.array([lv.rel_cbv for lv in levels], np.float32)
    delay = np.array([lv.delay_s for lv in levels], np.float32)
    cbf_map = (w_gm * gm_cbf + w_wm * wm_cbf) * rel_cbf[lesion.level]
    cbv_map = (w_gm * gm_cbv + w_wm * wm_cbv) * rel_cbv[lesion.level]
    tissue_present = (anat.gm + anat.wm) > 0.01
    with np.errstate(divide="ignore", invalid="ignore"):
        mtt_map = np.where(tissue_present, 60.0 * cbv_map / cbf_map, 0.0)
    tissue_only = np.zeros_like(flat[:, :1].ravel())
    ttp_map = np.zeros(shape, np.float32)
    sel = np.nonzero(tissue_present.ravel())[0]
    tissue_curves = (
        w_gm.ravel()[sel, None] * basis["gm"][lv_flat[sel]]
        + w_wm.ravel()[sel, None] * basis["wm"][lv_flat[sel]]
    )
    ttp_map.ravel()[sel] = times[np.argmax(tissue_curves, axis=1)]
    del tissue_curves, tissue_only
    tmax_map = _tmax_map(
        levels,
        lesion.level,
        w_gm * gm_cbf,
        w_wm * wm_cbf,
        (gm_cbv / gm_cbf, wm_cbv / wm_cbf),
        shape_name,
    )
    zeros_out = lambda a: np.where(tissue_present, a, 0.0).astype(np.float32)  # noqa: E731
    maps = {
        "cbf": zeros_out(cbf_map),
        "cbv": zeros_out(cbv_map),
        "mtt": zeros_out(mtt_map),
        "ttp": zeros_out(ttp_map),
        "tmax": zeros_out(tmax_map),
        "delay": zeros_out(delay[lesion.level]),
    }
    zone = np.where(brain, lesion.zone, 0)
    masks = {
        "brain": brain,
        "core": zone == 3,
        "penumbra": zone == 2,
        "hypoperfusion": zone >= 2,
        "oligaemia": zone == 1,
        "artery": artery >= 0.5,
        "vein": vein >= 0.5,
    }

    # --- acquisition effects ---------------------------------------------------------------
    motion = _rigid_motion(rng, len(times), cfg.motion_mm, cfg.motion_deg)
    # With motion, the motion-free frames (same noise) are what an ideal registration gives.
    registered = frames.copy() if np.any(motion) else None
    _apply_motion(frames, affine, motion)
    noise_free = frames.copy() if keep_noise_free else None
    sigma = noise_sigma_on_grid(acq.noise_sigma_hu, acq.matrix, acq.pixel_mm) if noise else 0.0
    if noise:
        add_ct_noise(frames, sigma, acq.pixel_mm, rng, also=registered)

    volumes = {
        k: float(masks[k].sum() * voxel_ml)
        for k in ("core", "penumbra", "hypoperfusion", "oligaemia")
    }
    params = {
        "patient_id": patient_id,
        "seed": seed if isinstance(seed, int) else None,
        "config": cfg.to_dict(),
        "normal_perfusion": is_normal,
        "residue_shape": shape_name,
        "tissue": {
            "gm_cbf": gm_cbf,
            "wm_cbf": wm_cbf,
            "gm_cbv": gm_cbv,
            "wm_cbv": wm_cbv,
            "units": {"cbf": MAP_UNITS["cbf"], "cbv": MAP_UNITS["cbv"]},
        },
        "input_function": inp.to_dict(),
        "pose": {
            "angles_deg": list(pose.angles_deg),
            "shift_mm": list(pose.shift_mm),
            "scale": list(pose.scale),
            "centre_mni": list(pose.centre_mni),
        },
        "lesion": {
            "side": lesion.side,
            "centre_mni": lesion.centre_mni,
            "target_volumes_ml": lesion.volumes_ml,
            "levels": [vars(lv) for lv in levels],
            "zones": ZONES,
        },
        "volumes_ml": volumes,
        "baseline_hu": BASELINE_HU,
        "scalp_perfusion": SCALP_PERFUSION,
        "vessels": [
            {
                "name": v.name,
                "kind": v.kind,
                "side": v.side,
                "radius_mm": v.radius_mm,
                "peak_fraction": float(f.max()),
            }
            for v, f in zip(vessels, vessel_frac.values(), strict=True)
        ],
        "noise_sigma_hu": sigma,
        "noise_sigma_hu_at_0.49mm": acq.noise_sigma_hu if noise else 0.0,
        "motion": motion.tolist(),
        "map_units": MAP_UNITS,
        "tmax_definition": "first time the impulse response CBF*(dispersion ⊛ R)(t - delay) "
        "reaches 95 % of its maximum",
        "ttp_definition": "time of the maximum of the noise-free tissue curve at the frame times",
    }
    truth = Truth(
        maps=maps,
        masks=masks,
        tissue=anat.labels(),
        fractions=anat,
        aif=aif.astype(np.float32),
        vof=sample(vof_fine).astype(np.float32),
        params=params,
        noise_free=noise_free,
        motion=motion,
        registered=registered,
    )
    metadata = {
        "patient_id": patient_id,
        "series_description": "CT perfusion phantom",
        "modality": "CT",
        "kvp": acq.kvp,
        "exposure_mas": acq.exposure_mas,
        "manufacturer": "ctpmaps phantom",
        "slice_thickness_mm": acq.slice_thickness_mm,
    }
    study = Study(frames, affine, times, source="array", metadata=metadata)
    return PhantomStudy(study, truth)


def _union(fractions: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """Fraction of a voxel inside any of several tubes (branches share their start point,
    so the largest, not the sum, avoids counting the junction twice)."""
    if not fractions:
        return np.zeros(shape, np.float32)
    return np.maximum.reduce(fractions).astype(np.float32)


def _tmax_map(levels, level_map, flow_gm, flow_wm, mtt_ratio, shape_name) -> np.ndarray:
    """Tmax truth per voxel from a table over (level, grey-matter share of the flow).

    A voxel mixes grey and white matter of one level; its impulse response is the
    flow-weighted sum of theirs, and its Tmax is read from 21 share bins (5 % steps).
    Healthy tissue (no delay, no dispersion) has Tmax 0 for every residue shape.
    """
    t = np.arange(0.0, 40.0, FINE_DT / 2)
    shares = np.linspace(0.0, 1.0, 21)
    table = np.zeros((len(levels), len(shares)), np.float32)
    for i, lv in enumerate(levels):
        if lv.delay_s == 0 and lv.dispersion_s == 0:
            continue
        mtt = [60.0 * r * lv.rel_cbv / lv.rel_cbf for r in mtt_ratio]
        h = [
            impulse_response(
                t,
                cbf=1.0,
                mtt_s=m,
                shape=shape_name,
                delay_s=lv.delay_s,
                dispersion_s=lv.dispersion_s,
            )
            for m in mtt
        ]
        mix = shares[:, None] * h[0][None, :] + (1 - shares[:, None]) * h[1][None, :]
        table[i] = tmax_of_response(t, mix)
    total = flow_gm + flow_wm
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total > 0, flow_gm / total, 1.0)
    return table[level_map, np.rint(share * 20).astype(int)]
