"""Overlap and volume of binary masks: the project's one Dice.

Dice similarity coefficient (Dice 1945; Sørensen 1948) of masks A and B::

    DSC = 2 |A ∩ B| / (|A| + |B|)

When both masks are empty the ratio is 0 / 0: it is undefined and `dice` returns NaN by
default (the convention of nnU-Net's evaluation and MONAI's ``DiceMetric(ignore_empty=
True)``), so that a cohort mean cannot be inflated by patients without a lesion; pass
``empty=1.0`` to count two empty masks as perfect agreement. One empty mask against a
non-empty one gives 0.

Volumes are in mL: voxel count times the voxel volume (mm^3 / 1000).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ._result import Result

__all__ = [
    "MaskComparison",
    "voxel_volume_ml",
    "dice",
    "volume_ml",
    "volume_error_ml",
    "compare_masks",
]


def voxel_volume_ml(spacing_mm: Sequence[float]) -> float:
    """Volume of one voxel in mL from its spacing in mm (the first three values).

    Examples
    --------
    >>> voxel_volume_ml((0.5, 0.5, 5.0))
    0.00125
    """
    spacing = np.asarray(spacing_mm, dtype=float)[:3]
    if spacing.size != 3 or not np.all(np.isfinite(spacing) & (spacing > 0)):
        raise InputError("spacing_mm", f"expected three positive spacings in mm, got {spacing_mm}")
    return float(np.prod(spacing)) / 1000.0


def _check_mask(mask: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise InputError(
            name,
            f"expected a boolean mask, got dtype {mask.dtype} (convert labels first, e.g. "
            "labels > 0)",
        )
    return mask


def _check_pair(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> tuple:
    a, b = _check_mask(a, names[0]), _check_mask(b, names[1])
    if a.shape != b.shape:
        raise InputError(names[1], f"expected the shape of {names[0]} {a.shape}, got {b.shape}")
    return a, b


def dice(a: np.ndarray, b: np.ndarray, *, empty: float = float("nan")) -> float:
    """Dice similarity coefficient of two boolean masks of the same shape.

    Parameters
    ----------
    a, b : ndarray of bool, same shape (any)
        The masks.
    empty : float
        Value returned when both masks are empty (default NaN: undefined).

    Returns
    -------
    float
        In [0, 1]; ``empty`` when both masks are empty.

    Examples
    --------
    >>> a = np.array([1, 1, 0, 0], bool)
    >>> dice(a, np.array([1, 0, 1, 0], bool))
    0.5
    >>> dice(np.zeros(3, bool), np.zeros(3, bool))
    nan
    """
    a, b = _check_pair(a, b, ("a", "b"))
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    if total == 0:
        return float(empty)
    return 2.0 * int(np.count_nonzero(a & b)) / total


def volume_ml(mask: np.ndarray, voxel_ml: float) -> float:
    """Volume of a boolean mask in mL.

    Parameters
    ----------
    mask : ndarray of bool, any shape
    voxel_ml : float
        Volume of one voxel, mL (`voxel_volume_ml`).
    """
    if not (np.isfinite(voxel_ml) and voxel_ml > 0):
        raise InputError("voxel_ml", f"expected a positive voxel volume in mL, got {voxel_ml}")
    return int(np.count_nonzero(_check_mask(mask, "mask"))) * float(voxel_ml)


def volume_error_ml(estimate_ml, reference_ml) -> tuple:
    """Signed (estimate - reference) and absolute volume error, mL.

    Works on floats or arrays of volumes (broadcast).

    Examples
    --------
    >>> volume_error_ml(8.0, 10.0)
    (-2.0, 2.0)
    """
    signed = np.subtract(estimate_ml, reference_ml, dtype=float)
    if signed.ndim == 0:
        return float(signed), float(abs(signed))
    return signed, np.abs(signed)


@dataclass(frozen=True)
class MaskComparison(Result):
    """An estimated mask against a reference mask.

    Attributes
    ----------
    dice : float
        Dice coefficient (NaN, or the chosen value, when both are empty).
    estimate_ml, reference_ml : float
        Volumes, mL.
    signed_error_ml : float
        ``estimate_ml - reference_ml``, mL.
    absolute_error_ml : float
        ``|signed_error_ml|``, mL.
    """

    dice: float
    estimate_ml: float
    reference_ml: float
    signed_error_ml: float
    absolute_error_ml: float


def compare_masks(
    estimate: np.ndarray,
    reference: np.ndarray,
    *,
    voxel_ml: float,
    empty: float = float("nan"),
) -> MaskComparison:
    """Dice, volumes and volume errors of ``estimate`` against ``reference``.

    Parameters
    ----------
    estimate, reference : ndarray of bool, same shape
    voxel_ml : float
        Volume of one voxel, mL.
    empty : float
        Dice when both masks are empty (see `dice`).

    Returns
    -------
    MaskComparison
    """
    estimate, reference = _check_pair(estimate, reference, ("estimate", "reference"))
    est_ml, ref_ml = volume_ml(estimate, voxel_ml), volume_ml(reference, voxel_ml)
    signed, absolute = volume_error_ml(est_ml, ref_ml)
    return MaskComparison(dice(estimate, reference, empty=empty), est_ml, ref_ml, signed, absolute)
