"""The classic forward model (``PhantomConfig(model="classic")``): the phantom's first version.

One residue shape per patient, a gamma-variate AIF, a VOF of equal area, healthy tissue
with no delay, and a lesion of drawn zones (core, penumbra, oligaemia) with a gap in
relative CBF and delay between them (`ctpmaps.phantom.lesion`). Kept so that earlier
results can be reproduced: for a given seed it gives the same frames and volumes as before
the default became the heterogeneous model.
"""

from __future__ import annotations

import numpy as np
from numpy.random import Generator

from .config import PhantomConfig
from .fields import patient_tissue
from .forward import FINE_DT, NAMED_SHAPES
from .haemodynamics import (
    arterial_input,
    delayed_input,
    impulse_response,
    random_input_function,
    tissue_curve,
    tmax_of_response,
    venous_output,
)
from .head import Head
from .lesion import ZONES, draw_lesion, levels_table, smooth_field
from .truth import TMAX_SEVERE_S, ModelOutput, reference_cbf

__all__ = ["simulate_classic", "SCALP_PERFUSION", "TMAX_DEFINITION"]

#: Perfusion of the scalp (soft tissue), which enhances too: mL/100 g/min, s, shape.
SCALP_PERFUSION = {"cbf": 8.0, "mtt_s": 9.0, "shape": "exponential", "delay_s": 1.0}
#: The classic preset's true Tmax (kept as it was).
TMAX_DEFINITION = (
    "first time the impulse response CBF*(dispersion ⊛ R)(t - delay) reaches 95 % of its maximum"
)


def simulate_classic(
    cfg: PhantomConfig, head: Head, rng: Generator, *, normal: bool | None, shape: str | None
) -> ModelOutput:
    """Haemodynamics, curves and truth maps of the classic model for one head (random
    draws in the order of the phantom's first version)."""
    times = cfg.acquisition.times
    anat = head.anat
    p_mni = head.mni_positions()
    is_normal = bool(rng.random() < cfg.normal_fraction) if normal is None else bool(normal)
    shape_name = shape or str(rng.choice(list(cfg.residue_shapes)))
    tissue = patient_tissue(cfg, rng)
    inp = random_input_function(rng, duration_s=float(times[-1]))
    modulation = 1.0 + cfg.within_patient_cv * smooth_field(rng, p_mni, scale_mm=30.0)
    brain = anat.brain_mask()
    lesion = draw_lesion(
        rng,
        p_mni,
        brain,
        head.voxel_ml,
        normal=is_normal,
        core_volume_ml=cfg.core_volume_ml,
        mismatch_ratio=cfg.mismatch_ratio,
        oligaemia_ratio=cfg.oligaemia_ratio,
    )
    hemisphere = head.hemisphere()
    del p_mni
    curves = _input_curves(inp, times)
    levels = levels_table()
    weights = (anat.gm * modulation, anat.wm * modulation)
    basis, scalp = _basis_curves(cfg, tissue, levels, shape_name, curves["fine"], times)
    frames = _frames(head, lesion, basis, scalp, weights, curves)
    maps = _truth_maps(head, lesion.level, levels, basis, tissue, weights, shape_name, times)
    params = {
        "normal_perfusion": is_normal,
        "residue_shape": shape_name,
        "tissue": tissue,
        "input_function": inp.to_dict(),
        "lesion": {
            "side": lesion.side,
            "centre_mni": lesion.centre_mni,
            "target_volumes_ml": lesion.volumes_ml,
            "levels": [vars(lv) for lv in levels],
            "zones": ZONES,
        },
        "scalp_perfusion": SCALP_PERFUSION,
        "tmax_definition": TMAX_DEFINITION,
        "lesion_definition": "drawn zones (classic preset); severe = brain & Tmax > 10 s",
    }
    return _output(frames, maps, lesion, levels, brain, hemisphere, shape_name, curves, params)


def _input_curves(inp, times: np.ndarray) -> dict[str, np.ndarray]:
    """AIF on the fine grid (``fine``), and at the frame times the AIF, the VOF and the
    input of arteries past the occlusion (delayed 3 s, dispersed 2 s, at 70 %)."""
    t_fine = np.arange(0.0, times[-1] + 60.0, FINE_DT)
    aif_fine = arterial_input(inp, t_fine)
    vof_fine = venous_output(aif_fine, FINE_DT, inp.venous_transit_s)
    distal = 0.7 * delayed_input(aif_fine, FINE_DT, 3.0, 2.0)
    return {
        "fine": aif_fine,
        "aif": np.interp(times, t_fine, aif_fine),
        "vof": np.interp(times, t_fine, vof_fine),
        "distal": np.interp(times, t_fine, distal),
    }


def _output(frames, maps, lesion, levels, brain, hemisphere, shape_name, curves, params):
    """The classic model's `ModelOutput`: drawn zones as lesions, severe from Tmax."""
    present = maps["cbf"] > 0
    dispersion = np.array([lv.dispersion_s for lv in levels], np.float32)[lesion.level]
    zone = np.where(brain, lesion.zone, 0)
    lesions = {
        "core": zone == 3,
        "penumbra": zone == 2,
        "hypoperfusion": zone >= 2,
        "severe": brain & (maps["tmax"] > TMAX_SEVERE_S),
        "oligaemia": zone == 1,
    }
    return ModelOutput(
        frames=frames,
        maps=maps,
        lesions=lesions,
        dispersion=np.where(present, dispersion, 0.0).astype(np.float32),
        residue_k=np.where(present, NAMED_SHAPES[shape_name], 0.0).astype(np.float32),
        hemisphere=hemisphere,
        reference_cbf=reference_cbf(
            maps["cbf"], maps["tmax"], brain, hemisphere, lesion.zone == 0, lesion.side
        ),
        aif=curves["aif"].astype(np.float32),
        vof=curves["vof"].astype(np.float32),
        vof_aif_area_ratio=1.0,
        noise_relative_sd=None,
        params=params,
    )


