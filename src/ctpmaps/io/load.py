"""One entry point to read a study from any source: DICOM folder, NIfTI, UniToBrain."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .nifti import is_nifti, read_nifti_study
from .study import Study

__all__ = ["load_study"]


def load_study(
    path: str | Path, *, series_uid: str | None = None, frame_interval: float | None = None
) -> Study:
    """Read a CTP study from a NIfTI file, a DICOM folder or a UniToBrain patient folder.

    Parameters
    ----------
    path : str or Path
        ``*.nii``/``*.nii.gz`` (frame times from ``name.json``), a folder of DICOM files
        (any order, any depth; compressed or enhanced), or a UniToBrain patient folder
        (``MOL-XXX`` or one of its ``_Registered...`` siblings).
    series_uid : str, optional
        Which series to read when a DICOM folder holds several CTP series.
    frame_interval : float, optional
        Frame interval in s for DICOM without any time tags (ordered by instance number).

    Raises
    ------
    InputError
        The path is missing or its content cannot be read as a CTP study.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if path.is_file():
        if is_nifti(path):
            return read_nifti_study(path)
        raise InputError(path, "expected a NIfTI file (.nii, .nii.gz) or a folder of DICOM files")
    from .unitobrain import is_unitobrain_folder, read_unitobrain_study

    if is_unitobrain_folder(path):
        return read_unitobrain_study(path)
    from .dicom import read_dicom_study

    try:
        return read_dicom_study(path, series_uid=series_uid, frame_interval=frame_interval)
    except InputError as err:
        # A folder holding a NIfTI study (the phantom's MOL-XXX/ctp.nii.gz, a converted
        # series) and no DICOM: say which file to pass instead.
        niftis = sorted(p.name for p in path.iterdir() if p.is_file() and is_nifti(p))
        if not niftis or err.source != str(path):
            raise
        raise InputError(
            path, f"{err.problem}; the folder holds NIfTI: pass the file, e.g. {path / niftis[0]}"
        ) from None
