"""Reading studies (DICOM, NIfTI, UniToBrain layout) and writing outputs."""

from __future__ import annotations

from .load import load_study
from .nifti import read_nifti_map, read_nifti_study, write_nifti_map, write_nifti_study
from .study import SOURCE_KINDS, Study

__all__ = [
    "Study",
    "SOURCE_KINDS",
    "load_study",
    "read_nifti_study",
    "write_nifti_study",
    "read_nifti_map",
    "write_nifti_map",
]
