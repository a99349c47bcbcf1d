"""Masks a user gives on a study's grid (NIfTI): brain, arterial and venous voxels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .nifti import read_nifti_map
from .study import Study

__all__ = ["read_mask"]


def read_mask(path: str | Path, study: Study) -> np.ndarray:
    """A NIfTI mask on the study's grid: (x, y, z) bool, nonzero voxels True.

    Raises
    ------
    InputError
        The file cannot be read, its shape differs from the study's, or its affine differs
        by more than 1e-3 mm (not the same grid).
    """
    data, affine = read_nifti_map(path)
    data = np.asarray(data)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.shape != study.shape:
        raise InputError(path, f"mask shape {data.shape} does not match the study {study.shape}")
    if not np.allclose(affine, study.affine, atol=1e-3):
        raise InputError(path, "mask affine differs from the study's: not on the same grid")
    return data > 0
