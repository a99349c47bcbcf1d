"""Fuzzing both readers (DICOM folders and NIfTI with sidecar) on a small budget.

The large budget runs by hand: ``python benchmarks/fuzz_readers.py --cases 10000`` (it
writes docs/robustness.md). Here ``CTPMAPS_FUZZ_CASES`` (default 100) and
``CTPMAPS_FUZZ_SEED`` (default 0) set the budget and the seed.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from ctpmaps.io.testing.fuzz import FuzzReport, check_loaded, run_fuzz
from ctpmaps.io.testing.samples import SAMPLE_KINDS, sample_study

CASES = int(os.environ.get("CTPMAPS_FUZZ_CASES", "100"))
SEED = int(os.environ.get("CTPMAPS_FUZZ_SEED", "0"))


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> FuzzReport:
    return run_fuzz(CASES, seed=SEED, workdir=tmp_path_factory.mktemp("fuzz"))


def test_only_input_errors_and_sound_studies(report):
    assert len(report.cases) == CASES
    assert report.bad == [], "\n".join(report.lines())


def test_the_budget_reaches_both_readers_and_both_outcomes(report):
    counts = report.counts()
    assert counts["loaded"] > 0 and counts["refused"] > 0
    assert {c.sample for c in report.cases} == set(SAMPLE_KINDS)
    assert len(report.kinds()) >= CASES // 4  # many distinct mutations, not one repeated


def test_cases_are_reproducible(tmp_path):
    a = run_fuzz(6, seed=SEED + 1, workdir=tmp_path)
    b = run_fuzz(6, seed=SEED + 1, workdir=tmp_path)
    assert [(c.kind, c.outcome) for c in a.cases] == [(c.kind, c.outcome) for c in b.cases]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda s: s.frames.__setitem__((0, 0, 0, 1), np.nan), "non-finite frames"),
        (lambda s: s.times.__setitem__(2, s.times[1]), "bad times"),
        (lambda s: s.affine.__setitem__((0, 0), np.inf), "non-finite or singular affine"),
        (lambda s: s.affine.__setitem__((2, 2), 500.0), "implausible voxel size"),
    ],
)
def test_the_judge_sees_garbage(change, why):
    """`check_loaded` is what the fuzzer trusts: it must catch each kind of garbage."""
    study = sample_study()
    assert check_loaded(study) == ""
    change(study)
    assert check_loaded(study).startswith(why)
