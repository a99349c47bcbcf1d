"""Phantom patients shared by the lesion tests (module-independent, built once per session)."""

from __future__ import annotations

import pytest

from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient


@pytest.fixture(scope="session")
def stroke_128():
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=128))
    return simulate_patient(cfg, seed=3, normal=False)


@pytest.fixture(scope="session")
def normal_128():
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=128))
    return simulate_patient(cfg, seed=9, normal=True)


@pytest.fixture(scope="session")
def classic_stroke_128():
    """The classic phantom, whose lesion zones are drawn with gaps at the thresholds: for
    rules whose definitions differ from the truth's Tmax-based masks (the ``cbv`` rule)."""
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=128), model="classic")
    return simulate_patient(cfg, seed=3, normal=False)
