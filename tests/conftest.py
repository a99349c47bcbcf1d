"""Shared fixtures: paths to ../shared (skipped with a reason where absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the project root; tests needing it skip where it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (a user's clone): shared reference data not available")
    return SHARED


@pytest.fixture(scope="session")
def small_stroke():
    """One small phantom stroke patient (64 x 64 x 8 x 89), simulated once per session."""
    from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient

    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=64))
    return simulate_patient(cfg, seed=3, normal=False, patient_id="MOL-001")


@pytest.fixture(scope="session")
def small_stroke_files(small_stroke, tmp_path_factory) -> Path:
    """`small_stroke` written as NIfTI and DICOM: ``<folder>/ctp.nii.gz``, ``<folder>/dicom``."""
    from ctpmaps.phantom.write import write_phantom_study

    root = tmp_path_factory.mktemp("small_stroke")
    return write_phantom_study(small_stroke, root, formats=("nifti", "dicom"))
