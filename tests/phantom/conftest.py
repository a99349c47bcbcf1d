"""Phantom fixtures: small studies simulated once per test session."""

from __future__ import annotations

import pytest

from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient


@pytest.fixture(scope="session")
def stroke_128():
    """A 128 x 128 x 8 x 89 stroke patient (default model, seed protocol) with its
    noise-free frames."""
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=128))
    return simulate_patient(cfg, seed=11, normal=False, keep_noise_free=True)


@pytest.fixture(scope="session")
def classic_128():
    """A 128 x 128 x 8 x 89 patient of the classic preset (a stroke, drawn as such)."""
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=128), model="classic")
    return simulate_patient(cfg, seed=11, keep_noise_free=True)


@pytest.fixture(scope="session")
def long_noise_free():
    """Noise-free 64 x 64 stroke patient imaged for 300 s at 1 s, so every curve ends at
    baseline (default model)."""
    acq = acquisition_preset("seed", matrix=64, n_frames=300, frame_interval_s=1.0)
    return simulate_patient(PhantomConfig(acquisition=acq), seed=5, normal=False, noise=False)


@pytest.fixture(scope="session")
def strokes_64():
    """Six noise-free 64 x 64 stroke patients of the default model."""
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=64))
    return [simulate_patient(cfg, seed=200 + i, normal=False, noise=False) for i in range(6)]
