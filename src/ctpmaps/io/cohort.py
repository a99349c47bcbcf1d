"""The studies of a cohort folder, for the batch runner (``ctpmaps batch``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .nifti import is_nifti
from .unitobrain import find_unitobrain_patients

__all__ = ["CohortStudy", "find_studies"]


@dataclass(frozen=True)
class CohortStudy:
    """One study of a cohort: a name for its output folder and the path `load_study` reads."""

    name: str
    path: Path


def _study_in(folder: Path) -> Path:
    """The study a patient folder holds: its phantom-layout ``ctp.nii.gz``, its ``dicom/``
    series, or the folder itself (a DICOM folder)."""
    if (folder / "ctp.nii.gz").is_file():
        return folder / "ctp.nii.gz"
    if (folder / "dicom").is_dir():
        return folder / "dicom"
    return folder


def find_studies(root: str | Path) -> list[CohortStudy]:
    """Every study of a cohort folder, sorted by name.

    - a UniToBrain cohort: each patient's raw series (``MOL-XXX``);
    - otherwise each entry of ``root`` not starting with a dot: a NIfTI file (named by its
      stem), or a folder (named by itself) holding ``ctp.nii.gz`` (the phantom's layout), a
      ``dicom/`` series, or DICOM files. Other files (``cohort.json``, notes) are ignored.

    Raises
    ------
    InputError
        ``root`` is not a folder or holds no study.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "expected a cohort folder (one study per entry)")
    patients = find_unitobrain_patients(root)
    if patients:
        return [CohortStudy(p, root / p) for p in patients if (root / p).is_dir()]
    found = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and is_nifti(entry):
            found.append(CohortStudy(entry.name.split(".")[0], entry))
        elif entry.is_dir():
            found.append(CohortStudy(entry.name, _study_in(entry)))
    if not found:
        raise InputError(root, "no study: expected NIfTI files or one folder per study")
    return found
