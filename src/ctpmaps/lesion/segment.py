"""Core, hypoperfusion and penumbra from perfusion maps by thresholds.

Two rules, every threshold a field of `LesionCriteria`:

``"tmax"`` (default when the maps hold Tmax; RAPID-like, Campbell et al. 2011,
Albers et al. 2018):

- core: relative CBF below ``core_rcbf``, CBF relative to the median (RAPID: mean; see
  ``reference_statistic``) CBF of healthy tissue (Tmax below ``healthy_tmax_s``) in the
  *other* hemisphere. By default the threshold depends on the method that made the maps
  (`core_rcbf_for`, from the method registry `ctpmaps.perfusion.METHODS`, each calibrated
  on phantom patients disjoint from the evaluation cohort: ``docs/core_threshold.md``;
  RAPID's 30 % for maps of unknown origin);
- hypoperfusion: Tmax above ``hypoperfusion_tmax_s``, by default the method's
  (`hypoperfusion_tmax_for`: each method reads Tmax its own way, calibrated as the core
  threshold; the clinical 6 s for maps of unknown origin);
- severe hypoperfusion: Tmax above ``severe_tmax_s`` (10 s), for the hypoperfusion
  intensity ratio;
- both thresholds read Tmax and relative CBF after an in-plane median over a square of
  about ``median_mm`` (3 mm; `median_in_brain`), where the voxel size is known (the
  affine). One voxel's Tmax and CBF carry the noise of one voxel's curve (at 512 x 512,
  0.49 mm pixels, the 2 mm bilateral filter leaves 3 HU), while the decision is made on
  volumes of millilitres. Measured by ``benchmarks/calibrate_thresholds.py`` (calibration
  seeds 3000-3009, matrix 512, ``docs/core_threshold.md`` before and after): nlr at its
  thresholds (5 s, 0.25) went from hypoperfusion Dice 0.852 to 0.871 and core Dice 0.751
  to 0.786 (mean absolute core volume error 3.2 -> 2.9 mL). Larger squares would smooth
  more noise on the phantom, whose lesions vary smoothly, but round off a real lesion's
  finer border; 3 mm is near the frames' own filter (2 mm). At 128 x 128 (1.95 mm
  pixels) the square is one voxel: no smoothing.

``"cbv"`` (maps without Tmax, e.g. the seed's NLR maps of CBV, CBF, TTP, MTT; the seed
segmented the core on CBV and the hypoperfused tissue on CBF and TTP by hand):

- hypoperfusion: TTP later than the median TTP of the other hemisphere's healthy tissue
  by more than ``hypoperfusion_ttp_delay_s`` (4 s), or with ``hypoperfusion_on="cbf"`` a
  CBF below ``hypoperfusion_rcbf`` (70 %) of the mirrored contralateral tissue;
- core: hypoperfused voxels whose CBV is below ``core_rcbv`` (60 %) of the mirrored
  contralateral tissue (or, with ``core_cbv_ml`` set, below that absolute CBV in
  mL/100 g: Wintermark et al. 2006 used 2.0 mL/100 g).

"Mirrored contralateral tissue" is the map smoothed over healthy brain (Gaussian,
``mirror_fwhm_mm``) and read at each voxel's mirror image across the mid-sagittal plane:
a reference that follows grey and white matter, which a hemisphere mean cannot (white
matter has 40 % of grey matter's CBF and half its CBV).

Both rules: penumbra = hypoperfusion minus core; only voxels of the brain mask count
(it excludes CSF, large vessels, bone and air: `ctpmaps.preprocess.brainmask`); the core is
kept inside the hypoperfusion for ``"cbv"`` and as found for ``"tmax"``; connected
clusters (26-connectivity, in 3D) smaller than ``min_cluster_ml`` are dropped from every
mask.

The module stays whole: the criteria and the two rules share their references (the
mirrored contralateral tissue, the healthy other hemisphere) and are read together.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy import ndimage

from .._threads import n_threads
from ..errors import InputError
from ..perfusion.methods import METHODS
from .midline import Midline, fit_midline, hemisphere_labels

__all__ = [
    "RULES",
    "DEFAULT_CORE_RCBF",
    "core_rcbf_for",
    "hypoperfusion_tmax_for",
    "DEFAULT_HYPOPERFUSION_TMAX_S",
    "resolve_criteria",
    "LesionCriteria",
    "Lesions",
    "segment_lesions",
    "segment_about_midline",
    "remove_small_clusters",
    "mirror_reference",
    "median_in_brain",
    "smoothed_for_thresholds",
    "relative_cbf",
]

log = logging.getLogger(__name__)

#: Segmentation rules by name.
RULES = ("auto", "tmax", "cbv")

#: For maps of unknown origin (a dict of arrays): RAPID's value.
DEFAULT_CORE_RCBF = 0.30
#: For maps of unknown origin: the clinical Tmax > 6 s (Albers et al. 2018).
DEFAULT_HYPOPERFUSION_TMAX_S = 6.0


def core_rcbf_for(method: str | None) -> float:
    """The default core threshold for maps made by ``method``.

    A relative-CBF threshold is specific to the deconvolution (methods differ in how
    dispersion, delay and noise lower the CBF of hypoperfused tissue against healthy
    tissue; Fahmi et al., AJNR 2012), so each registered method carries its own
    (`ctpmaps.perfusion.Method.core_rcbf`, calibrated by ``benchmarks/calibrate_thresholds.py``
    on a cohort disjoint from the evaluation cohort: ``docs/core_threshold.md``); maps of
    unknown origin get RAPID's 30 % (`DEFAULT_CORE_RCBF`).
    """
    entry = METHODS.get(str(method or "").lower())
    return entry.core_rcbf if entry is not None else DEFAULT_CORE_RCBF


def hypoperfusion_tmax_for(method: str | None) -> float:
    """The default hypoperfusion threshold (Tmax, s) for maps made by ``method``.

    Each registered method reads Tmax its own way (`ctpmaps.perfusion.Method`), so each
    carries its threshold; maps of unknown origin get the clinical 6 s
    (`DEFAULT_HYPOPERFUSION_TMAX_S`).
    """
    entry = METHODS.get(str(method or "").lower())
    return entry.hypoperfusion_tmax_s if entry is not None else DEFAULT_HYPOPERFUSION_TMAX_S


@dataclass(frozen=True)
class LesionCriteria:
    """Thresholds of the lesion rules (see the module docstring).

    Attributes
    ----------
    rule : {"auto", "tmax", "cbv"}
        ``"auto"`` takes ``"tmax"`` when the maps hold a finite Tmax, else ``"cbv"``.
    core_rcbf : float or None
        ``"tmax"``: core where CBF < this fraction of the healthy contralateral reference
        (its median by default, see ``reference_statistic``); None takes the value for the
        maps' method (`core_rcbf_for`), recorded in `Lesions.criteria`.
    hypoperfusion_tmax_s : float or None
        ``"tmax"``: hypoperfusion where Tmax > this, s; None takes the value for the maps'
        method (`hypoperfusion_tmax_for`), recorded in `Lesions.criteria`.
    severe_tmax_s : float
        Severe hypoperfusion (numerator of the hypoperfusion intensity ratio), Tmax > this, s.
    healthy_tmax_s : float
        Healthy reference tissue has Tmax below this, s.
    core_reference : {"hemisphere", "mirror"}
        ``"tmax"``: relative CBF against the other hemisphere's healthy tissue (RAPID) or
        against the mirrored contralateral tissue.
    reference_statistic : {"median", "mean"}
        ``"tmax"``/``"hemisphere"``: how the other hemisphere's healthy CBF is summarised.
        RAPID takes the mean; the median is the default because noise skews voxel-wise
        CBF upwards (a short box fits noise: before the box NLR's 2 s lower MTT bound, 2 %
        of healthy voxels at 512 x 512 had boxes under 1 s and CBF in the thousands), which
        moves the mean and barely the median; on tissue without such outliers the two agree
        within a few percent.
    core_within_hypoperfusion : bool
        Count core only inside the hypoperfusion (low flow without delay is not ischaemia:
        partial volume with CSF at the brain's edges, white matter).
    hypoperfusion_on : {"ttp", "cbf"}
        ``"cbv"``: which map defines hypoperfusion.
    hypoperfusion_ttp_delay_s : float
        ``"cbv"``/``"ttp"``: TTP later than the healthy contralateral median by more than this, s.
    hypoperfusion_rcbf : float
        ``"cbv"``/``"cbf"``: CBF below this fraction of the mirrored contralateral CBF.
    core_rcbv : float
        ``"cbv"``: core where CBV < this fraction of the mirrored contralateral CBV.
    core_cbv_ml : float or None
        ``"cbv"``: an absolute CBV threshold (mL/100 g) instead of ``core_rcbv``.
    healthy_ttp_delay_s : float
        ``"cbv"``: healthy reference tissue has a TTP delay below this, s.
    mirror_fwhm_mm : float
        Smoothing of the mirrored reference maps, mm.
    median_mm : float
        ``"tmax"``: Tmax and relative CBF are median-filtered in-plane over a square of
        about this side, mm, before their thresholds (`median_in_brain`; 0 or a pixel
        larger than it: none). Needs the affine (voxel size).
    min_cluster_ml : float
        Connected clusters smaller than this are dropped, mL.
    """

    rule: str = "auto"
    core_rcbf: float | None = None
    hypoperfusion_tmax_s: float | None = None
    severe_tmax_s: float = 10.0
    healthy_tmax_s: float = 4.0
    core_reference: str = "hemisphere"
    reference_statistic: str = "median"
    core_within_hypoperfusion: bool = True
    hypoperfusion_on: str = "ttp"
    hypoperfusion_ttp_delay_s: float = 4.0
    hypoperfusion_rcbf: float = 0.70
    core_rcbv: float = 0.60
    core_cbv_ml: float | None = None
    healthy_ttp_delay_s: float = 2.0
    mirror_fwhm_mm: float = 8.0
    median_mm: float = 3.0
    min_cluster_ml: float = 0.5

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise InputError("rule", f"expected one of {RULES}, got {self.rule!r}")
        if self.core_reference not in ("hemisphere", "mirror"):
            raise InputError(
                "core_reference", f"expected 'hemisphere' or 'mirror', got {self.core_reference!r}"
            )
        if self.reference_statistic not in ("median", "mean"):
            raise InputError(
                "reference_statistic",
                f"expected 'median' or 'mean', got {self.reference_statistic!r}",
            )
        if self.hypoperfusion_on not in ("ttp", "cbf"):
            raise InputError(
                "hypoperfusion_on", f"expected 'ttp' or 'cbf', got {self.hypoperfusion_on!r}"
            )
        for name, value in asdict(self).items():
            if isinstance(value, (str, bool)) or value is None:
                continue
            if not (np.isfinite(value) and value >= 0):
                raise InputError(name, f"expected a finite number >= 0, got {value!r}")
        if self.hypoperfusion_tmax_s is not None and self.severe_tmax_s < self.hypoperfusion_tmax_s:
            raise InputError(
                "severe_tmax_s",
                f"expected >= hypoperfusion_tmax_s ({self.hypoperfusion_tmax_s}), "
                f"got {self.severe_tmax_s}",
            )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record."""
        return asdict(self)


@dataclass
class Lesions:
    """Lesion masks of one study, each (x, y, z) bool.

    Attributes
    ----------
    core, hypoperfusion, penumbra : ndarray of bool
        Ischaemic core, hypoperfused tissue and their difference.
    severe : ndarray of bool or None
        Tmax > ``severe_tmax_s`` (``"tmax"`` rule only).
    hemispheres : ndarray of uint8
        1 right, 2 left, 0 outside the brain mask (`ctpmaps.lesion.midline`).
    voxel_ml : float
        Volume of one voxel, mL.
    rule : str
        The rule applied (``"tmax"`` or ``"cbv"``).
    criteria : LesionCriteria
    reference : dict
        Reference values per hemisphere (healthy means/medians), for the record.
    """

    core: np.ndarray
    hypoperfusion: np.ndarray
    penumbra: np.ndarray
    severe: np.ndarray | None
    hemispheres: np.ndarray
    voxel_ml: float
    rule: str
    criteria: LesionCriteria
    reference: dict[str, Any] = field(default_factory=dict)

    def masks(self) -> dict[str, np.ndarray]:
        """The masks by name (``severe`` only when known)."""
        out = {"core": self.core, "penumbra": self.penumbra, "hypoperfusion": self.hypoperfusion}
        if self.severe is not None:
            out["severe_hypoperfusion"] = self.severe
        return out

    def volumes_ml(self) -> dict[str, float]:
        """Volume of every mask, mL."""
        return {k: float(v.sum()) * self.voxel_ml for k, v in self.masks().items()}


def resolve_criteria(criteria: LesionCriteria, method: str | None) -> LesionCriteria:
    """``criteria`` with the thresholds left to the method (None) set for ``method``.

    Raises
    ------
    InputError
        The method's hypoperfusion threshold is above ``severe_tmax_s``.
    """
    crit = criteria
    if crit.core_rcbf is None:
        crit = replace(crit, core_rcbf=core_rcbf_for(method))
    if crit.hypoperfusion_tmax_s is None:
        crit = replace(crit, hypoperfusion_tmax_s=hypoperfusion_tmax_for(method))
    return crit  # replace() re-runs the checks (severe_tmax_s >= hypoperfusion_tmax_s)


def remove_small_clusters(mask: np.ndarray, voxel_ml: float, min_ml: float) -> np.ndarray:
    """Drop 26-connected clusters of ``mask`` (x, y, z) smaller than ``min_ml`` (mL)."""
    mask = np.asarray(mask, bool)
    if min_ml <= 0 or not mask.any():
        return mask.copy()
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1) * voxel_ml
    keep = sizes >= min_ml
    keep[0] = False
    return keep[labels]


