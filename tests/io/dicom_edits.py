"""Editing DICOM files in place, for the I/O tests (imported by the tests of this folder)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from ctpmaps.io.atomic import MANIFEST


def dicom_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` but ctpmaps' manifest, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def edit(path: Path, change: Callable[[Dataset], None]) -> None:
    """Rewrite one DICOM file after ``change(ds)``."""
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path, enforce_file_format=True)


def edit_all(folder: Path, change: Callable[[Dataset], None]) -> None:
    """Rewrite every DICOM file of ``folder`` after ``change(ds)``."""
    for path in dicom_files(folder):
        edit(path, change)


#: A patient as a scanner would write it: what derived outputs keep, or anonymized drop.
PATIENT = {
    "PatientName": "Doe^Jane",
    "PatientID": "MRN-0042317",
    "PatientBirthDate": "19480213",
    "PatientSex": "F",
    "PatientAge": "076Y",
    "OtherPatientIDs": "ALT-99812",
    "AccessionNumber": "ACC-5521",
    "ReferringPhysicianName": "House^Gregory",
    "InstitutionName": "St Elsewhere Stroke Unit",
    "StudyID": "STU-77",
    "StudyDate": "20250917",
    "StudyTime": "031500",
}


def give_patient(ds: Dataset) -> None:
    """Set `PATIENT` on a dataset (an `edit` change)."""
    for key, value in PATIENT.items():
        setattr(ds, key, value)
