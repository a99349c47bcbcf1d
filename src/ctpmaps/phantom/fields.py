"""Haemodynamic fields of the default phantom: healthy heterogeneity and a gap-free lesion.

Every parameter is a smooth field in space, computed on a coarse version of the CT grid
(about 2 mm in-plane) and interpolated linearly onto it:

- healthy tissue: CBF modulated by ``1 + within_patient_cv * f``; MTT by
  ``exp(mtt_cv * f)``; delay, transport-kernel time constant and log residue shape spread
  uniformly over their ranges (``lo + (hi - lo) * Phi(f)``), each ``f`` an independent
  smooth unit-variance random field of scale 30 mm;
- a stroke: one MCA territory (with a soft 4 mm edge that fades to 0 at the midline)
  holds two severity profiles, Gaussian around a centre in the lateral cortex and
  perturbed by smooth fields: ``a`` (drives CBF) and a wider ``b`` (drives delay and
  dispersion), each scaled to 1 at its peak. The thresholds ``a_c`` and ``b_h`` enclose the
  drawn target volumes; relative CBF falls continuously from 1 (``a = 0``) through 0.30
  (``a = a_c``) to ``rcbf_min`` at the peak; the lesion delay grows from 0 through the drawn
  ``lesion_delay_s`` (``b = b_h``) to its peak value; dispersion grows as ``D * b``; the
  residue shape moves towards exponential as ``ln k = (1 - z) ln k_healthy`` with
  ``z = 1 - (1 - a)(1 - b)``; relative CBV is ``rCBF^beta * (1 + gamma (1 - rCBF))``
  (kept or raised in moderate hypoperfusion, low in the core). The whole territory is also
  delayed by a drawn hemispheric delay (slow collaterals), which makes benign oligaemia.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.special import ndtr

from .anatomy import CoarseGrid
from .config import HeterogeneousSettings, PhantomConfig
from .lesion import mca_territory, pick_centre, smooth_field, volume_threshold

__all__ = ["Fields", "haemodynamic_fields", "patient_tissue"]

#: Relative CBF at the edge of the core's target volume (RAPID's threshold).
_CORE_EDGE_RCBF = 0.30
#: Width (mm) of the soft edge of the territory and of its fade at the midline.
_EDGE_MM = 4.0
_MIDLINE_FADE_MM = 6.0
#: MTT limits (s) of any tissue voxel.
MTT_RANGE_S = (1.0, 24.0)


@dataclass
class Fields:
    """Per-voxel parameters on a grid (all (x, y, z) float32).

    Attributes
    ----------
    cbf_factor : ndarray
        Multiplies the voxel's healthy class CBF (spatial modulation x lesion rCBF).
    mtt_factor : ndarray
        Multiplies the voxel's healthy class MTT (heterogeneity x lesion rCBV / rCBF).
    delay_s, dispersion_s : ndarray
        Arterial delay and transport-kernel time constant, s.
    log_k : ndarray
        Natural log of the residue shape parameter k.
    lesion_weight : ndarray
        Territory weight of the lesion (0 where the lesion has no effect at all).
    info : dict
        What was drawn (side, centre, targets, profile parameters), JSON-ready.
    """

    cbf_factor: np.ndarray
    mtt_factor: np.ndarray
    delay_s: np.ndarray
    dispersion_s: np.ndarray
    log_k: np.ndarray
    lesion_weight: np.ndarray
    info: dict[str, Any]

    def upsampled(self, grid: CoarseGrid) -> Fields:
        """The same fields interpolated onto the CT grid."""
        arrays = {
            k: grid.upsample(getattr(self, k)).astype(np.float32)
            for k in ("cbf_factor", "mtt_factor", "delay_s", "dispersion_s", "log_k")
        }
        weight = grid.upsample(self.lesion_weight).astype(np.float32)
        return Fields(**arrays, lesion_weight=np.clip(weight, 0.0, None), info=self.info)


def patient_tissue(cfg: PhantomConfig, rng: np.random.Generator) -> dict[str, float]:
    """A patient's mean grey/white matter CBF (mL/100 g/min) and CBV (mL/100 g): the
    config's means times a global level ``exp(N(0, between_patient_cv))`` and a few % of
    independent variation per value."""
    level_k = float(np.exp(rng.normal(0.0, cfg.between_patient_cv)))
    return {
        "gm_cbf": cfg.gm_cbf * level_k * rng.uniform(0.92, 1.08),
        "wm_cbf": cfg.wm_cbf * level_k * rng.uniform(0.92, 1.08),
        "gm_cbv": cfg.gm_cbv * level_k * rng.uniform(0.95, 1.05),
        "wm_cbv": cfg.wm_cbv * level_k * rng.uniform(0.95, 1.05),
    }


def _spread(f: np.ndarray, lo_hi: tuple[float, float]) -> np.ndarray:
    """A unit-variance Gaussian field mapped uniformly onto [lo, hi]."""
    lo, hi = lo_hi
    return lo + (hi - lo) * ndtr(f)


def _healthy(rng, p_mni, s: HeterogeneousSettings, within_cv: float) -> dict[str, np.ndarray]:
    f = [smooth_field(rng, p_mni, scale_mm=30.0) for _ in range(5)]
    return {
        "cbf_factor": 1.0 + within_cv * f[0],
        "mtt_factor": np.exp(s.mtt_cv * f[1]),
        "delay_s": _spread(f[2], s.healthy_delay_s),
        "dispersion_s": _spread(f[3], s.healthy_dispersion_s),
        "log_k": _spread(f[4], tuple(np.log(s.healthy_shape_k))),
    }


def _territory_weight(territory, p_mni, side, spacing_mm) -> np.ndarray:
    """Soft territory indicator: Gaussian edge of 4 mm, fading to exactly 0 at the midline."""
    sigma = [_EDGE_MM / sp for sp in spacing_mm]
    w = ndimage.gaussian_filter(territory.astype(np.float32), sigma, mode="constant")
    sx = p_mni[0] if side == "right" else -p_mni[0]
    return w * np.clip(sx / _MIDLINE_FADE_MM, 0.0, 1.0)


def _profile(rng, p_mni, centre, sigma_mm, weight) -> np.ndarray:
    """Gaussian severity around ``centre`` with a smooth random perturbation, peak 1."""
    d2 = ((p_mni - centre.reshape(3, 1, 1, 1)) ** 2).sum(axis=0)
    pert = np.clip(1.0 + 0.35 * smooth_field(rng, p_mni), 0.0, None)
    s = np.exp(-d2 / (2 * sigma_mm**2)) * pert * weight
    return s / max(float(s.max()), 1e-12)


def _edge(profile, inside, volume_ml, voxel_ml) -> float:
    """Profile value enclosing ``volume_ml`` of the territory's parenchyma (< 1)."""
    values = np.sort(profile[inside])[::-1]
    t = volume_threshold(values, max(volume_ml, voxel_ml), voxel_ml)
    return float(np.clip(t, 1e-3, 0.999))