def _basis_curves(cfg, tissue, levels, shape_name, aif_fine, times):
    """Tissue curves at the frame times per tissue class and severity level, and the
    scalp's curve."""
    t_fine = np.arange(len(aif_fine)) * FINE_DT
    phys = {"hematocrit_factor": cfg.hematocrit_factor, "density": cfg.density}

    def sample(c: np.ndarray) -> np.ndarray:
        return np.interp(times, t_fine, c)

    basis = {}
    for name in ("gm", "wm"):
        cbf, cbv = tissue[f"{name}_cbf"], tissue[f"{name}_cbv"]
        basis[name] = np.stack(
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
    sp = SCALP_PERFUSION
    scalp = sample(
        tissue_curve(
            aif_fine,
            FINE_DT,
            cbf=sp["cbf"],
            mtt_s=sp["mtt_s"],
            shape=sp["shape"],
            delay_s=sp["delay_s"],
            **phys,
        )
    )
    return basis, scalp


def _frames(head, lesion, basis, scalp_curve, weights, curves):
    """Noise-free frames (x, y, z, t) float32 HU: the unenhanced image plus tissue of its
    severity level, scalp, arteries (those of the affected MCA fill late) and the sinus."""
    anat, shape = head.anat, head.shape
    w_gm, w_wm = weights
    artery, vein = anat.artery, anat.vein
    aif, artery_distal, vof = curves["aif"], curves["distal"], curves["vof"]
    # Arteries downstream of the occlusion (affected MCA) fill late, dispersed and weaker.
    artery_affected = np.zeros(shape, np.float32)
    if lesion.side is not None:
        artery_affected = np.clip(
            sum(
                f
                for v, f in zip(head.vessels, head.vessel_fractions, strict=True)
                if v.territory == "MCA" and v.side == lesion.side
            ),
            0,
            1,
        ).astype(np.float32)
    n_t = len(aif)
    out = np.empty(shape + (n_t,), np.float32)
    out[:] = head.unenhanced()[..., None]
    active = np.nonzero((w_gm + w_wm + anat.scalp + artery + vein).ravel() > 0)[0]
    flat = out.reshape(-1, n_t)
    lv_flat = lesion.level.ravel()
    for chunk in np.array_split(active, max(1, len(active) // 200_000)):
        lv = lv_flat[chunk]
        flat[chunk] += (
            w_gm.ravel()[chunk, None] * basis["gm"][lv]
            + w_wm.ravel()[chunk, None] * basis["wm"][lv]
            + anat.scalp.ravel()[chunk, None] * scalp_curve[None, :]
            + (artery - artery_affected).ravel()[chunk, None] * aif[None, :]
            + artery_affected.ravel()[chunk, None] * artery_distal[None, :]
            + vein.ravel()[chunk, None] * vof[None, :]
        )
    return out


def _truth_maps(head, level_map, levels, basis, tissue, weights, shape_name, times):
    """CBF, CBV, MTT, TTP, Tmax and delay of every tissue voxel (0 elsewhere)."""
    anat, shape = head.anat, head.shape
    w_gm, w_wm = weights
    gm_cbf, wm_cbf, gm_cbv, wm_cbv = (tissue[k] for k in ("gm_cbf", "wm_cbf", "gm_cbv", "wm_cbv"))
    rel_cbf = np.array([lv.rel_cbf for lv in levels], np.float32)
    rel_cbv = np.array([lv.rel_cbv for lv in levels], np.float32)
    delay = np.array([lv.delay_s for lv in levels], np.float32)
    cbf_map = (w_gm * gm_cbf + w_wm * wm_cbf) * rel_cbf[level_map]
    cbv_map = (w_gm * gm_cbv + w_wm * wm_cbv) * rel_cbv[level_map]
    tissue_present = (anat.gm + anat.wm) > 0.01
    with np.errstate(divide="ignore", invalid="ignore"):
        mtt_map = np.where(tissue_present, 60.0 * cbv_map / cbf_map, 0.0)
    ttp_map = np.zeros(shape, np.float32)
    sel = np.nonzero(tissue_present.ravel())[0]
    lv_flat = level_map.ravel()
    tissue_curves = (
        w_gm.ravel()[sel, None] * basis["gm"][lv_flat[sel]]
        + w_wm.ravel()[sel, None] * basis["wm"][lv_flat[sel]]
    )
    ttp_map.ravel()[sel] = times[np.argmax(tissue_curves, axis=1)]
    del tissue_curves
    tmax_map = _tmax_map(
        levels,
        level_map,
        w_gm * gm_cbf,
        w_wm * wm_cbf,
        (gm_cbv / gm_cbf, wm_cbv / wm_cbf),
        shape_name,
    )

    def zeros_out(a: np.ndarray) -> np.ndarray:
        return np.where(tissue_present, a, 0.0).astype(np.float32)

    return {
        "cbf": zeros_out(cbf_map),
        "cbv": zeros_out(cbv_map),
        "mtt": zeros_out(mtt_map),
        "ttp": zeros_out(ttp_map),
        "tmax": zeros_out(tmax_map),
        "delay": zeros_out(delay[level_map]),
    }


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