def mirror_reference(
    values: np.ndarray,
    healthy: np.ndarray,
    midline: Midline,
    affine: np.ndarray,
    *,
    fwhm_mm: float = 8.0,
) -> np.ndarray:
    """Each voxel's contralateral reference: ``values`` smoothed over ``healthy`` voxels and
    read at the voxel's mirror image across ``midline``; (x, y, z) float32, NaN where the
    mirror image has no healthy tissue nearby.

    Smoothing is a normalised convolution (Gaussian of ``fwhm_mm`` in the slice plane,
    none across slices): ``G * (v w) / G * w`` with ``w`` the healthy mask.
    """
    affine = np.asarray(affine, float)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    w = (np.asarray(healthy, bool) & np.isfinite(values)).astype(np.float32)
    v = np.where(w > 0, values, 0.0).astype(np.float32)
    sigma = [fwhm_mm / 2.3548 / spacing[0], fwhm_mm / 2.3548 / spacing[1], 0.0]
    num = ndimage.gaussian_filter(v, sigma, mode="constant")
    den = ndimage.gaussian_filter(w, sigma, mode="constant")
    shape = values.shape
    idx = np.indices(shape, dtype=np.float32).reshape(3, -1)
    world = affine[:3, :3] @ idx + affine[:3, 3:4]
    dist = midline.normal @ world - midline.offset_mm
    mirrored = world - 2.0 * dist[None, :] * midline.normal[:, None]
    coords = (np.linalg.inv(affine) @ np.vstack([mirrored, np.ones((1, mirrored.shape[1]))]))[:3]
    m_num = ndimage.map_coordinates(num, coords, order=1, mode="constant", cval=0.0)
    m_den = ndimage.map_coordinates(den, coords, order=1, mode="constant", cval=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = np.where(m_den > 0.2, m_num / m_den, np.nan)
    return ref.reshape(shape).astype(np.float32)


def median_in_brain(
    values: np.ndarray, inside: np.ndarray, spacing: tuple[float, ...], size_mm: float
) -> tuple[np.ndarray, int]:
    """``values`` (x, y, z) median-filtered in each slice over a square of about
    ``size_mm`` (the odd number of pixels nearest to it, from the x spacing: CT's axial
    pixels are square), reading only voxels ``inside``.

    Voxels outside ``inside`` (no tissue, NaN) first take the value of the nearest voxel
    inside in their slice, so that the brain's edge is not pulled towards the background;
    the result is NaN outside ``inside``. scipy has no median that skips masked voxels
    (``generic_filter`` with ``nanmedian`` is a Python call per voxel: minutes at 512), hence
    the nearest-value fill.

    Returns
    -------
    filtered : ndarray (x, y, z) float32
    width : int
        Side of the square in pixels (1: unchanged).
    """
    inside = np.asarray(inside, bool) & np.isfinite(values)
    half = np.floor((size_mm / float(spacing[0]) - 1.0) / 2.0 + 0.5) if size_mm > 0 else 0
    width = 2 * max(int(half), 0) + 1
    out = np.where(inside, values, np.nan).astype(np.float32)
    if width <= 1:
        return out, 1
    # Only the box around the tissue (and a square's width beyond) can change: 0.12 s per
    # 512 x 512 slice for the whole slice, in threads (scipy's filters release the GIL).
    if not inside.any():
        return out, width
    where = np.argwhere(inside.any(axis=2))
    lo, hi = np.maximum(where.min(axis=0) - width, 0), where.max(axis=0) + width + 1
    box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]))

    def one(z: int) -> None:
        sl = inside[box + (z,)]
        if not sl.any():
            return
        near = ndimage.distance_transform_edt(~sl, return_distances=False, return_indices=True)
        filled = values[box + (z,)][tuple(near)]
        out[box + (z,)] = np.where(sl, ndimage.median_filter(filled, size=width), np.nan)

    with ThreadPoolExecutor(max_workers=min(n_threads(None), values.shape[2])) as pool:
        list(pool.map(one, range(values.shape[2])))
    return out, width


