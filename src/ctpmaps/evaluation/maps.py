"""Errors of a perfusion map against a reference map.

Normalised scale (the seed's Table 1)
    Each map is mapped linearly from its value range ``(low, high)`` onto [0, 1] and clipped;
    non-finite values (outside a fit's mask) become 0. This is the U-Net's target scale: the
    caller passes the ranges the network was trained with (``ctpmaps.nn.normalise.
    TARGET_RANGES``, importable without torch) so that the numbers compare with its
    training metrics. MSE is reported
    over the whole volume ("slice": every voxel of every slice, background included, as the
    seed) and inside the brain mask, with PSNR = 10 log10(1 / MSE) dB (peak 1). Beside each,
    a constant predictor on the same voxels: the reference's mean over those voxels (the
    brain mean inside the brain), the best constant in the least-squares sense, whose MSE is
    the reference's variance there. A map that does not beat it carries no spatial
    information. Over a cohort (`ctpmaps.evaluation.evaluate_cohort`) a second constant
    sits beside it: one value for every patient (the mean of the patients' brain means),
    whose MSE also holds the patients' differences in level (bolus timing for TTP, global
    flow for CBF) that each patient's own mean leaves out; the training metric of
    `ctpmaps.nn.train` uses such a value.

Level (CBF and CBV, `LEVEL_MAPS`)
    How much of an error is the patient's level: the ratio of the estimate's brain mean to
    the reference's, and the MSE inside the brain once the estimate is multiplied by its
    inverse (its level set to the reference's). Over a cohort, the SD of that ratio between
    patients is the level error. A CBF or CBV map scales with the inverse of the arterial
    input's amplitude, which differs between patients; a method that reads it wrongly (a
    network that cannot see it, an AIF scaled by a wrong venous ratio) has a level error,
    whatever its spatial pattern. Times have no such gain (healthy Tmax is near 0 s), so
    no level is computed for them.

Physical units
    Inside the brain (and per region: tissue class, residue-shape label ...), on voxels where
    both maps are finite: the median signed and absolute difference in the map's unit, and
    the median relative error ``100 (estimate / reference - 1)`` % and its median absolute
    value, on the voxels where the reference exceeds ``min_reference`` (relative errors of
    near-zero references, e.g. Tmax in healthy tissue, are meaningless).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..nn.normalise import normalise_target
from ._result import Result

__all__ = [
    "LEVEL_MAPS",
    "MapError",
    "PhysicalError",
    "normalise_map",
    "psnr_db",
    "map_error",
    "physical_errors",
    "regions_from_labels",
]


#: Maps whose patient level is a gain (the inverse of the arterial input's amplitude).
LEVEL_MAPS = ("cbf", "cbv")


def normalise_map(values: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Physical values onto [0, 1] (clipped, float32); non-finite values become 0.

    The U-Net's target mapping (`ctpmaps.nn.normalise.normalise_target`) with an explicit
    range, so that map errors here and the network's training metrics are on one scale.

    Parameters
    ----------
    values : ndarray, any shape
        Map in its physical unit.
    value_range : (low, high)
        Physical values sent to 0 and 1.

    Examples
    --------
    >>> normalise_map(np.array([0.0, 3.5, 12.0, np.nan]), (0.0, 10.0))
    array([0.  , 0.35, 1.  , 0.  ], dtype=float32)
    """
    return normalise_target(values, "map", value_range=value_range)


def psnr_db(mse: float) -> float:
    """Peak signal-to-noise ratio (dB) of maps on [0, 1]: ``10 log10(1 / mse)``.

    ``inf`` for a perfect map, NaN for an undefined MSE.
    """
    if not math.isfinite(mse):
        return float("nan")
    return 10.0 * math.log10(1.0 / mse) if mse > 0 else float("inf")


@dataclass(frozen=True)
class MapError(Result):
    """Errors of one map on the normalised [0, 1] scale.

    Attributes
    ----------
    n_slice, n_brain : int
        Voxels scored over the slices and inside the brain.
    mse_slice, psnr_slice_db : float
        Over every voxel of the volume (dimensionless, dB).
    mse_brain, psnr_brain_db : float
        Inside the brain mask.
    constant_mse_slice, constant_mse_brain : float
        MSE of the constant predictor (the reference's mean on the same voxels).
    reference_mean_brain : float
        The reference's mean inside the brain (normalised scale), for the cohort's
        constant.
    estimate_mean_brain : float
        The estimate's, for its level (their ratio; the scale starts at 0 for every map).
    mse_brain_level_matched : float
        Inside the brain, of the estimate times ``reference_mean_brain /
        estimate_mean_brain`` (NaN when the estimate's mean is not positive, or the map
        has no level: ``level=False``).
    """

    n_slice: int
    n_brain: int
    mse_slice: float
    psnr_slice_db: float
    mse_brain: float
    psnr_brain_db: float
    constant_mse_slice: float
    constant_mse_brain: float
    reference_mean_brain: float
    estimate_mean_brain: float
    mse_brain_level_matched: float


def _check_same(estimate, reference, mask=None) -> tuple[np.ndarray, np.ndarray]:
    estimate, reference = np.asarray(estimate), np.asarray(reference)
    if estimate.shape != reference.shape:
        raise InputError(
            "estimate", f"expected the reference's shape {reference.shape}, got {estimate.shape}"
        )
    if mask is not None and (np.shape(mask) != reference.shape or np.asarray(mask).dtype != bool):
        raise InputError(
            "brain", f"expected a boolean mask of shape {reference.shape}, got {np.shape(mask)}"
        )
    return estimate, reference


