"""Uniform grids, interpolation and time to peak."""

from __future__ import annotations

import numpy as np

from ctpmaps.perfusion.timing import (
    interpolation_matrix,
    is_uniform,
    time_to_peak,
    trapezoid_weights,
    uniform_grid,
)

#: A shuttle-mode-like acquisition: 18 frames, a denser start, then ~2.8 s apart.
SHUTTLE = np.concatenate(
    [[0.0, 1.4, 2.8], 2.8 + 2.8 * np.arange(1, 16) + [0.1 * (i % 3) for i in range(15)]]
)


def test_uniform_grid_keeps_uniform_frames_and_resamples_others() -> None:
    t = np.arange(89) * 0.5
    assert is_uniform(t)
    np.testing.assert_array_equal(uniform_grid(t), t)
    assert SHUTTLE.size == 18 and not is_uniform(SHUTTLE)
    grid = uniform_grid(SHUTTLE)
    assert np.allclose(np.diff(grid), 1.4) and grid[0] == 0 and grid[-1] <= SHUTTLE[-1]
    np.testing.assert_allclose(np.diff(uniform_grid(SHUTTLE, dt=0.5)), 0.5)


def test_interpolation_matrix_matches_interp() -> None:
    grid = uniform_grid(SHUTTLE)
    curves = np.random.default_rng(0).normal(size=(3, SHUTTLE.size))
    w = interpolation_matrix(SHUTTLE, grid)
    expected = np.array([np.interp(grid, SHUTTLE, c) for c in curves])
    np.testing.assert_allclose(curves @ w.T, expected)


def test_trapezoid_weights() -> None:
    w = trapezoid_weights(SHUTTLE)
    np.testing.assert_allclose(w @ SHUTTLE**1, 0.5 * SHUTTLE[-1] ** 2)


def test_time_to_peak_refines_between_frames() -> None:
    t = np.arange(0.0, 20.0, 1.0)
    peaks = np.array([5.0, 7.3, 12.5])
    curves = np.exp(-((t[None] - peaks[:, None]) ** 2) / 8.0)
    np.testing.assert_allclose(time_to_peak(curves, t), peaks, atol=0.06)
    # non-uniform frames, measured from the first frame
    tt = np.sort(np.random.default_rng(1).uniform(2, 30, 40))
    c = -((tt - 10.0) ** 2)
    np.testing.assert_allclose(time_to_peak(c[None], tt), [10.0 - tt[0]], atol=1e-9)