def smoothed_for_thresholds(
    tmax: np.ndarray, rcbf: np.ndarray, valid: np.ndarray, affine, median_mm: float
) -> tuple[np.ndarray, np.ndarray, str]:
    """Tmax (s) and relative CBF as the ``"tmax"`` rule thresholds them: `median_in_brain`
    over ``median_mm`` where the voxel size is known (``affine``), with a note for the
    record."""
    if affine is None:
        return tmax, rcbf, "none (no voxel size given)"
    spacing = np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0)
    tmax, width = median_in_brain(tmax, valid, spacing, median_mm)
    rcbf, _ = median_in_brain(rcbf, valid, spacing, median_mm)
    if width == 1:
        return tmax, rcbf, "none (pixels larger than the median's size)"
    note = f"Tmax and relative CBF: in-plane median over {width} x {width} pixels"
    return tmax, rcbf, f"{note} ({width * spacing[0]:.1f} mm)"


def _maps_dict(maps: Any) -> dict[str, np.ndarray]:
    if hasattr(maps, "as_dict"):
        return {k: np.asarray(v, np.float32) for k, v in maps.as_dict().items()}
    if isinstance(maps, Mapping):
        return {str(k).lower(): np.asarray(v, np.float32) for k, v in maps.items()}
    raise InputError("maps", f"expected PerfusionMaps or a dict of arrays, got {type(maps)}")


