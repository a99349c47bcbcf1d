"""The default forward model: heterogeneous tissue, gap-free lesions, independent inputs.

Per patient: a bolus (`ctpmaps.phantom.inputs`), smooth haemodynamic fields
(`ctpmaps.phantom.fields`), curves on the fine grid shared among voxels of equal
quantised parameters (`ctpmaps.phantom.curves`), lesion masks from thresholds on the true
maps (`ctpmaps.phantom.truth`) and a spatially varying noise level
(`ctpmaps.phantom.noise`). See ``docs/phantom.md`` for every distribution.
"""

from __future__ import annotations

import numpy as np
from numpy.random import Generator

from ..physics import FLOW_UNIT
from .anatomy import CoarseGrid
from .config import PhantomConfig
from .curves import quantise, response_table, sample_tissue
from .fields import MTT_RANGE_S, Fields, haemodynamic_fields, patient_tissue
from .forward import FINE_DT, NAMED_SHAPES, cell_residues, tissue_convolve, transport
from .head import Head
from .inputs import Bolus, arterial_curve, random_bolus, venous_curve
from .noise import noise_sd_map
from .truth import (
    LESION_DEFINITION,
    TMAX_DEFINITION,
    ModelOutput,
    lesion_masks,
    reference_cbf,
)

__all__ = ["simulate_heterogeneous", "SCALP", "TISSUE_THRESHOLD"]

#: Scalp (soft tissue) perfusion: CBF mL/100 g/min, MTT s, shape k, delay s.
SCALP = {"cbf": 8.0, "mtt_s": 9.0, "k": 1.0, "delay_s": 1.0}
#: Grey + white matter fraction above which a voxel carries tissue maps.
TISSUE_THRESHOLD = 0.01
#: Grid in-plane size (at most) on which the smooth fields are drawn (~2 mm at 250 mm).
FIELD_MATRIX = 128


def simulate_heterogeneous(
    cfg: PhantomConfig, head: Head, rng: Generator, *, normal: bool | None, shape: str | None
) -> ModelOutput:
    """Haemodynamics, frames and truth of the default model for one head.

    ``shape`` (``box``, ``exponential`` or ``gamma``) forces one residue shape on every
    voxel; by default (None) each voxel has its own.
    """
    s, times = cfg.heterogeneous, cfg.acquisition.times
    is_normal = bool(rng.random() < cfg.normal_fraction) if normal is None else bool(normal)
    tissue = patient_tissue(cfg, rng)
    bolus = random_bolus(rng, duration_s=float(times[-1]), settings=s)
    t_fine = np.arange(int(np.ceil(times[-1] / FINE_DT)) + 2) * FINE_DT
    aif_fine = arterial_curve(bolus, t_fine)
    fill = _partial_volume_sinus(head, rng, s.sinus_fill)
    brain = head.anat.brain_mask()
    fields, noise_rel, hemisphere = _spatial(cfg, head, rng, brain, is_normal)
    scale = cfg.density / cfg.hematocrit_factor / FLOW_UNIT
    frames, maps, dispersion, k, peak = _tissue(head, fields, tissue, aif_fine, times, scale, shape)
    collateral = {
        "delay_s": float(rng.uniform(1.0, 4.0)),
        "dispersion_s": float(rng.uniform(1.0, 3.0)),
    }
    side = fields.info["side"]
    _add_vessels_and_scalp(frames, head, side, collateral, bolus, aif_fine, t_fine, scale)
    frames += head.unenhanced()[..., None]
    lesion_free = fields.lesion_weight == 0
    reference = reference_cbf(maps["cbf"], maps["tmax"], brain, hemisphere, lesion_free, side)
    params = {
        "normal_perfusion": is_normal,
        "residue_shape": shape or "mixed",
        "tissue": tissue,
        "input_function": bolus.to_dict(),
        "lesion": fields.info,
        "sinus_fill": fill,
        "affected_arteries": collateral,
        "scalp_perfusion": SCALP,
        "tmax_definition": TMAX_DEFINITION,
        "lesion_definition": LESION_DEFINITION,
    }
    return ModelOutput(
        frames=frames,
        maps=maps,
        lesions=lesion_masks(maps, brain, reference),
        dispersion=dispersion,
        residue_k=k,
        response_peak=peak,
        hemisphere=hemisphere,
        reference_cbf=reference,
        aif=np.interp(times, t_fine, aif_fine).astype(np.float32),
        vof=np.interp(times, t_fine, venous_curve(aif_fine, t_fine, bolus)).astype(np.float32),
        vof_aif_area_ratio=bolus.vof_area_ratio,
        noise_relative_sd=noise_rel,
        params=params,
    )


def _spatial(cfg, head, rng, brain, is_normal) -> tuple[Fields, np.ndarray, np.ndarray]:
    """Haemodynamic fields, relative noise level and hemisphere labels on the CT grid
    (each drawn on the coarse field grid first)."""
    s, acq = cfg.heterogeneous, cfg.acquisition
    grid = CoarseGrid.for_acquisition(acq, max_matrix=FIELD_MATRIX)
    p_mni = head.mni_positions(grid)
    step_mm = acq.pixel_mm * grid.step
    coarse = haemodynamic_fields(
        rng,
        p_mni,
        grid.downsample_mean(brain) > 0.5,
        step_mm * step_mm * acq.slice_thickness_mm / 1000.0,
        (step_mm, step_mm, acq.slice_thickness_mm),
        s,
        within_patient_cv=cfg.within_patient_cv,
        normal=is_normal,
    )
    noise_rel = noise_sd_map(
        grid,
        p_mni,
        head.scanner_positions(grid),
        brain,
        rng,
        skull_base_factor=s.skull_base_noise,
        in_plane_cv=s.noise_in_plane_cv,
    )
    return coarse.upsampled(grid), noise_rel, head.hemisphere()