def _ramp(x: np.ndarray, edge: float, at_edge: float, at_peak: float) -> np.ndarray:
    """Piecewise-linear in ``x`` in [0, 1]: 0 at 0, ``at_edge`` at ``edge``, ``at_peak`` at 1."""
    return np.where(
        x <= edge,
        at_edge * x / edge,
        at_edge + (at_peak - at_edge) * (x - edge) / (1.0 - edge),
    )


def _lesion(rng, p_mni, inside_brain, voxel_ml, spacing_mm, s: HeterogeneousSettings):
    """Lesion fields (dict of arrays) and what was drawn."""
    side = str(rng.choice(["left", "right"]))
    territory = mca_territory(p_mni, side)
    inside = territory & inside_brain
    centre = pick_centre(rng, p_mni, inside)
    weight = _territory_weight(territory, p_mni, side, spacing_mm)
    sigma_core = float(rng.uniform(10.0, 22.0))
    sigma_hypo = sigma_core * float(rng.uniform(1.3, 2.2))
    a = _profile(rng, p_mni, centre, sigma_core, weight)
    b = _profile(rng, p_mni, centre, sigma_hypo, weight)
    core, hypo = _targets(rng, s, inside.sum() * voxel_ml)
    a_c, b_h = _edge(a, inside, core, voxel_ml), _edge(b, inside, hypo, voxel_ml)
    draws = {
        "power": float(rng.uniform(1.0, 2.0)),
        "rcbv_beta": float(rng.uniform(0.6, 0.8)),
        "rcbv_gamma": float(rng.uniform(0.8, 1.3)),
        "hemispheric_delay_s": float(rng.uniform(*s.hemispheric_delay_s)),
        "edge_delay_s": float(rng.uniform(*s.lesion_delay_s)),
        "dispersion_s": float(rng.uniform(*s.lesion_dispersion_s)),
    }
    draws["peak_delay_s"] = float(rng.uniform(max(draws["edge_delay_s"], 6.0), s.max_delay_s))
    fields = _lesion_fields(a, b, (a_c, b_h), weight, draws, s.rcbf_min)
    info = {
        "side": side,
        "centre_mni": [float(c) for c in centre],
        "sigma_mm": {"core": sigma_core, "hypoperfusion": sigma_hypo},
        "target_volumes_ml": {"core": core, "hypoperfusion": hypo},
        "profile_edges": {"core": a_c, "hypoperfusion": b_h},
        **draws,
    }
    return fields, info


