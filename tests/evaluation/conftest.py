"""Fixtures of the evaluation tests: the synthetic cohort of `synthetic_cohort`."""

from __future__ import annotations

import pytest
from synthetic_cohort import CASES, make_patient

from ctpmaps.evaluation import PatientData


@pytest.fixture(scope="module")
def patients() -> list[PatientData]:
    return [make_patient(name, seed) for seed, name in enumerate(CASES)]
