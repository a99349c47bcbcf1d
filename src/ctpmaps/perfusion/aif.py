"""Arterial input and venous output functions: automatic search, manual masks and CSV.

Automatic AIF (after the usual criteria of Mouridsen et al. 2006 and of the seed
pipeline): inside the intracranial space and away from bone (`away_from_bone`: after
motion correction, what misregistration leaves is largest at the skull's edge, where a
fraction of a millimetre moves hundreds of HU in or out of a voxel, and such steps
outscore any artery on enhancement), keep the voxels that enhance most; of those, the
ones whose bolus arrives earliest; rank them by peak height over peak width and average
the best (about 100, as the seed). Automatic VOF: the sinus lies against the skull, so
its candidates are kept near bone and must instead behave like a venous output: peaking
clearly after the AIF, not enhancing before the AIF arrives, and explained by the AIF
passed through a transit-time density (`ctpmaps.perfusion._outflow`); the most enhancing
of those whose curves follow the candidates' median shape (residue of head motion makes a
sinus voxel brighter, so the brightest alone are the most contaminated) are averaged.
Partial-volume correction: small arteries never fill a voxel, so the AIF is
scaled by the venous-to-arterial area ratio of that same transit model (a large sinus is
not partial-volume affected, and all tracer that enters the brain leaves through the
veins); the model is causal, so neither the bolus's shape nor an acquisition that ends
before the curves return to baseline biases the ratio. Before that, the tissue that
shares the arteries' voxels is removed from their mean curve (`tissue_spill`): scaling
restores the AIF's area, not its shape.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import FitError, InputError
from ._outflow import fit_transit
from .concentration import bolus_arrival_frame

__all__ = [
    "InputFunction",
    "find_aif",
    "find_vof",
    "away_from_bone",
    "default_aif_voxels",
    "curve_from_mask",
    "read_curve_csv",
    "partial_volume_scale",
    "tissue_spill",
    "Spill",
]

log = logging.getLogger(__name__)

#: Unenhanced HU above which a voxel is bone.
BONE_HU = 150.0
#: No AIF voxel within this distance (mm, in 3D) of bone: head motion of a few mm leaves
#: misregistration steps of hundreds of HU there, and with 5 mm slices the slice beside
#: a bone edge is 5 mm away.
BONE_MARGIN_MM = 5.0
#: A VOF candidate's enhancement before the AIF arrives stays below this share of its
#: peak (nothing downstream enhances before the arterial input).
VOF_EARLY_FRACTION = 0.1
#: A VOF candidate's share of its sum of squares explained by the AIF through a transit.
VOF_MIN_R2 = 0.95
#: VOF candidates are the voxels whose peak reaches this share of the brightest ones'
#: (the mean of the ``n_voxels`` highest peaks): the sinus, partial volume included. Not
#: the brightest alone: misregistration residue raises a voxel's peak (to twice the
#: sinus's on the 512 demo study), so the pool reaches well below it; the VOF's scale
#: moved by under 5 % between 0.3 and 0.5 on the phantom studies measured.
VOF_POOL_FRACTION = 0.3
#: At most this many VOF candidates (by peak) are fitted (bounds time and memory).
VOF_MAX_POOL = 20000


@dataclass
class InputFunction:
    """A measured input (or output) function.

    Attributes
    ----------
    curve : ndarray (t,)
        Enhancement in HU at the frame times (after any scaling).
    times : ndarray (t,)
        Frame times in s.
    voxels : ndarray (n, 3) int
        Voxel indices averaged (empty for a curve read from CSV).
    kind : str
        ``"aif"`` or ``"vof"``.
    source : str
        ``"automatic"``, ``"mask:<file>"`` or ``"csv:<file>"``.
    scale : float
        Factor applied to the averaged curve (partial-volume correction), 1 if none.
    tissue_fraction : float
        Share of the averaged voxels taken as tissue and removed before scaling
        (`tissue_spill`), 0 if none.
    notes : list of str
        Rules of the automatic search that had to be relaxed (for the run's caveats).
    """

    curve: np.ndarray
    times: np.ndarray
    voxels: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), int))
    kind: str = "aif"
    source: str = "automatic"
    scale: float = 1.0
    tissue_fraction: float = 0.0
    notes: list[str] = field(default_factory=list)


def _candidates(enh: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.argwhere(region)
    return idx, enh[region]


def _smooth_time(curves: np.ndarray, times: np.ndarray, width_s: float = 1.5) -> np.ndarray:
    """Moving average over about ``width_s`` (odd number of frames), edges held."""
    dt = float(np.median(np.diff(times)))
    w = int(max(1, round(width_s / dt)))
    w += 1 - w % 2
    if w == 1:
        return curves
    return ndimage.uniform_filter1d(np.asarray(curves, np.float32), w, axis=1, mode="nearest")


def default_aif_voxels(spacing: tuple[float, float, float]) -> int:
    """About 100 voxels at the seed's 0.49 mm pixels, scaled by pixel area (the same
    volume of blood) for other matrices, at least 4."""
    return max(4, int(round(100 * (0.488**2) / (spacing[0] * spacing[1]))))


def find_aif(
    enhancement: np.ndarray,
    times: np.ndarray,
    region: np.ndarray,
    *,
    n_voxels: int = 100,
    top_fraction: float = 0.05,
    tissue_ttp: float | None = None,
) -> InputFunction:
    """Automatic AIF from enhancement curves (x, y, z, t) inside ``region`` (x, y, z).

    On curves smoothed over 1.5 s (so noise spikes do not pass for boluses):
    (1) keep the ``top_fraction`` of region voxels with the largest area under the curve
    and a peak above 50 HU; (2) drop the most irregular quarter (roughness: squared second
    differences over the squared peak); (3) keep early arrivals: time to peak within 2 s of
    the earliest quartile (this leaves out the sinus and arteries behind an occlusion);
    (4) rank by peak over full width at half maximum (high and narrow) and average the
    unsmoothed curves of the best ``n_voxels`` (see `default_aif_voxels`).
    With ``tissue_ttp`` (s, time to peak of the mean brain curve), candidates must peak at
    least 1 s before the tissue does: arteries fill before the tissue they feed, the veins
    after, so the sinus can never pass for the AIF even where small arteries are lost.
    When no candidate does (a very short or late bolus, a brain curve that peaks early),
    the rule is dropped and a note says so (``InputFunction.notes``) rather than failing.
    ``region`` should leave out the surroundings of bone (`away_from_bone`).

    Raises
    ------
    FitError
        No voxel enhances like an artery (smoothed peak above 50 HU).
    """
    idx, curves = _candidates(enhancement, region)
    if len(curves) == 0:
        raise FitError("AIF search region is empty")
    sm = _smooth_time(curves, times)
    peak = sm.max(axis=1)
    auc = sm.sum(axis=1)
    n_top = max(4 * n_voxels, int(top_fraction * len(curves)))
    top = np.argsort(auc)[::-1][:n_top]
    top = top[peak[top] > 50.0]
    if top.size == 0:
        raise FitError(
            f"no voxel enhances like an artery (highest smoothed peak "
            f"{peak.max():.0f} HU, expected > 50 HU): is there a contrast bolus?"
        )
    notes = []
    if tissue_ttp is not None:
        before = top[times[np.argmax(sm[top], axis=1)] <= tissue_ttp - 1.0]
        if before.size:
            top = before
        else:
            notes.append(
                f"no artery candidate peaks 1 s before the brain's mean curve (at "
                f"{tissue_ttp:.1f} s): the AIF was chosen without that rule and may be late"
            )
            log.warning("AIF: %s", notes[-1])
    rough = (np.diff(curves[top], 2, axis=1) ** 2).sum(axis=1) / peak[top] ** 2
    top = top[rough <= np.percentile(rough, 75)]
    ttp = times[np.argmax(sm[top], axis=1)]
    early = top[ttp <= np.percentile(ttp, 25) + 2.0]
    c = sm[early]
    dt = float(np.median(np.diff(times)))
    width = (c >= 0.5 * c.max(axis=1, keepdims=True)).sum(axis=1) * dt
    best = early[np.argsort(c.max(axis=1) / width)[::-1][:n_voxels]]
    log.info("AIF: %d voxels of %d candidates", best.size, len(curves))
    return InputFunction(
        curves[best].mean(axis=0), np.asarray(times), idx[best], "aif", notes=notes
    )


def away_from_bone(
    region: np.ndarray,
    unenhanced: np.ndarray,
    spacing: tuple[float, float, float],
    *,
    margin_mm: float = BONE_MARGIN_MM,
    bone_hu: float = BONE_HU,
) -> np.ndarray:
    """``region`` without the voxels within ``margin_mm`` (3D distance) of bone.

    Parameters
    ----------
    region : ndarray (x, y, z) bool
        Where to search (the intracranial space).
    unenhanced : ndarray (x, y, z)
        Pre-bolus HU image; bone is above ``bone_hu``.
    spacing : (float, float, float)
        Voxel size in mm.

    Returns
    -------
    ndarray (x, y, z) bool
        ``region`` itself when that would leave nothing (a study without bone).
    """
    bone = np.asarray(unenhanced) > bone_hu
    if not bone.any():
        return region
    far = ndimage.distance_transform_edt(~bone, sampling=spacing) > margin_mm
    out = region & far
    return out if out.any() else region


def find_vof(
    enhancement: np.ndarray,
    times: np.ndarray,
    region: np.ndarray,
    aif: InputFunction,
    *,
    n_voxels: int = 20,
) -> InputFunction:
    """Automatic VOF: the ``n_voxels`` most enhancing voxels that behave like a venous
    output (the superior sagittal sinus) and share the sinus's curve, averaged.

    On curves smoothed over 1.5 s, a candidate (1) peaks at least 2 s after the AIF; (2)
    stays below `VOF_EARLY_FRACTION` of its peak until the AIF arrives (a step left by
    motion at the skull's edge does not); (3) peaks at `VOF_POOL_FRACTION` of the
    brightest candidates' peak or more; (4) is explained by the AIF passed through a
    transit-time density (`VOF_MIN_R2` of its sum of squares, see `partial_volume_scale`);
    (5) is in the half that best follows the median shape of those left (`_typical`:
    misregistration residue at the sinus's edge survives (2) and (4) when it comes with
    the venous peak, but is a voxel's own and always raises its peak).
    A rule that would leave no candidate is dropped, with a note (``notes``).

    Raises
    ------
    FitError
        No voxel peaks after the AIF.
    """
    idx, curves = _candidates(enhancement, region)
    sm = _smooth_time(curves, times)
    peak = sm.max(axis=1)
    t_aif = float(times[np.argmax(aif.curve)])
    late = np.nonzero((times[np.argmax(sm, axis=1)] >= t_aif + 2.0) & (peak > 0))[0]
    if late.size == 0:
        raise FitError("no voxel peaks after the AIF: cannot find a venous output function")
    notes: list[str] = []
    arrival = _arrival(aif.curve, times)
    quiet = late[np.abs(sm[late, : arrival + 1]).max(axis=1) <= VOF_EARLY_FRACTION * peak[late]]
    late = _relaxed(late, quiet, notes, "enhances before the AIF arrives")
    bright = np.sort(peak[late])[::-1][:n_voxels].mean()
    cand = late[np.argsort(peak[late])[::-1][:VOF_MAX_POOL]]
    cand = cand[peak[cand] >= VOF_POOL_FRACTION * bright]
    r2 = np.concatenate(
        [
            fit_transit(aif.curve, times, curves[c]).r2
            for c in np.array_split(cand, -(-cand.size // 4096))
        ]
    )
    cand = _relaxed(cand, cand[r2 >= VOF_MIN_R2], notes, "follows the AIF through a transit")
    cand = _typical(cand, curves, sm, peak)
    best = cand[np.argsort(peak[cand])[::-1][:n_voxels]]
    if curves[best].max() <= aif.curve.max() * 0.3:
        log.warning("VOF peak is below 30 %% of the AIF peak: the sinus may be outside the slab")
    vof = InputFunction(curves[best].mean(axis=0), np.asarray(times), idx[best], "vof")
    vof.notes = notes
    return vof


def _typical(cand: np.ndarray, curves: np.ndarray, sm: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """The half of ``cand`` whose curves best follow the pool's median shape.

    Every voxel of the sinus shares one venous curve up to its amplitude (partial
    volume); misregistration residue adds a voxel's own curve (a step where the skull
    moved in or out of it) and always raises its peak, so ranking by peak alone picks the
    most contaminated voxels. The median of the peak-normalised curves is the shape most
    of the pool shares; the fit of each (unsmoothed) curve to that shape, scaled by least
    squares, ranks them by agreement (uncentred R²).
    """
    if cand.size < 4:
        return cand
    shape = np.median(sm[cand] / peak[cand, None], axis=0).astype(np.float64)
    y = curves[cand].astype(np.float64)
    a = y @ shape / max(float(shape @ shape), 1e-30)
    resid = ((y - a[:, None] * shape) ** 2).sum(axis=1)
    r2 = 1.0 - resid / np.maximum((y**2).sum(axis=1), 1e-30)
    return cand[r2 >= np.median(r2)]


def _arrival(curve: np.ndarray, times: np.ndarray) -> int:
    """Last frame before the bolus of ``curve`` rises (0 when it has none)."""
    try:
        return bolus_arrival_frame(curve, times)
    except FitError:
        return 0


def _relaxed(kept: np.ndarray, passing: np.ndarray, notes: list[str], rule: str) -> np.ndarray:
    """``passing`` if any, else ``kept`` with a note that no VOF candidate met ``rule``."""
    if passing.size:
        return passing
    notes.append(f"no VOF candidate {rule}: the rule was dropped and the VOF may be wrong")
    log.warning("VOF: %s", notes[-1])
    return kept


def partial_volume_scale(aif: InputFunction, vof: InputFunction) -> float:
    """Factor that makes the AIF's area equal to the VOF's: the ``s`` of the fit
    ``vof ≈ s · (aif ⊛ g)``, ``g`` a transit-time density (`ctpmaps.perfusion._outflow`).

    The fit is causal and uses every frame, so recirculation, a bolus of any shape and an
    acquisition that ends before the curves return to baseline are all allowed for.
    """
    return float(fit_transit(aif.curve, aif.times, vof.curve).scale[0])


#: The tissue around the AIF's voxels (`tissue_spill`) is read within this in-plane
#: distance (mm) of them.
SPILL_RING_MM = 2.0
#: Voxels of that ring peaking above this share of the AIF's own peak hold artery
#: themselves (grey matter peaks near a tenth of it) and are left out.
SPILL_ARTERIAL_PEAK = 0.25
#: Fixed-point iterations of `tissue_spill` (each shrinks the error about tenfold).
SPILL_ITERATIONS = 6


@dataclass
class Spill:
    """Tissue in the AIF's voxels (`tissue_spill`): ``fraction`` of each voxel that is
    tissue like its surroundings (0 when none is found), the surroundings' mean curve
    (HU, at the frame times) and the number of voxels it was read from."""

    fraction: float
    tissue: np.ndarray
    n_voxels: int


def tissue_spill(
    aif: InputFunction,
    vof: InputFunction,
    enhancement: np.ndarray,
    region: np.ndarray,
    spacing: tuple[float, float, float],
    *,
    ring_mm: float = SPILL_RING_MM,
) -> Spill:
    """How much of the AIF's voxels is tissue, and that tissue's curve.

    An artery of a few millimetres never fills a voxel of a 5 mm slice: on a phantom study
    at 512 (seed 3004, noise-free) the automatic AIF's voxels were 40-60 % artery and the
    rest mostly grey matter. Scaling their mean curve ``m`` to the VOF's area restores the
    area but not the shape: the tissue part, late and slow, keeps about a twelfth of the
    area that belongs to the bolus (the scaled curve / true AIF read 0.87 on the rise,
    0.98 after the peak), and a deconvolution against it reads a narrower, taller
    residue: the NLR's CBF read 8.8 % high (net of the phantom's VOF/AIF area ratio)
    against 5.1 % with the true AIF given, CBV unchanged; 6.3 % with this correction,
    which leaves the scaled curve / true AIF flat (0.93-0.94, the area ratio). Here each
    AIF voxel is taken as a fraction ``p`` artery and ``1 - p`` tissue like its
    surroundings (the mean curve ``T`` of the ``region`` voxels within ``ring_mm``
    in-plane, other than the AIF's and those that peak above `SPILL_ARTERIAL_PEAK` of its
    peak): the arterial curve is ``(m - (1 - p) T) / p``, and ``p`` is the fixed point of
    ``p = 1 / s``, ``s`` the VOF's scale (`partial_volume_scale`) of the curve
    ``m - (1 - p) T``. Where the remainder of the voxels is cerebrospinal fluid, ``T`` is
    low and so is the correction; a fraction outside (0, 1) (an AIF at least as large as
    the VOF: no partial volume to speak of) leaves the AIF as it is.
    """
    if aif.voxels.size == 0:
        return Spill(0.0, np.zeros_like(aif.curve), 0)
    shape = enhancement.shape[:3]
    own = np.zeros(shape, bool)
    own[tuple(aif.voxels.T)] = True
    radius = np.maximum(1, np.round(ring_mm / np.asarray(spacing[:2], float))).astype(int)
    yy, xx = np.ogrid[-radius[0] : radius[0] + 1, -radius[1] : radius[1] + 1]
    disc = ((yy * spacing[0]) ** 2 + (xx * spacing[1]) ** 2 <= ring_mm**2)[..., None]
    ring = ndimage.binary_dilation(own, structure=disc) & ~own & np.asarray(region, bool)
    m = np.asarray(aif.curve, np.float64)
    curves = enhancement[ring]
    curves = curves[curves.max(axis=1) <= SPILL_ARTERIAL_PEAK * m.max()]
    if len(curves) == 0:
        return Spill(0.0, np.zeros_like(m), 0)
    tissue = curves.mean(axis=0, dtype=np.float64)
    n = len(curves)
    p = 1.0 / partial_volume_scale(aif, vof)
    for _ in range(SPILL_ITERATIONS):
        if not 0.0 < p < 1.0:
            break
        trial = InputFunction(m - (1.0 - p) * tissue, aif.times)
        p = 1.0 / partial_volume_scale(trial, vof)
    return Spill(1.0 - p if 0.0 < p < 1.0 else 0.0, tissue, n)


def curve_from_mask(
    enhancement: np.ndarray, times: np.ndarray, mask: np.ndarray, *, kind: str, source: str
) -> InputFunction:
    """Mean enhancement over a user's mask (x, y, z)."""
    mask = np.asarray(mask).astype(bool)
    if mask.shape != enhancement.shape[:3]:
        raise InputError(
            source, f"mask shape {mask.shape} does not match the study {enhancement.shape[:3]}"
        )
    if not mask.any():
        raise InputError(source, "the mask is empty")
    return InputFunction(
        enhancement[mask].mean(axis=0), np.asarray(times), np.argwhere(mask), kind, f"mask:{source}"
    )


def read_curve_csv(path: str | Path, times: np.ndarray, *, kind: str = "aif") -> InputFunction:
    """Read a curve from a CSV of ``time, value`` rows (s, HU of enhancement), with or
    without a header, and interpolate it at the study's frame times."""
    path = Path(path)
    try:
        rows = list(csv.reader(path.read_text().splitlines()))
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc}") from exc
    values = []
    for i, row in enumerate(rows):
        try:
            values.append((float(row[0]), float(row[1])))
        except (ValueError, IndexError):
            if i == 0:
                continue  # a header
            raise InputError(path, f"line {i + 1}: expected 'time, value', got {row}") from None
    if len(values) < 3:
        raise InputError(path, f"expected at least 3 'time, value' rows, got {len(values)}")
    t, v = np.array(values).T
    if np.any(np.diff(t) <= 0):
        raise InputError(path, "times are not strictly increasing")
    if t[0] > times[0] + 1e-6 or t[-1] < times[-1] - 1e-6:
        raise InputError(
            path, f"times cover {t[0]:g}-{t[-1]:g} s, the study {times[0]:g}-{times[-1]:g} s"
        )
    return InputFunction(np.interp(times, t, v), np.asarray(times), kind=kind, source=f"csv:{path}")