def _mse(err: np.ndarray) -> float:
    return float(np.mean(np.square(err, dtype=np.float64))) if err.size else float("nan")


def _variance(values: np.ndarray) -> float:
    return float(np.var(values, dtype=np.float64)) if values.size else float("nan")


def map_error(
    estimate: np.ndarray,
    reference: np.ndarray,
    *,
    value_range: tuple[float, float],
    brain: np.ndarray,
    level: bool = True,
) -> MapError:
    """MSE and PSNR of ``estimate`` against ``reference`` on the normalised scale.

    Parameters
    ----------
    estimate, reference : ndarray, shape (x, y, z)
        Maps in the same physical unit.
    value_range : (low, high)
        Physical range mapped onto [0, 1] (`normalise_map`).
    brain : ndarray of bool, shape (x, y, z)
        Brain mask.
    level : bool, optional
        Compute the level-matched MSE (module docstring; `LEVEL_MAPS`).

    Returns
    -------
    MapError
    """
    estimate, reference = _check_same(estimate, reference, brain)
    est = normalise_map(estimate, value_range)
    ref = normalise_map(reference, value_range)
    err = est - ref
    est_mean, ref_mean = (
        (float(np.mean(v[brain], dtype=np.float64)) for v in (est, ref))
        if brain.any()
        else (float("nan"), float("nan"))
    )
    matched = (
        _mse(est[brain] * (ref_mean / est_mean) - ref[brain])
        if level and est_mean > 0
        else float("nan")
    )
    return MapError(
        n_slice=int(err.size),
        n_brain=int(np.count_nonzero(brain)),
        mse_slice=(mse := _mse(err)),
        psnr_slice_db=psnr_db(mse),
        mse_brain=(mse_b := _mse(err[brain])),
        psnr_brain_db=psnr_db(mse_b),
        constant_mse_slice=_variance(ref),
        constant_mse_brain=_variance(ref[brain]),
        reference_mean_brain=ref_mean,
        estimate_mean_brain=est_mean,
        mse_brain_level_matched=matched,
    )


@dataclass(frozen=True)
class PhysicalError(Result):
    """Errors of one map in its physical unit inside one region.

    Attributes
    ----------
    region : str
        ``"brain"`` or the region's name.
    n_voxels : int
        Voxels of the region where both maps are finite.
    n_relative : int
        Of those, voxels whose reference exceeds ``min_reference`` (used for the %).
    median_bias, median_abs_error : float
        Median of ``estimate - reference`` and of its absolute value, in the map's unit.
    median_bias_pct, median_abs_error_pct : float
        Median relative error and median absolute relative error, %.
    """

    region: str
    n_voxels: int
    n_relative: int
    median_bias: float
    median_abs_error: float
    median_bias_pct: float
    median_abs_error_pct: float


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if values.size else float("nan")


def _region_error(name, estimate, reference, region, min_reference) -> PhysicalError:
    est, ref = estimate[region], reference[region]
    ok = np.isfinite(est) & np.isfinite(ref)
    diff = est[ok].astype(np.float64) - ref[ok]
    rel_ok = ref[ok] > min_reference
    rel = 100.0 * diff[rel_ok] / ref[ok][rel_ok]
    return PhysicalError(
        region=name,
        n_voxels=int(diff.size),
        n_relative=int(rel.size),
        median_bias=_median(diff),
        median_abs_error=_median(np.abs(diff)),
        median_bias_pct=_median(rel),
        median_abs_error_pct=_median(np.abs(rel)),
    )


def physical_errors(
    estimate: np.ndarray,
    reference: np.ndarray,
    *,
    brain: np.ndarray,
    regions: Mapping[str, np.ndarray] | None = None,
    min_reference: float = 0.0,
) -> list[PhysicalError]:
    """Median bias and absolute error, in the map's unit and in %, inside the brain and per
    region.

    Parameters
    ----------
    estimate, reference : ndarray, shape (x, y, z)
        Maps in the same physical unit (e.g. CBF in mL/100 g/min).
    brain : ndarray of bool, shape (x, y, z)
        Brain mask; every region is intersected with it.
    regions : mapping of str to ndarray of bool, optional
        Named regions (tissue classes, residue-shape labels; `regions_from_labels`).
    min_reference : float
        Relative errors only where the reference exceeds this value (map's unit).

    Returns
    -------
    list of PhysicalError
        ``"brain"`` first, then one per region in the given order.
    """
    estimate, reference = _check_same(estimate, reference, brain)
    out = [_region_error("brain", estimate, reference, brain, min_reference)]
    for name, region in (regions or {}).items():
        if np.shape(region) != reference.shape:
            raise InputError(f"regions[{name!r}]", f"expected shape {reference.shape}")
        mask = np.asarray(region, dtype=bool) & brain
        out.append(_region_error(name, estimate, reference, mask, min_reference))
    return out


def regions_from_labels(labels: np.ndarray, names: Mapping[int, str]) -> dict[str, np.ndarray]:
    """Boolean regions from a label map.

    Parameters
    ----------
    labels : ndarray of int, shape (x, y, z)
        Label per voxel (e.g. 1 GM, 2 WM).
    names : mapping of int to str
        Label value -> region name; labels not listed are ignored.

    Returns
    -------
    dict of str to ndarray of bool
    """
    labels = np.asarray(labels)
    return {name: labels == value for value, name in names.items()}
