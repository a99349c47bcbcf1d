"""What the phantom knows about a study, and the rule that turns true maps into lesions.

The default model's lesion masks are not drawn: they come from thresholds applied to the
true maps, after RAPID's rule (implemented here independently of `ctpmaps.lesion`):

- hypoperfusion = brain & true Tmax > 6 s; severe = brain & true Tmax > 10 s;
- core = hypoperfusion & true CBF < 0.30 x reference, where the reference is the median true
  CBF of healthy brain (true Tmax < 4 s, untouched by the lesion) in the hemisphere
  opposite the lesion (both hemispheres for a patient without one);
- penumbra = hypoperfusion & ~core;
- oligaemia = brain & true delay > 2 s & true Tmax <= 6 s (delayed, not hypoperfused).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..io.study import Study
from .anatomy import Anatomy

__all__ = [
    "Truth",
    "PhantomStudy",
    "ModelOutput",
    "lesion_masks",
    "reference_cbf",
    "residue_labels",
    "RESIDUE_LABELS",
    "TMAX_HYPOPERFUSION_S",
    "TMAX_SEVERE_S",
    "TMAX_HEALTHY_S",
    "CORE_RELATIVE_CBF",
    "OLIGAEMIA_DELAY_S",
    "TMAX_DEFINITION",
    "LESION_DEFINITION",
]

#: True Tmax above which brain is hypoperfused, s.
TMAX_HYPOPERFUSION_S = 6.0
#: True Tmax above which hypoperfusion is severe, s.
TMAX_SEVERE_S = 10.0
#: True Tmax below which brain counts as healthy for the CBF reference, s.
TMAX_HEALTHY_S = 4.0
#: Core: true CBF below this fraction of the healthy contralateral reference.
CORE_RELATIVE_CBF = 0.30
#: Oligaemia: true delay above this (s) while Tmax stays at or below 6 s.
OLIGAEMIA_DELAY_S = 2.0
#: The definitions above in words (recorded in every truth.json).
TMAX_DEFINITION = (
    "delay + first time h = (transport kernel ⊛ residue) is within 5 % of its maximum, "
    "on the 0.05 s fine grid"
)
LESION_DEFINITION = (
    "hypoperfusion = brain & Tmax > 6 s; severe = brain & Tmax > 10 s; core = hypoperfusion & "
    "CBF < 0.30 x reference (median CBF of healthy brain, Tmax < 4 s and no lesion, in the "
    "other hemisphere); penumbra = hypoperfusion & ~core; oligaemia = brain & delay > 2 s & "
    "Tmax <= 6 s"
)
#: Coarse residue-shape classes from the shape parameter k of the transit-time density.
RESIDUE_LABELS = {0: "no tissue", 1: "box-like", 2: "intermediate", 3: "exponential-like"}
#: k at or above which a residue is box-like (transit-time CV <= 0.35) and at or below
#: which it is exponential-like (CV >= 0.82).
BOX_LIKE_K = 8.0
EXPONENTIAL_LIKE_K = 1.5


@dataclass
class Truth:
    """What the phantom knows about a study.

    Attributes
    ----------
    maps : dict of str to ndarray (x, y, z) float32
        ``cbf`` (mL/100 g/min), ``cbv`` (mL/100 g), ``mtt`` (s), ``ttp`` (s from the first
        frame), ``tmax`` (s), ``delay`` (s); 0 where there is no brain tissue. True Tmax is
        the first time at which the voxel's effective impulse response relative to the true
        AIF, ``h(t) = (transport kernel ⊛ residue)(t - delay)``, reaches its maximum
        (within 5 % of it: well-posed for a dispersed box, whose ``h`` creeps up to a
        plateau), on the 0.05 s fine grid: a box residue without dispersion has
        Tmax = delay. (The classic preset uses the same 5 %.)
    masks : dict of str to ndarray (x, y, z) bool
        ``brain``, ``core``, ``penumbra``, ``hypoperfusion``, ``severe``, ``oligaemia``,
        ``artery``, ``vein`` (the lesion masks follow the module's rule; the classic
        preset's core, penumbra and oligaemia are its drawn zones).
    tissue : ndarray (x, y, z) uint8
        Dominant tissue class (`ctpmaps.phantom.anatomy.TISSUE_LABELS`).
    fractions : Anatomy
        Tissue fractions per voxel.
    aif, vof : ndarray (t,)
        True arterial input and venous output, HU of enhancement at the frame times (pure
        blood, before any partial volume: the AIF is what the perfusion model uses).
    params : dict
        Every parameter of the simulation (JSON-ready).
    noise_free : ndarray (x, y, z, t) float32 or None
        Frames before noise (kept only on request).
    motion : ndarray (t, 6)
        Head motion per frame: tx, ty, tz (mm), rx, ry, rz (degrees), about the slab centre.
    registered : ndarray (x, y, z, t) float32 or None
        With motion: the frames without it but with the same noise (ideal registration).
    dispersion : ndarray (x, y, z) float32
        Time constant of the voxel's exponential transport kernel, s (0 = none).
    residue_k : ndarray (x, y, z) float32
        Shape parameter k of the voxel's gamma transit-time density (1 = exponential
        residue, inf = box; the transit times' coefficient of variation is 1 / sqrt(k));
        0 where there is no tissue.
    residue_label : ndarray (x, y, z) uint8
        `RESIDUE_LABELS`: box-like (k >= 8), intermediate, exponential-like (k <= 1.5).
    response_peak : ndarray (x, y, z) float32 or None
        Height of the voxel's effective impulse response relative to its CBF, the maximum
        of ``transport kernel ⊛ residue`` (1 without dispersion, lower with it; 0 where
        there is no tissue; None for the classic preset). The transport before the tissue
        and the residue cannot be told apart from the curves, so a deconvolution against
        the true AIF, however exact, reads the response's height: ``cbf x response_peak``
        is the most of the true CBF any deconvolution can recover (Calamante et al. 2000:
        the dispersion error). Error budgets use it to separate a method's own error from
        this one.
    hemisphere : ndarray (x, y, z) uint8
        1 = left, 2 = right of the phantom's mid-sagittal plane (MNI x = 0).
    noise_sd : ndarray (x, y, z) float32
        Local SD of the added noise, HU (0 without noise).
    reference_cbf : float
        Median true CBF of healthy contralateral brain, mL/100 g/min (the core reference).
    vof_aif_area_ratio : float
        Area of the true VOF over that of the true AIF (whole curves, not just the frames).
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
    dispersion: np.ndarray | None = None
    residue_k: np.ndarray | None = None
    residue_label: np.ndarray | None = None
    response_peak: np.ndarray | None = None
    hemisphere: np.ndarray | None = None
    noise_sd: np.ndarray | None = None
    reference_cbf: float | None = None
    vof_aif_area_ratio: float | None = None

    @property
    def volumes_ml(self) -> dict[str, float]:
        """Volumes of the lesion masks in mL."""
        return dict(self.params["volumes_ml"])


@dataclass
class PhantomStudy:
    """A simulated study and its truth."""

    study: Study
    truth: Truth


@dataclass
class ModelOutput:
    """What a forward model hands to `ctpmaps.phantom.simulate_patient`, before the
    acquisition (noise, motion) is applied.

    ``frames`` (x, y, z, t) float32 HU: unenhanced image plus enhancement; ``maps``,
    ``dispersion``, ``residue_k``, ``hemisphere``, ``reference_cbf``, ``aif``, ``vof``,
    ``vof_aif_area_ratio`` and ``response_peak`` (None: not known) as in `Truth`;
    ``lesions`` the core, penumbra, hypoperfusion, severe and oligaemia masks;
    ``noise_relative_sd`` the local noise level relative to the configured one (None:
    uniform); ``params`` the model's own parameters (JSON-ready).
    """

    frames: np.ndarray
    maps: dict[str, np.ndarray]
    lesions: dict[str, np.ndarray]
    dispersion: np.ndarray
    residue_k: np.ndarray
    hemisphere: np.ndarray
    reference_cbf: float
    aif: np.ndarray
    vof: np.ndarray
    vof_aif_area_ratio: float
    noise_relative_sd: np.ndarray | None
    params: dict[str, Any]
    response_peak: np.ndarray | None = None


def reference_cbf(
    cbf: np.ndarray,
    tmax: np.ndarray,
    brain: np.ndarray,
    hemisphere: np.ndarray,
    lesion_free: np.ndarray,
    side: str | None,
) -> float:
    """Median true CBF (mL/100 g/min) of healthy brain in the hemisphere opposite ``side``.

    Healthy: brain, true Tmax < 4 s and untouched by the lesion (``lesion_free``). With no
    lesion (``side`` None) both hemispheres count.
    """
    healthy = brain & (tmax < TMAX_HEALTHY_S) & lesion_free
    if side is not None:
        healthy &= hemisphere == (2 if side == "left" else 1)
    if not healthy.any():
        raise ValueError("no healthy contralateral brain to take the CBF reference from")
    return float(np.median(cbf[healthy]))


def lesion_masks(
    maps: dict[str, np.ndarray], brain: np.ndarray, reference: float
) -> dict[str, np.ndarray]:
    """Core, penumbra, hypoperfusion, severe and oligaemia from the true maps (module rule)."""
    hypo = brain & (maps["tmax"] > TMAX_HYPOPERFUSION_S)
    core = hypo & (maps["cbf"] < CORE_RELATIVE_CBF * reference)
    return {
        "core": core,
        "penumbra": hypo & ~core,
        "hypoperfusion": hypo,
        "severe": brain & (maps["tmax"] > TMAX_SEVERE_S),
        "oligaemia": brain & (maps["delay"] > OLIGAEMIA_DELAY_S) & ~hypo,
    }


def residue_labels(k: np.ndarray) -> np.ndarray:
    """Coarse residue class per voxel (`RESIDUE_LABELS`) from k (0 = no tissue)."""
    out = np.where(k >= BOX_LIKE_K, 1, np.where(k <= EXPONENTIAL_LIKE_K, 3, 2))
    return np.where(k > 0, out, 0).astype(np.uint8)