def _other_hemisphere_stat(values, healthy, hemis, stat) -> tuple[np.ndarray, dict[str, float]]:
    """Per voxel: ``stat`` of ``values`` over healthy voxels of the other hemisphere."""
    ref = np.full(values.shape, np.nan, np.float32)
    record: dict[str, float] = {}
    for side, other, name in ((1, 2, "right"), (2, 1, "left")):
        sel = healthy & (hemis == other) & np.isfinite(values)
        if sel.sum() < 10:  # a hemisphere without healthy tissue: fall back to both sides
            sel = healthy & (hemis > 0) & np.isfinite(values)
        value = float(stat(values[sel])) if sel.any() else np.nan
        ref[hemis == side] = value
        record[f"reference_for_{name}"] = value
    return ref, record


def segment_lesions(
    maps: Any,
    brain: np.ndarray,
    hemispheres: np.ndarray,
    voxel_ml: float,
    *,
    criteria: LesionCriteria | None = None,
    midline: Midline | None = None,
    affine: np.ndarray | None = None,
) -> Lesions:
    """Core, hypoperfusion and penumbra masks from perfusion maps.

    Parameters
    ----------
    maps : PerfusionMaps or dict of str to ndarray (x, y, z)
        CBF (mL/100 g/min), CBV (mL/100 g), TTP and Tmax (s); NaN outside the brain.
        The ``"tmax"`` rule needs ``cbf`` and ``tmax``; ``"cbv"`` needs ``cbv`` and ``ttp``
        (or ``cbf``).
    brain : ndarray of bool, shape (x, y, z)
        Parenchyma: where lesions may lie.
    hemispheres : ndarray of uint8, shape (x, y, z)
        1 right, 2 left (`hemisphere_labels`).
    voxel_ml : float
        Volume of a voxel in mL (``prod(spacing) / 1000``).
    criteria : LesionCriteria, optional
        Thresholds; the defaults of `LesionCriteria` when None.
    midline, affine : optional
        Needed by the mirrored references of the ``"cbv"`` rule.

    Returns
    -------
    Lesions

    Raises
    ------
    InputError
        Shapes that differ, a missing map the rule needs, or ``"cbv"`` without midline.
    """
    crit = resolve_criteria(criteria or LesionCriteria(), getattr(maps, "method", None))
    m = _maps_dict(maps)
    brain = np.asarray(brain, bool)
    hemis = np.asarray(hemispheres)
    for name, arr in [("brain", brain), ("hemispheres", hemis), *m.items()]:
        if arr.shape != brain.shape:
            raise InputError(name, f"expected shape {brain.shape}, got {arr.shape}")
    if not voxel_ml > 0:
        raise InputError("voxel_ml", f"expected a positive voxel volume in mL, got {voxel_ml}")
    has_tmax = "tmax" in m and bool(np.isfinite(m["tmax"][brain]).any())
    rule = crit.rule if crit.rule != "auto" else ("tmax" if has_tmax else "cbv")
    mirrored = rule == "cbv" or crit.core_reference == "mirror"
    if mirrored and (midline is None or affine is None):
        raise InputError("midline", "mirrored references need the midline and the affine")
    if rule == "tmax":
        core, hypo, severe, ref = _tmax_rule(m, brain, hemis, crit, midline, affine)
    else:
        core, hypo, ref = _cbv_rule(m, brain, hemis, crit, midline, affine)
        severe = None
    drop = lambda x: remove_small_clusters(x, voxel_ml, crit.min_cluster_ml)  # noqa: E731
    core, hypo = drop(core), drop(hypo)
    penumbra = hypo & ~core  # exactly the difference: volumes add up
    severe = drop(severe) if severe is not None else None
    lesions = Lesions(
        core, hypo, penumbra, severe, hemis.astype(np.uint8), voxel_ml, rule, crit, ref
    )
    log.info(
        "lesions (%s): %s",
        rule,
        ", ".join(f"{k} {v:.1f} mL" for k, v in lesions.volumes_ml().items()),
    )
    return lesions