def _partial_volume_sinus(head: Head, rng: np.random.Generator, fill_range) -> float:
    """Scale the sinus's blood fraction by a drawn fill (a stress option, 1 by default:
    see ``HeterogeneousSettings.sinus_fill``): the rest of each sinus voxel is dura and
    CSF, which do not enhance. Returns the fill (drawn even when the range is one value,
    so that a patient's other draws do not depend on it)."""
    fill = float(rng.uniform(*fill_range))
    anat = head.anat
    anat.csf = anat.csf + anat.vein * (1.0 - fill)
    anat.vein = anat.vein * fill
    return fill


def _tissue(head, fields, tissue, aif_fine, times, scale, residue_shape):
    """Tissue enhancement (x, y, z, t) float32, the true maps, dispersion, shape k and the
    height of the effective impulse response (`Truth.response_peak`)."""
    anat, shape = head.anat, head.shape
    present = (anat.gm + anat.wm) > TISSUE_THRESHOLD
    idx = np.flatnonzero(present)
    gm, wm = anat.gm.ravel()[idx], anat.wm.ravel()[idx]
    flow_gm, flow_wm = gm * tissue["gm_cbf"], wm * tissue["wm_cbf"]
    class_cbf = flow_gm + flow_wm
    # Flow-weighted MTT of the voxel's grey and white matter (so that CBV adds up).
    class_mtt = 60.0 * (gm * tissue["gm_cbv"] + wm * tissue["wm_cbv"]) / class_cbf

    def at(a: np.ndarray) -> np.ndarray:
        return a.ravel()[idx]

    cbf = (class_cbf * at(fields.cbf_factor)).astype(np.float32)
    mtt = np.clip(class_mtt * at(fields.mtt_factor), *MTT_RANGE_S)
    q = quantise(
        mtt,
        at(fields.dispersion_s),
        at(fields.log_k),
        at(fields.delay_s),
        FINE_DT,
        k_fixed=NAMED_SHAPES[residue_shape] if residue_shape else None,
    )
    table = response_table(aif_fine, FINE_DT, q.table_mtt_s, q.table_dispersion_s, q.table_k)
    enhancement = np.zeros(shape + (len(times),), np.float32)
    flat = enhancement.reshape(-1, len(times))
    ttp = sample_tissue(flat, idx, scale * cbf, q, table, times, FINE_DT)
    values = {
        "cbf": cbf,
        "cbv": cbf * q.mtt_s / 60.0,
        "mtt": q.mtt_s,
        "ttp": ttp,
        "tmax": q.delay_s + table.peak_s[q.combo],
        "delay": q.delay_s,
        "dispersion": q.dispersion_s,
        "k": q.k,
        "response_peak": table.peak_height[q.combo],
    }
    out = {}
    for name, v in values.items():
        full = np.zeros(shape, np.float32)
        full.ravel()[idx] = v
        out[name] = full
    k = out.pop("k")
    dispersion = out.pop("dispersion")
    peak = out.pop("response_peak")
    return enhancement, out, dispersion, k, peak


def _shifted(curve_fine: np.ndarray, t_fine: np.ndarray, delay_s: float) -> np.ndarray:
    return np.interp(t_fine - delay_s, t_fine, curve_fine, left=0.0)


def _add_vessels_and_scalp(
    enhancement: np.ndarray,
    head: Head,
    side: str | None,
    collateral: dict[str, float],
    bolus: Bolus,
    aif_fine: np.ndarray,
    t_fine: np.ndarray,
    scale: float,
) -> None:
    """Add the scalp's, the arteries' and the sinus's enhancement in place.

    Arteries of the affected MCA (downstream of the occlusion, filled by collaterals)
    carry the AIF delayed and dispersed by ``collateral`` (``delay_s``, ``dispersion_s``;
    the area is kept).
    """
    times = head.acq.times
    anat = head.anat
    r = cell_residues(np.array([SCALP["mtt_s"]]), np.array([SCALP["k"]]), len(t_fine), FINE_DT)[0]
    scalp = scale * SCALP["cbf"] * tissue_convolve(aif_fine, r, FINE_DT)
    affected = (
        head.arteries(territory="MCA", side=side) if side else np.zeros(head.shape, np.float32)
    )
    distal = _shifted(
        transport(aif_fine, collateral["dispersion_s"], FINE_DT), t_fine, collateral["delay_s"]
    )
    sources = [
        (anat.scalp, _shifted(scalp, t_fine, SCALP["delay_s"])),
        (np.clip(anat.artery - affected, 0.0, None), aif_fine),
        (np.minimum(affected, anat.artery), distal),
        (anat.vein, venous_curve(aif_fine, t_fine, bolus)),
    ]
    flat = enhancement.reshape(-1, len(times))
    for weight, curve in sources:
        idx = np.flatnonzero(weight > 0)
        at_frames = np.interp(times, t_fine, curve).astype(np.float32)
        flat[idx] += weight.ravel()[idx, None] * at_frames[None, :]
