"""Frame timing: uniform resampling grids and time to peak.

CT frame timing need not be uniform (a shuttle-mode preset takes 18 frames about 2.8 s
apart, often with a denser start). Methods that need a uniform grid (the SVD family: a
convolution matrix assumes one step) resample the curves linearly onto `uniform_grid`
and map their results back with `interpolation_matrix`; the box NLR fits the measured
samples directly and needs neither.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = [
    "is_uniform",
    "uniform_grid",
    "interpolation_matrix",
    "trapezoid_weights",
    "time_to_peak",
]

#: Relative tolerance on frame intervals under which timing counts as uniform.
UNIFORM_RTOL = 0.01
#: Largest number of samples `uniform_grid` makes by default.
MAX_GRID = 512


def is_uniform(times: np.ndarray, *, rtol: float = UNIFORM_RTOL) -> bool:
    """Whether frames are equally spaced (every interval within ``rtol`` of the median).

    Parameters
    ----------
    times : ndarray, shape (t,)
        Frame times in s, strictly increasing.
    rtol : float
        Relative tolerance on each interval.
    """
    dts = np.diff(np.asarray(times, dtype=np.float64))
    if dts.size == 0:
        return True
    med = float(np.median(dts))
    return bool(np.all(np.abs(dts - med) <= rtol * med))


def uniform_grid(times: np.ndarray, *, dt: float | None = None) -> np.ndarray:
    """A uniform time grid covering the acquisition.

    Parameters
    ----------
    times : ndarray, shape (t,)
        Frame times in s, strictly increasing.
    dt : float, optional
        Step in s. By default the frames themselves when they are uniform; otherwise the
        shortest frame interval (so the densest part of the acquisition keeps its
        resolution), but no less than a quarter of the median interval nor than
        ``duration / 511``.

    Returns
    -------
    ndarray, shape (n,), float64
        ``times[0] + k * dt`` for ``k = 0 .. n - 1``, the last one ``<= times[-1]`` (within
        1e-9 s).

    Examples
    --------
    >>> uniform_grid(np.array([0.0, 1.0, 3.0, 6.0]))
    array([0., 1., 2., 3., 4., 5., 6.])
    """
    times = np.asarray(times, dtype=np.float64)
    if dt is None:
        if is_uniform(times):
            return times.copy()
        dts = np.diff(times)
        duration = float(times[-1] - times[0])
        dt = max(float(dts.min()), float(np.median(dts)) / 4.0, duration / (MAX_GRID - 1))
    if not np.isfinite(dt) or dt <= 0:
        raise InputError("dt", f"expected a positive step in s, got {dt!r}")
    n = int(np.floor((times[-1] - times[0]) / dt + 1e-9)) + 1
    return times[0] + dt * np.arange(n)


def interpolation_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Matrix of linear interpolation from samples at ``src`` to times ``dst``.

    ``curves_dst = curves_src @ W.T`` for curves on the last axis; values outside
    ``src`` are held constant (as `numpy.interp`).

    Parameters
    ----------
    src : ndarray, shape (m,)
        Increasing sample times in s.
    dst : ndarray, shape (n,)
        Times in s to interpolate at.

    Returns
    -------
    ndarray, shape (n, m), float64
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    return np.stack([np.interp(dst, src, row) for row in np.eye(src.size)], axis=1)


def trapezoid_weights(times: np.ndarray) -> np.ndarray:
    """Weights ``w`` with ``curve @ w`` the trapezoid-rule integral over ``times`` (any spacing).

    Parameters
    ----------
    times : ndarray, shape (t,)
        Sample times in s.

    Returns
    -------
    ndarray, shape (t,), float64
        In s.
    """
    times = np.asarray(times, dtype=np.float64)
    w = np.zeros(times.size)
    dts = np.diff(times)
    w[:-1] += dts / 2
    w[1:] += dts / 2
    return w


def time_to_peak(curves: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Time of the maximum of each curve, refined between frames by a parabola.

    The frame of the maximum and its two neighbours define a parabola (non-uniform
    spacing allowed) whose vertex, kept within the neighbouring frames, is the peak
    time. A maximum on the first or last frame is taken as is.

    Parameters
    ----------
    curves : ndarray, shape (n, t)
        Curves sampled at ``times``.
    times : ndarray, shape (t,)
        Frame times in s.

    Returns
    -------
    ndarray, shape (n,), float64
        Peak time in s from the first frame (``times[0]``).

    Examples
    --------
    >>> t = np.arange(5.0)
    >>> time_to_peak(np.array([[0.0, 1.0, 3.0, 3.0, 0.0]]), t)
    array([2.5])
    """
    curves = np.asarray(curves)
    times = np.asarray(times, dtype=np.float64)
    n_t = times.size
    idx = np.argmax(curves, axis=-1)
    out = times[idx].astype(np.float64)
    inner = (idx > 0) & (idx < n_t - 1)
    if n_t >= 3 and np.any(inner):
        i = idx[inner]
        rows = curves[inner]
        y0 = np.take_along_axis(rows, (i - 1)[:, None], -1)[:, 0].astype(np.float64)
        y1 = np.take_along_axis(rows, i[:, None], -1)[:, 0].astype(np.float64)
        y2 = np.take_along_axis(rows, (i + 1)[:, None], -1)[:, 0].astype(np.float64)
        t0, t1, t2 = times[i - 1], times[i], times[i + 1]
        # Vertex of the parabola through three points (Lagrange form).
        num = (t1 - t0) ** 2 * (y1 - y2) - (t1 - t2) ** 2 * (y1 - y0)
        den = (t1 - t0) * (y1 - y2) - (t1 - t2) * (y1 - y0)
        with np.errstate(divide="ignore", invalid="ignore"):
            vertex = t1 - 0.5 * num / den
        ok = np.isfinite(vertex) & (den != 0)
        vertex = np.clip(np.where(ok, vertex, t1), t0, t2)
        out[inner] = vertex
    return out - times[0]
