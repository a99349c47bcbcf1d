"""The box NLR's continuous AIF: knots of a cubic-spline interpolant and its exact running
integral (private; used by `boxnlr` and `_boxsolve`).

The AIF between its samples is a not-a-knot cubic spline tabulated at ``SUBSTEPS`` knots
per frame interval, linear between knots, zero before the first frame and held after the
last; its running integral is then exact and piecewise quadratic (see `boxnlr`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["SUBSTEPS", "aif_knots", "aif_integral", "aif_second_integral"]

#: Knots of the AIF interpolant per frame interval.
SUBSTEPS = 8


def aif_knots(
    times: np.ndarray, aif: np.ndarray, *, substeps: int = SUBSTEPS
) -> tuple[np.ndarray, np.ndarray]:
    """Knots of the AIF interpolant: a not-a-knot cubic spline at ``substeps`` per interval.

    A knot of value 0 one sub-step before the first frame makes the AIF continuous (it is
    zero before), so that the model is smooth in the delay.

    Parameters
    ----------
    times, aif : ndarray, shape (t,)
        AIF samples (s, enhancement).
    substeps : int
        Knots per frame interval; 1 gives the samples themselves (linear AIF).

    Returns
    -------
    knot_times, knot_values : ndarray, shape ((t - 1) * substeps + 2,)
        The AIF model is linear between knots and zero before the first.
    """
    from scipy.interpolate import CubicSpline

    times = np.asarray(times, dtype=np.float64)
    aif = np.asarray(aif, dtype=np.float64)
    substeps = max(1, int(substeps))
    frac = np.arange(substeps) / substeps
    knot_times = np.append((times[:-1, None] + np.diff(times)[:, None] * frac).ravel(), times[-1])
    values = CubicSpline(times, aif)(knot_times) if substeps > 1 else aif.copy()
    lead = times[0] - (times[1] - times[0]) / substeps
    return np.concatenate([[lead], knot_times]), np.concatenate([[0.0], values])


def aif_integral(
    u: np.ndarray, times: np.ndarray, aif: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Running integral ``Ā(u)`` and value ``a(u)`` of the linearly interpolated AIF.

    ``a`` is 0 before ``times[0]`` and held at ``aif[-1]`` after ``times[-1]``.

    Parameters
    ----------
    u : ndarray
        Times in s (any shape).
    times, aif : ndarray, shape (t,)
        AIF samples.

    Returns
    -------
    integral : ndarray, like ``u``
        ``∫_{times[0]}^{u} a`` (AIF unit x s), 0 before ``times[0]``.
    value : ndarray, like ``u``
        ``a(u)``.
    """
    u, times, aif = (np.asarray(v, dtype=np.float64) for v in (u, times, aif))
    seg = np.clip(np.searchsorted(times, u, side="right") - 1, 0, times.size - 2)
    cum = np.concatenate([[0.0], np.cumsum(np.diff(times) * (aif[1:] + aif[:-1]) / 2)])
    t0 = times[seg]
    slope = (aif[seg + 1] - aif[seg]) / (times[seg + 1] - t0)
    after = u > times[-1]
    x = np.where(after, times[-1], u) - t0
    value = aif[seg] + slope * x
    integral = cum[seg] + x * (aif[seg] + value) / 2
    integral = np.where(after, cum[-1] + aif[-1] * (u - times[-1]), integral)
    value = np.where(after, aif[-1], value)
    before = u < times[0]
    return np.where(before, 0.0, integral), np.where(before, 0.0, value)


def aif_second_integral(u: np.ndarray, times: np.ndarray, aif: np.ndarray) -> np.ndarray:
    """``Ā̄(u) = ∫ Ā``, the running integral of `aif_integral`'s, exactly (AIF unit x s²).

    ``a`` linear between samples makes ``Ā`` quadratic and ``Ā̄`` cubic on each interval;
    0 before ``times[0]``, and with ``a`` held after ``times[-1]``.

    Parameters
    ----------
    u : ndarray
        Times in s (any shape).
    times, aif : ndarray, shape (t,)
        AIF samples.

    Returns
    -------
    ndarray, like ``u``
    """
    u, times, aif = (np.asarray(v, dtype=np.float64) for v in (u, times, aif))
    dt = np.diff(times)
    slope = np.diff(aif) / dt
    cum = np.concatenate([[0.0], np.cumsum(dt * (aif[1:] + aif[:-1]) / 2)])
    inc = cum[:-1] * dt + aif[:-1] * dt**2 / 2 + slope * dt**3 / 6
    cum2 = np.concatenate([[0.0], np.cumsum(inc)])
    seg = np.clip(np.searchsorted(times, u, side="right") - 1, 0, times.size - 2)
    x = np.clip(u - times[seg], 0.0, dt[seg])
    inside = cum2[seg] + cum[seg] * x + aif[seg] * x**2 / 2 + slope[seg] * x**3 / 6
    after = np.clip(u - times[-1], 0.0, None)
    out = np.where(u > times[-1], cum2[-1] + cum[-1] * after + aif[-1] * after**2 / 2, inside)
    return np.where(u < times[0], 0.0, out)