def segment_about_midline(
    maps: Any,
    brain: np.ndarray,
    unenhanced_image: np.ndarray,
    spacing: tuple[float, float, float],
    affine: np.ndarray,
    *,
    criteria: LesionCriteria | None = None,
) -> tuple[Lesions, Midline]:
    """`segment_lesions` on a study's grid: the midline fitted on ``unenhanced_image``
    (HU, x, y, z; `fit_midline`), the hemispheres inside ``brain``, voxel volumes from
    ``spacing`` (mm). The one sequence the chain, the evaluation and the benchmarks share.

    Returns
    -------
    (Lesions, Midline)
    """
    midline = fit_midline(unenhanced_image, spacing, affine)
    hemis = hemisphere_labels(np.shape(brain), affine, midline, mask=brain)
    voxel_ml = float(np.prod(spacing[:3])) / 1000.0
    lesions = segment_lesions(
        maps, brain, hemis, voxel_ml, criteria=criteria, midline=midline, affine=affine
    )
    return lesions, midline


def _need(m: dict[str, np.ndarray], *names: str) -> None:
    missing = [n for n in names if n not in m]
    if missing:
        raise InputError("maps", f"the rule needs {', '.join(missing)}; got {sorted(m)}")


def relative_cbf(
    maps: Any,
    brain: np.ndarray,
    hemispheres: np.ndarray,
    criteria: LesionCriteria | None = None,
    *,
    midline: Midline | None = None,
    affine: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The ``"tmax"`` rule's relative CBF: each voxel's CBF over its healthy reference.

    Parameters
    ----------
    maps : PerfusionMaps or dict
        With ``cbf`` (mL/100 g/min) and ``tmax`` (s), (x, y, z).
    brain, hemispheres : ndarray (x, y, z)
        As `segment_lesions`.
    criteria : LesionCriteria, optional
        ``healthy_tmax_s``, ``core_reference`` and ``reference_statistic`` are used.
    midline, affine : optional
        Needed for ``core_reference="mirror"``.

    Returns
    -------
    rcbf : ndarray (x, y, z) float32
        CBF / reference (dimensionless); NaN where either is missing.
    valid : ndarray (x, y, z) bool
        Brain voxels with finite CBF and Tmax.
    record : dict
        The reference values, for `Lesions.reference`.
    """
    crit = criteria or LesionCriteria()
    m = _maps_dict(maps)
    _need(m, "cbf", "tmax")
    cbf, tmax = m["cbf"], m["tmax"]
    valid = np.asarray(brain, bool) & np.isfinite(cbf) & np.isfinite(tmax)
    healthy = valid & (tmax < crit.healthy_tmax_s)
    stat = np.median if crit.reference_statistic == "median" else np.mean
    ref, record = _other_hemisphere_stat(cbf, healthy, np.asarray(hemispheres), stat)
    record["reference"] = (
        f"{crit.reference_statistic} CBF of healthy tissue (Tmax < healthy_tmax_s), "
        "other hemisphere"
    )
    if crit.core_reference == "mirror":
        if midline is None or affine is None:
            raise InputError("midline", "mirrored references need the midline and the affine")
        ref = mirror_reference(cbf, healthy, midline, affine, fwhm_mm=crit.mirror_fwhm_mm)
        record["reference"] = "CBF of healthy tissue at the mirror position, smoothed"
    record["units"] = "mL/100 g/min"
    with np.errstate(invalid="ignore", divide="ignore"):
        rcbf = (cbf / ref).astype(np.float32)
    return rcbf, valid, record


def _tmax_rule(m, brain, hemis, crit, midline, affine):
    rcbf, valid, record = relative_cbf(m, brain, hemis, crit, midline=midline, affine=affine)
    tmax, rcbf, record["median"] = smoothed_for_thresholds(
        m["tmax"], rcbf, valid, affine, crit.median_mm
    )
    with np.errstate(invalid="ignore"):
        core = valid & (rcbf < crit.core_rcbf)
        hypo = valid & (tmax > crit.hypoperfusion_tmax_s)
        severe = valid & (tmax > crit.severe_tmax_s)
    if crit.core_within_hypoperfusion:
        core &= hypo
    return core, hypo, severe, record


def _cbv_rule(m, brain, hemis, crit, midline, affine):
    _need(m, "cbv", "ttp" if crit.hypoperfusion_on == "ttp" else "cbf")
    cbv = m["cbv"]
    valid = brain & np.isfinite(cbv)
    record: dict[str, Any] = {}
    if "ttp" in m:
        ttp_ref, rec = _other_hemisphere_stat(m["ttp"], valid, hemis, np.median)
        delay = m["ttp"] - ttp_ref
        healthy = valid & np.isfinite(delay) & (delay < crit.healthy_ttp_delay_s)
        record["ttp_median_s"] = rec
    else:
        delay, healthy = None, valid
    with np.errstate(invalid="ignore", divide="ignore"):
        if crit.hypoperfusion_on == "ttp":
            hypo = valid & (delay > crit.hypoperfusion_ttp_delay_s)
        else:
            ref = mirror_reference(m["cbf"], healthy, midline, affine, fwhm_mm=crit.mirror_fwhm_mm)
            hypo = valid & (m["cbf"] < crit.hypoperfusion_rcbf * ref)
        if crit.core_cbv_ml is not None:
            core = hypo & (cbv < crit.core_cbv_ml)
        else:
            ref_cbv = mirror_reference(cbv, healthy, midline, affine, fwhm_mm=crit.mirror_fwhm_mm)
            core = hypo & (cbv < crit.core_rcbv * ref_cbv)
    record["reference"] = "TTP: healthy median of the other hemisphere; CBV/CBF: mirrored"
    return core, hypo, record