def _targets(rng, s: HeterogeneousSettings, available_ml: float) -> tuple[float, float]:
    """Core and hypoperfusion target volumes (mL), shrunk to fit 90 % of the territory."""
    core = float(np.exp(rng.uniform(*np.log(s.core_target_ml))))
    hypo = core * float(rng.uniform(*s.hypoperfusion_ratio))
    if hypo > 0.9 * available_ml:  # a small slab of territory: shrink proportionally
        core, hypo = core * 0.9 * available_ml / hypo, 0.9 * available_ml
    return core, hypo


def _lesion_fields(a, b, edges, weight, draws, rcbf_min) -> dict[str, np.ndarray]:
    """Relative CBF, MTT ratio, delays, dispersion and shape weight from the profiles."""
    a_c, b_h = edges
    # ln rCBF: 0 at a = 0, ln 0.30 at the core edge a_c, ln rcbf_min at the peak.
    log_r = np.where(
        a <= a_c,
        np.log(_CORE_EDGE_RCBF) * (a / a_c) ** draws["power"],
        _ramp(a, a_c, np.log(_CORE_EDGE_RCBF), np.log(rcbf_min)),
    )
    rcbf = np.exp(log_r)
    rcbv = rcbf ** draws["rcbv_beta"] * (1.0 + draws["rcbv_gamma"] * (1.0 - rcbf))
    return {
        "rcbf": rcbf,
        "mtt_ratio": rcbv / rcbf,
        "hemispheric_delay_s": draws["hemispheric_delay_s"] * weight,
        "delay_s": _ramp(b, b_h, draws["edge_delay_s"], draws["peak_delay_s"]),
        "dispersion_s": draws["dispersion_s"] * b,
        "z": 1.0 - (1.0 - a) * (1.0 - b),
        "weight": weight,
    }


def haemodynamic_fields(
    rng: np.random.Generator,
    p_mni: np.ndarray,
    inside_brain: np.ndarray,
    voxel_ml: float,
    spacing_mm: tuple[float, float, float],
    settings: HeterogeneousSettings,
    *,
    within_patient_cv: float,
    normal: bool,
) -> Fields:
    """Draw a patient's haemodynamic fields on a (coarse) grid.

    Parameters
    ----------
    rng : numpy.random.Generator
    p_mni : ndarray, shape (3, x, y, z)
        MNI positions (mm) of the grid's voxels.
    inside_brain : ndarray, shape (x, y, z), bool
        Brain parenchyma on the grid (where target volumes are counted).
    voxel_ml : float
        Volume of one grid voxel, mL.
    spacing_mm : tuple of float
        Grid spacing, mm.
    settings : HeterogeneousSettings
    within_patient_cv : float
        Amplitude of the healthy CBF modulation.
    normal : bool
        No lesion when True.

    Returns
    -------
    Fields
        On the same grid as ``p_mni``.
    """
    s = settings
    h = _healthy(rng, p_mni, s, within_patient_cv)
    if normal:
        zero = np.zeros(p_mni.shape[1:], np.float32)
        arrays = {k: v.astype(np.float32) for k, v in h.items()}
        return Fields(**arrays, lesion_weight=zero, info={"side": None, "centre_mni": None})
    les, info = _lesion(rng, p_mni, inside_brain, voxel_ml, spacing_mm, s)
    mtt_factor = h["mtt_factor"] * les["mtt_ratio"]
    # The lesion's delay takes over where it exceeds the healthy and hemispheric delays.
    delay = np.minimum(
        np.maximum(h["delay_s"] + les["hemispheric_delay_s"], les["delay_s"]), s.max_delay_s
    )
    return Fields(
        cbf_factor=(h["cbf_factor"] * les["rcbf"]).astype(np.float32),
        mtt_factor=mtt_factor.astype(np.float32),
        delay_s=delay.astype(np.float32),
        dispersion_s=(h["dispersion_s"] + les["dispersion_s"]).astype(np.float32),
        log_k=((1.0 - les["z"]) * h["log_k"]).astype(np.float32),
        lesion_weight=les["weight"].astype(np.float32),
        info=info,
    )
