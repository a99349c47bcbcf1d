"""Fixtures for the I/O tests: tiny synthetic studies and DICOM folders made from them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from dicom_edits import edit_all, give_patient

from ctpmaps.io.dicom import write_dicom_study
from ctpmaps.io.study import Study
from ctpmaps.io.testing.samples import TIMES, sample_study

#: The synthetic study of every I/O test (frame times `TIMES`).
make_study = sample_study
__all__ = ["TIMES", "make_study"]


@pytest.fixture(name="make_study")
def make_study_fixture() -> Callable[..., Study]:
    """The `make_study` factory, for tests that need other sizes or times."""
    return make_study


@pytest.fixture
def study() -> Study:
    return make_study()


@pytest.fixture
def ctp_folder(tmp_path: Path, study: Study) -> Path:
    """The `study` fixture written as an uncompressed DICOM series."""
    return write_dicom_study(study, tmp_path / "ctp", uid_seed="fixture")


@pytest.fixture
def patient_folder(ctp_folder: Path) -> Path:
    """The `ctp_folder` series as a scanner would identify its patient (`PATIENT`)."""
    edit_all(ctp_folder, give_patient)
    return ctp_folder
