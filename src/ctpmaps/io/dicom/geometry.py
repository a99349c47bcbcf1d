"""Slice geometry shared by the DICOM readers and writers: LPS <-> RAS+, planes, numbers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import InputError

__all__ = ["LPS_RAS", "SliceGeometry", "slice_geometry", "normal_of", "ds_number"]

#: Voxel -> world: DICOM LPS <-> NIfTI RAS+ (its own inverse).
LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def normal_of(orientation: np.ndarray) -> np.ndarray:
    """Unit slice normal of an *ImageOrientationPatient* (row cosines x column cosines)."""
    normal = np.cross(orientation[:3], orientation[3:])
    return normal / (np.linalg.norm(normal) or 1.0)


@dataclass(frozen=True)
class SliceGeometry:
    """Per-slice DICOM geometry derived from a RAS+ affine."""

    orientation: list[float]  # ImageOrientationPatient: row then column direction cosines
    spacing: list[float]  # PixelSpacing: [between rows, between columns] in mm
    positions: np.ndarray  # (z, 3) ImagePositionPatient (LPS, mm)
    locations: np.ndarray  # (z,) position along the slice normal (mm)
    slice_gap: float  # spacing between slice centres along the normal (mm)


def slice_geometry(affine: np.ndarray, n_slices: int) -> SliceGeometry:
    """DICOM geometry of the slices of a study with voxel->RAS+ ``affine``.

    Raises
    ------
    InputError
        A singular or non-finite affine.
    """
    affine = np.asarray(affine, dtype=np.float64)
    lps = LPS_RAS @ affine
    col_step, row_step, slice_step = lps[:3, 0], lps[:3, 1], lps[:3, 2]
    dx, dy = float(np.linalg.norm(col_step)), float(np.linalg.norm(row_step))
    if not np.isfinite(lps).all() or dx == 0 or dy == 0 or not np.linalg.norm(slice_step) > 0:
        raise InputError("study.affine", f"expected a non-singular affine, got {affine.tolist()}")
    row_cos, col_cos = col_step / dx, row_step / dy
    normal = np.cross(row_cos, col_cos)
    positions = lps[:3, 3][None, :] + np.arange(n_slices)[:, None] * slice_step[None, :]
    return SliceGeometry(
        orientation=[float(v) for v in (*row_cos, *col_cos)],
        spacing=[dy, dx],
        positions=positions,
        locations=positions @ normal,
        slice_gap=float(abs(slice_step @ normal)),
    )


def ds_number(value: float) -> str:
    """A DICOM decimal string (at most 16 characters) for ``value``."""
    text = f"{value:.10g}"
    return text if len(text) <= 16 else f"{value:.6e}"
