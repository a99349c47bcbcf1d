"""The phantom's own forward-model primitives, on a fine uniform time grid.

Nothing here comes from the fitting code or from `ctpmaps.physics` (only its constants are
shared): the residue functions, the transport kernel, the convolution and the definition of
the true Tmax are the phantom's own, so that it is an independent truth.

Conventions. Sample ``i`` of a fine-grid curve stands for time ``i * dt`` (s); a residue
function is stored as its average over each cell ``[i dt, (i + 1) dt)``, so that its
discrete integral ``sum * dt`` equals the mean transit time exactly; discrete convolution
is ``(a ⊛ b)[n] = dt * sum_j a[n - j] b[j]``.

Residue functions form one family: the survival function of a gamma transit-time
distribution of mean ``MTT`` and shape ``k``,

    R(t) = Q(k, k t / MTT)          (Q the regularised upper incomplete gamma function)

from ``k = 1`` (exponential, a well-mixed compartment) to ``k -> inf`` (box, plug flow);
its transit times have a coefficient of variation ``1 / sqrt(k)``.

The transport kernel from the arteries to a voxel is a first-order lag (an exponential
kernel of unit area and time constant ``tau``), applied exactly for inputs that are linear
between samples (first-order hold): ``y[n] = a y[n-1] + b0 x[n] + b1 x[n-1]`` with
``a = exp(-dt / tau)``, ``b0 = 1 - (tau / dt)(1 - a)``, ``b1 = (tau / dt)(1 - a) - a``.

A tissue curve ``(a ⊛ R)(t_n)`` pairs point samples of the input with cell averages of
the residue; the midpoint rule places each cell at its centre, so the discrete sum is
averaged over neighbouring samples (`tissue_convolve`): without that the curves would lag
by half a cell.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal
from scipy.special import gammainc, gammaincc

__all__ = [
    "FINE_DT",
    "BOX",
    "residue_function",
    "cell_residues",
    "transport",
    "convolve",
    "tissue_convolve",
    "first_peak_index",
    "TMAX_PEAK_TOLERANCE",
]

#: Time step in s of the fine grid every curve is computed on before sampling at frames.
FINE_DT = 0.05
#: Shape parameter of a box residue (plug flow: every transit time equals the MTT).
BOX = float("inf")
#: Named residue shapes of the classic preset and their shape parameters k.
NAMED_SHAPES = {"box": BOX, "exponential": 1.0, "gamma": 3.0}
#: Tmax is the first time the impulse response is within this fraction of its maximum.
#: A dispersed box residue gives a response that creeps up to a plateau,
#: ``1 - exp(-t / tau)``: within 0.1 % it is reached only after ~7 tau (a 1 s dispersion
#: alone read as Tmax up to ~7 s, hypoperfused with no delay, decided by the last 0.1 % of
#: an approach no measurement resolves); within 5 % after ~3 tau, where the response has
#: visibly arrived. The classic preset uses the same 5 %.
TMAX_PEAK_TOLERANCE = 0.05

# Dimensionless grid (t / MTT) on which the integral of R is tabulated per shape k; beyond
# its end the integral has reached 1 (R < 1e-12 there for every k >= 1).
_X_STEP = 0.002
_X_END = 40.0


def residue_function(t: np.ndarray, mtt: np.ndarray | float, shape: str) -> np.ndarray:
    """Point values of a named residue function (the classic preset's three shapes).

    Parameters
    ----------
    t : ndarray
        Times in s since the tracer entered the tissue (negative times give 0).
    mtt : float or ndarray
        Mean transit time in s, broadcast against ``t``.
    shape : {"box", "exponential", "gamma"}
        ``box``: 1 on ``[0, MTT)``; ``exponential``: ``exp(-t / MTT)``; ``gamma``:
        survival function of a gamma transit-time distribution of shape 3.

    Returns
    -------
    ndarray
        ``R(t)`` in [0, 1], float64, the broadcast shape of ``t`` and ``mtt``.
    """
    t = np.asarray(t, dtype=np.float64)
    mtt = np.asarray(mtt, dtype=np.float64)
    pos = t >= 0
    if shape == "box":
        return (pos & (t < mtt)).astype(np.float64)
    if shape == "exponential":
        return np.where(pos, np.exp(-np.clip(t, 0, None) / mtt), 0.0)
    if shape == "gamma":
        k = NAMED_SHAPES["gamma"]
        return np.where(pos, gammaincc(k, np.clip(t, 0, None) * k / mtt), 0.0)
    raise ValueError(f"shape: expected one of {sorted(NAMED_SHAPES)}, got {shape!r}")


def _survival_integral(x: np.ndarray, k: float) -> np.ndarray:
    """``∫_0^x R(u) du`` for a unit-mean residue of shape ``k`` (reaches 1 as x grows).

    For a gamma transit-time density of mean 1, ``∫_0^x Q(k, k u) du = x Q(k, k x) +
    P(k + 1, k x)`` (the second term is the mean of the transit times below ``x``).
    """
    if np.isinf(k):
        return np.minimum(x, 1.0)
    return x * gammaincc(k, k * x) + gammainc(k + 1.0, k * x)


@lru_cache(maxsize=512)
def _survival_table(k: float) -> np.ndarray:
    """`_survival_integral` of shape ``k`` on the dimensionless grid (read-only, cached)."""
    table = _survival_integral(np.arange(0.0, _X_END + _X_STEP / 2, _X_STEP), k)
    table[-1] = 1.0
    table.flags.writeable = False
    return table


def cell_residues(mtt_s: np.ndarray, k: np.ndarray, n: int, dt: float) -> np.ndarray:
    """Cell averages of residue functions on the fine grid.

    Parameters
    ----------
    mtt_s : ndarray, shape (m,)
        Mean transit times in s (> 0).
    k : ndarray, shape (m,)
        Shape parameters (>= 1, `BOX` for a box).
    n : int
        Number of cells.
    dt : float
        Cell width in s.

    Returns
    -------
    ndarray, shape (m, n), float64
        Average of ``R`` over each cell ``[i dt, (i + 1) dt)``; ``sum * dt`` equals the MTT
        to within 1e-9 s once the grid covers the whole residue.

    Notes
    -----
    The integral of ``R`` is tabulated once per distinct ``k`` on a dimensionless grid
    (``t / MTT`` in steps of 0.002) and interpolated linearly: evaluating the incomplete
    gamma functions per curve and cell would cost about 100 times more. The cell averages
    are differences of that integral, so they keep the exact area; their error is below
    1e-3 of ``R(0)`` for MTT >= 1 s.
    """
    mtt_s = np.asarray(mtt_s, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    edges = np.arange(n + 1, dtype=np.float64) * dt
    out = np.empty((len(mtt_s), n))
    grid = np.arange(0.0, _X_END + _X_STEP / 2, _X_STEP)
    for kv in np.unique(k):
        rows = np.nonzero(k == kv)[0]
        x = edges[None, :] / mtt_s[rows, None]
        if np.isinf(kv):
            integral = np.minimum(x, 1.0)
        else:
            integral = np.interp(x, grid, _survival_table(float(kv)))
        out[rows] = np.diff(integral, axis=1) * (mtt_s[rows, None] / dt)
    return out


def transport(x: np.ndarray, tau_s: float, dt: float) -> np.ndarray:
    """Pass curves (..., n) sampled every ``dt`` through an exponential transport kernel
    of time constant ``tau_s`` (unit area; 0 returns ``x`` unchanged), along the last axis,
    exactly for curves linear between samples."""
    if tau_s <= 0:
        return np.asarray(x, dtype=np.float64)
    a = float(np.exp(-dt / tau_s))
    b0 = 1.0 - tau_s / dt * (1.0 - a)
    return signal.lfilter([b0, 1.0 - a - b0], [1.0, -a], x, axis=-1)


def convolve(a: np.ndarray, b: np.ndarray, dt: float) -> np.ndarray:
    """Causal convolution ``dt * sum_j a[n - j] b[j]`` along the last axis, truncated to
    ``a.shape[-1]`` samples (by FFT on a grid twice as long: no wrap-around)."""
    n = a.shape[-1]
    size = 1 << int(np.ceil(np.log2(2 * n)))
    out = np.fft.irfft(np.fft.rfft(a, size) * np.fft.rfft(b, size), size)[..., :n] * dt
    return out


def tissue_convolve(a: np.ndarray, r: np.ndarray, dt: float) -> np.ndarray:
    """``(a ⊛ R)`` at the sample times from point samples ``a`` (n,) and cell averages
    ``r`` (..., n) of the residue: `convolve` with each cell placed at its midpoint."""
    c = convolve(a, r, dt)
    c[..., 1:] += c[..., :-1]
    c *= 0.5
    return c


def first_peak_index(h: np.ndarray, *, tolerance: float = TMAX_PEAK_TOLERANCE) -> np.ndarray:
    """Index of the first sample of each row of ``h`` (..., n) within ``tolerance`` (relative)
    of the row's maximum: the true Tmax is ``delay + index * dt``."""
    peak = h.max(axis=-1, keepdims=True)
    return np.argmax(h >= (1.0 - tolerance) * peak, axis=-1)
