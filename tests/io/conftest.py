"""Fixtures for the I/O tests: tiny synthetic studies and DICOM folders made from them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from dicom_edits import edit_all, give_patient

from ctpmaps.io.dicom import write_dicom_study
from ctpmaps.io.study import Study

#: Irregular frame times (s) so that ordering and spacing errors show.
TIMES = np.array([0.0, 1.0, 2.5, 3.0, 4.75])


def make_study(nx: int = 16, ny: int = 12, nz: int = 3, times=TIMES, seed: int = 0) -> Study:
    """Integer HU frames (x, y, z, t) with distinct x and y sizes, a scanner-like affine."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(-1024, 1500, (nx, ny, nz, len(times))).astype(np.float32)
    affine = np.diag([-0.5, -0.6, 5.0, 1.0])
    affine[:3, 3] = [4.0, 3.5, -10.0]
    return Study(frames, affine, np.asarray(times, dtype=float))


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
