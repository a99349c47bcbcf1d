"""Brain mask for CT perfusion: parenchyma without skull, air, CSF and large vessels.

Thresholds on a low-noise unenhanced image (the mean of the pre-bolus frames, lightly
smoothed in-plane) find the skull; the intracranial space is what the skull encloses in
each slice; parenchyma is the intracranial soft tissue between the CSF and blood HU
levels; large vessels are voxels whose peak enhancement is arterial or venous, not
tissue-like. Every threshold is a keyword argument.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import InputError
from .unenhanced import DEFAULT_BASELINE_FRAMES, unenhanced

__all__ = ["intracranial_mask", "ct_brain_mask"]


def _smooth_inplane(image: np.ndarray, spacing: tuple[float, float, float], fwhm_mm: float):
    sigma = [fwhm_mm / 2.3548 / s for s in spacing[:2]] + [0.0]
    return ndimage.gaussian_filter(image.astype(np.float32), sigma)


def _check(frames: np.ndarray, spacing) -> None:
    if frames.ndim != 4:
        raise InputError("frames", f"expected (x, y, z, t), got shape {frames.shape}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise InputError("spacing", f"expected 3 positive voxel sizes in mm, got {spacing}")


def intracranial_mask(
    unenhanced: np.ndarray,
    spacing: tuple[float, float, float],
    *,
    bone_hu: float = 150.0,
    smooth_fwhm_mm: float = 1.5,
    margin_mm: float = 0.0,
) -> np.ndarray:
    """Voxels inside the skull (x, y, z) bool, from an unenhanced HU image.

    Each slice's skull (> ``bone_hu``, closed over 3 mm gaps) is filled; the skull itself,
    grown by ``margin_mm`` (partial-volume bone), is removed. Slices where the skull does
    not close fall back to filling in 3D. The superior sagittal sinus lies against the
    inner table: the AIF/VOF search uses no margin.
    """
    img = _smooth_inplane(unenhanced, spacing, smooth_fwhm_mm)
    bone = img > bone_hu
    radius = max(1, int(round(1.5 / spacing[0])))
    closed = ndimage.binary_closing(bone, structure=np.ones((2 * radius + 1,) * 2 + (1,)))
    inside = np.zeros_like(bone)
    for k in range(bone.shape[2]):
        inside[..., k] = ndimage.binary_fill_holes(closed[..., k])
    if not inside.any() or inside.sum() <= closed.sum():
        inside = ndimage.binary_fill_holes(closed)
    grow = int(round(margin_mm / spacing[0]))
    if grow > 0:
        bone = ndimage.binary_dilation(bone, structure=np.ones((3, 3, 1), bool), iterations=grow)
    return inside & ~bone


def ct_brain_mask(
    frames: np.ndarray,
    spacing: tuple[float, float, float],
    *,
    n_baseline: int = DEFAULT_BASELINE_FRAMES,
    csf_hu: float = 15.0,
    blood_hu: float = 60.0,
    vessel_enhancement_hu: float = 80.0,
    min_component_ml: float = 5.0,
) -> np.ndarray:
    """Brain parenchyma mask (x, y, z) bool for a CTP study.

    Parameters
    ----------
    frames : ndarray, shape (x, y, z, t)
        HU frames.
    spacing : tuple of 3 floats
        Voxel size in mm.
    n_baseline : int
        Pre-bolus frames averaged for the unenhanced image (`unenhanced`).
    csf_hu, blood_hu : float
        Parenchyma lies between these unenhanced HU values (CSF ~5–10 HU below, bone and
        blood clot above).
    vessel_enhancement_hu : float
        Voxels whose smoothed peak enhancement exceeds this are large vessels (tissue
        peaks at 15–50 HU, arteries and the sinus at hundreds), removed with a 1-voxel
        margin.
    min_component_ml : float
        Connected components smaller than this (mL) are dropped.

    Returns
    -------
    ndarray of bool, shape (x, y, z)
    """
    _check(frames, spacing)
    base = unenhanced(frames, max(1, min(int(n_baseline), frames.shape[3])))
    inside = intracranial_mask(base, spacing, margin_mm=max(1.5, spacing[0]))
    img = _smooth_inplane(base, spacing, 2.0)
    soft = inside & (img >= csf_hu) & (img <= blood_hu)
    peak = _smooth_inplane(frames.max(axis=-1) - base, spacing, 1.0)
    vessels = ndimage.binary_dilation(
        peak > vessel_enhancement_hu, structure=np.ones((3, 3, 1), bool)
    )
    mask = soft & ~vessels
    mask = ndimage.binary_opening(mask, structure=np.ones((3, 3, 1), bool))
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    voxel_ml = float(np.prod(spacing)) / 1000.0
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1)) * voxel_ml
    keep = np.zeros(n + 1, bool)
    keep[1:] = sizes >= min_component_ml
    return keep[labels]
