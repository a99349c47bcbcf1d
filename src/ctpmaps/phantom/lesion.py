"""Phantom stroke: an MCA-territory lesion graded into core, penumbra and benign oligaemia.

A smooth severity field peaks at a random point of one middle cerebral artery territory
and is perturbed by a low-frequency random field, so lesions have irregular shapes. Zones
are the voxels of highest severity, thresholded to reach the drawn volumes exactly (in
brain parenchyma inside the slab). Each zone is split into severity levels whose
haemodynamic parameters follow the clinical definitions:

=============  ===========  ===========  ============  ===============
zone           rel. CBF     rel. CBV     delay (s)     dispersion (s)
=============  ===========  ===========  ============  ===============
oligaemia      0.92 → 0.75  1.05 → 1.10  1.0 → 2.5     0.3 → 0.8
penumbra       0.65 → 0.32  1.10 → 0.90  6.0 → 8.0     1.0 → 2.0
core           0.15 → 0.05  0.55 → 0.30  7.0 → 9.0     2.0 → 3.0
=============  ===========  ===========  ============  ===============

so that the core has rCBF < 30 % and low CBV, the penumbra reduced CBF, kept CBV and
Tmax > 6 s, and oligaemia Tmax below 6 s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "ZONES",
    "Level",
    "levels_table",
    "smooth_field",
    "mca_territory",
    "Lesion",
    "draw_lesion",
    "pick_centre",
    "volume_threshold",
]

#: Zone codes of the level table and of ``truth/zones.nii.gz``.
ZONES = {0: "normal", 1: "oligaemia", 2: "penumbra", 3: "core"}

_ZONE_RANGES = {
    # zone: (rel CBF, rel CBV, delay s, dispersion s), each (mildest, most severe)
    1: ((0.92, 0.75), (1.05, 1.10), (1.0, 2.5), (0.3, 0.8)),
    2: ((0.65, 0.32), (1.10, 0.90), (6.0, 8.0), (1.0, 2.0)),
    3: ((0.15, 0.05), (0.55, 0.30), (7.0, 9.0), (2.0, 3.0)),
}


@dataclass(frozen=True)
class Level:
    """Haemodynamics of one severity level relative to healthy tissue."""

    zone: int
    rel_cbf: float
    rel_cbv: float
    delay_s: float
    dispersion_s: float


def levels_table(n_per_zone: int = 6) -> list[Level]:
    """Level 0 is healthy tissue; then ``n_per_zone`` graded levels per zone."""
    out = [Level(0, 1.0, 1.0, 0.0, 0.0)]
    for zone, ranges in _ZONE_RANGES.items():
        for u in np.linspace(0.0, 1.0, n_per_zone):
            vals = [lo + u * (hi - lo) for lo, hi in ranges]
            out.append(Level(zone, *(float(v) for v in vals)))
    return out


def smooth_field(
    rng: np.random.Generator, points_mm: np.ndarray, *, scale_mm: float = 25.0
) -> np.ndarray:
    """A smooth zero-mean, unit-variance random field evaluated at ``points_mm`` (3, ...).

    White noise on a coarse grid (spacing ``scale_mm / 2``) covering the head, smoothed
    and interpolated with cubic splines.
    """
    step = scale_mm / 2
    lo = np.array([-110.0, -140.0, -80.0])
    shape = (int(220 / step) + 4, int(260 / step) + 4, int(180 / step) + 4)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), 1.0)
    noise /= noise.std()
    idx = (points_mm - lo.reshape((3,) + (1,) * (points_mm.ndim - 1))) / step
    return ndimage.map_coordinates(noise, idx, order=3, mode="nearest").astype(np.float32)


def mca_territory(p_mni: np.ndarray, side: str) -> np.ndarray:
    """Boolean MCA territory at MNI points (3, ...): the lateral hemisphere and the deep
    lenticulostriate region, excluding the medial ACA and occipital PCA territories."""
    x, y, z = p_mni
    sx = x if side == "right" else -x
    lateral = sx > 18.0
    deep = (sx > 8.0) & (y > -25.0) & (y < 25.0) & (z < 18.0)
    aca = (sx < 24.0) & (y > 15.0)
    pca = y < -72.0
    return (lateral | deep) & ~aca & ~pca


def pick_centre(rng: np.random.Generator, p_mni: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """MNI position (3,) of a lesion centre: a voxel of ``candidates`` (bool, the territory's
    parenchyma in the slab) in the lateral cortex / insula region when there is one."""
    idx = np.argwhere(candidates)
    if len(idx) == 0:
        raise ValueError("the slab holds no MCA territory: cannot place a lesion")
    lateral = [
        c for c in idx[rng.permutation(len(idx))[:2000]] if 22.0 < abs(p_mni[0][tuple(c)]) < 48.0
    ]
    centre_idx = tuple(lateral[0] if lateral else idx[rng.integers(len(idx))])
    return p_mni[(slice(None),) + centre_idx]


def volume_threshold(values_desc: np.ndarray, volume_ml: float, voxel_ml: float) -> float:
    """Severity above which ``volume_ml`` of voxels lie, from severities sorted in
    descending order (inf for an empty volume)."""
    n = int(round(volume_ml / voxel_ml))
    return float(values_desc[max(n - 1, 0)]) if n > 0 else np.inf


def _zones(severity, territory, thresholds, peak, n_per_zone):
    """Zone (`ZONES`) and severity level (`levels_table`) per voxel from the severity
    thresholds of core, hypoperfusion and hypoperfusion + oligaemia."""
    t_core, t_hypo, t_olig = thresholds
    zone = np.zeros(severity.shape, np.uint8)
    zone[territory & (severity >= t_olig)] = 1
    zone[territory & (severity >= t_hypo)] = 2
    zone[territory & (severity >= t_core)] = 3
    # Graded levels within each zone by where severity falls between its thresholds.
    bounds = {1: (t_olig, t_hypo), 2: (t_hypo, t_core), 3: (t_core, peak)}
    level = np.zeros(severity.shape, np.uint8)
    for z, (lo, hi) in bounds.items():
        sel = zone == z
        u = np.clip((severity[sel] - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
        level[sel] = (
            1 + (z - 1) * n_per_zone + np.minimum((u * n_per_zone).astype(int), n_per_zone - 1)
        )
    return zone, level


@dataclass
class Lesion:
    """A patient's lesion on the CT grid.

    Attributes
    ----------
    side : str or None
        Affected hemisphere, None for normal perfusion.
    level : ndarray (x, y, z) uint8
        Index into `levels_table` per voxel.
    zone : ndarray (x, y, z) uint8
        Zone code per voxel (`ZONES`), all voxels (masks restrict it to parenchyma).
    volumes_ml : dict
        Target volumes drawn (core, hypoperfusion, oligaemia), mL.
    centre_mni : tuple or None
        Where the severity peaks, MNI mm.
    """

    side: str | None
    level: np.ndarray
    zone: np.ndarray
    volumes_ml: dict[str, float]
    centre_mni: tuple[float, float, float] | None


def draw_lesion(
    rng: np.random.Generator,
    p_mni: np.ndarray,
    parenchyma: np.ndarray,
    voxel_ml: float,
    *,
    normal: bool,
    core_volume_ml: tuple[float, float],
    mismatch_ratio: tuple[float, float],
    oligaemia_ratio: tuple[float, float],
    n_per_zone: int = 6,
) -> Lesion:
    """Draw one lesion; ``p_mni`` (3, x, y, z) are the MNI positions of the CT voxels and
    ``parenchyma`` the voxels counted in volumes."""
    shape = parenchyma.shape
    if normal:
        zeros = np.zeros(shape, np.uint8)
        return Lesion(
            None, zeros, zeros.copy(), {"core": 0.0, "hypoperfusion": 0.0, "oligaemia": 0.0}, None
        )
    side = str(rng.choice(["left", "right"]))
    territory = mca_territory(p_mni, side)
    centre = pick_centre(rng, p_mni, territory & parenchyma)
    sigma = rng.uniform(18.0, 32.0)
    d2 = ((p_mni - centre.reshape(3, 1, 1, 1)) ** 2).sum(axis=0)
    severity = np.exp(-d2 / (2 * sigma**2)) * (1.0 + 0.35 * smooth_field(rng, p_mni))
    severity = np.where(territory, severity, 0.0)

    core = rng.uniform(*core_volume_ml)
    hypo = core * rng.uniform(*mismatch_ratio)
    olig = hypo * rng.uniform(*oligaemia_ratio)
    values = np.sort(severity[territory & parenchyma])[::-1]
    available = len(values) * voxel_ml
    if hypo + olig > 0.9 * available:  # a small slab of territory: shrink proportionally
        f = 0.9 * available / (hypo + olig)
        core, hypo, olig = core * f, hypo * f, olig * f

    thresholds = [volume_threshold(values, v, voxel_ml) for v in (core, hypo, hypo + olig)]
    zone, level = _zones(severity, territory, thresholds, float(values[0]), n_per_zone)
    return Lesion(
        side,
        level,
        zone,
        {"core": core, "hypoperfusion": hypo, "oligaemia": olig},
        tuple(float(c) for c in centre),
    )
