"""The venous output as the arterial input passed through the brain (private; used by
`ctpmaps.perfusion.aif`).

All tracer that enters the brain through its arteries leaves through its veins, so a venous
curve is ``v(t) = s · (a ⊛ g)(t)``: the arterial curve ``a`` convolved with the brain's
transit-time density ``g`` (unit area) and scaled by ``s``, the ratio of the venous to the
arterial area, which is the partial-volume factor of a measured AIF when the vein is large.
The model is causal: ``v`` at a frame depends only on ``a`` up to that frame, so neither
the shape of the bolus (gamma variate or not, recirculation included) nor the end of the
acquisition before the curves return to baseline biases ``s`` (a first-pass area
extrapolated by a gamma-variate fit depends on both).

``g`` is taken from a grid of gamma densities (mean transit 1-16 s, coefficient of
variation 0.1-1.0): a broad family for the transit's shape only, never for the bolus's.
For each candidate the best ``s`` per density is linear least squares, so all candidates
and all densities are one matrix product.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammainc

__all__ = ["TransitFit", "fit_transit"]

#: Mean transit times (s) and coefficients of variation of the transit densities tried.
MEANS_S = np.arange(2.0, 12.01, 0.25)
CVS = np.arange(0.1, 0.801, 0.05)
#: Fine grid steps per frame interval for the convolution.
SUBSTEPS = 4


class TransitFit:
    """Best fit of ``curves ≈ scale · (aif ⊛ g)`` per curve.

    Attributes
    ----------
    scale : ndarray (n,)
        Venous over arterial area ``s`` (dimensionless).
    r2 : ndarray (n,)
        Share of the curve's sum of squares explained (uncentred R², 1 is perfect).
    mean_s, cv : ndarray (n,)
        Mean transit time (s) and coefficient of variation of the best density.
    """

    def __init__(self, scale, r2, mean_s, cv):
        self.scale, self.r2, self.mean_s, self.cv = scale, r2, mean_s, cv


def _predictions(aif: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``aif ⊛ g`` at the frame times for every density of the grid: (n_g, t), and the
    grid's (mean, cv) pairs (n_g, 2)."""
    dt = float(np.min(np.diff(times))) / SUBSTEPS
    fine = np.arange(times[0], times[-1] + dt / 2, dt)
    a = np.interp(fine, times, aif)
    mean, cv = (g.ravel() for g in np.meshgrid(MEANS_S, CVS, indexing="ij"))
    shape = 1.0 / cv**2
    edges = np.arange(fine.size + 1) * dt
    # mass of each density per fine cell (exact, however narrow the density): the gamma
    # CDF (scipy.special, not scipy.stats, whose import costs every run 0.25 s)
    cdf = gammainc(shape[:, None], edges[None, :] / (mean * cv**2)[:, None])
    mass = np.diff(cdf, axis=1)
    size = 1 << int(np.ceil(np.log2(2 * fine.size)))
    conv = np.fft.irfft(np.fft.rfft(mass, size) * np.fft.rfft(a, size), size)[:, : fine.size]
    cols = np.clip(np.round((times - times[0]) / dt).astype(int), 0, fine.size - 1)
    return conv[:, cols], np.stack([mean, cv], axis=1)


def fit_transit(aif: np.ndarray, times: np.ndarray, curves: np.ndarray) -> TransitFit:
    """Fit ``curves ≈ scale · (aif ⊛ g)``, ``g`` a gamma transit density, per curve.

    Parameters
    ----------
    aif : ndarray (t,)
        Arterial enhancement (HU) at ``times``, 0 before the first frame.
    times : ndarray (t,)
        Frame times in s (increasing; need not be uniform).
    curves : ndarray (n, t) or (t,)
        Venous (or candidate) enhancement curves in HU.

    Returns
    -------
    TransitFit
        Per curve (arrays of shape (n,), or (1,) for a single curve).
    """
    times = np.asarray(times, np.float64)
    y = np.atleast_2d(np.asarray(curves, np.float64))
    pred, grid = _predictions(np.asarray(aif, np.float64), times)
    pp = np.einsum("kt,kt->k", pred, pred)
    py = pred @ y.T  # (n_g, n)
    gain = np.where(py > 0, py**2 / np.maximum(pp, 1e-30)[:, None], 0.0)
    best = np.argmax(gain, axis=0)
    cols = np.arange(y.shape[0])
    yy = np.einsum("nt,nt->n", y, y)
    r2 = np.where(yy > 0, gain[best, cols] / np.maximum(yy, 1e-30), 0.0)
    scale = py[best, cols] / np.maximum(pp[best], 1e-30)
    return TransitFit(scale, r2, grid[best, 0], grid[best, 1])
