"""The SVD family: standard (sSVD), block-circulant (bSVD) and oscillation-index (oSVD).

Discretised indicator dilution on a uniform grid of step ``dt``::

    c = A b,   A[i, j] = dt * a[i - j]  (j <= i),   b = scale * CBF * R

so the deconvolved residue ``b`` (the "flow-scaled residue" k(t), 1/s) gives
``CBF = max(b) / scale`` with ``scale = rho / kappa / 6000`` (`ctpmaps.physics`). With
``rho = kappa = 1`` this is OSIPI's convention ``CBF = 6000 * max(R)``,
``C_tis = dt * (C_aif ⊛ R)``.

- sSVD (Østergaard 1996): truncated pseudo-inverse of the lower-triangular ``A``; singular
  values below ``threshold`` (20 %) of the largest are dropped. Sensitive to delay: a
  tissue curve that arrives before the AIF cannot be represented causally, and a late one
  is underestimated.
- bSVD (Wu 2003): ``A`` made block-circulant by zero-padding to ``L >= 2 t`` (the next
  fast FFT length: 180 for 89 frames, 89 being prime), which makes the result
  independent of the tracer delay (a shift of the curve shifts ``b`` circularly). A
  circulant matrix is diagonalised by the DFT, so its singular values are
  ``|DFT(dt * a)|`` and truncation is a filter on frequencies: done with FFTs, exactly
  equal to the SVD. Fixed threshold 20 % by default, as sSVD, so the two differ only in
  delay handling (Wu's paper used 10-20 % for its cSVD).
- oSVD (Wu 2003): bSVD whose threshold is chosen per voxel, the lowest for which the
  oscillation index of the residue is at most 0.035. Candidate thresholds are 32 levels
  from 0.2 % to 80 %; the search is a bisection (OI falls as the threshold rises), 5 steps
  instead of Wu's linear scan.

Non-uniform frame times are resampled linearly onto `timing.uniform_grid` before
deconvolution; predicted curves are interpolated back to the frame times.

Definitions of the maps for the three methods:

- CBF: ``max(b) / scale`` over the whole residue (circular for bSVD/oSVD).
- CBV: ``∫C / ∫C_a / (60 * scale)`` from the measured curves (trapezoid rule at the frame
  times, plus each curve's exponential tail beyond the last frame where the AIF has
  returned to baseline: `base.area_ratio`); MTT ``= 60 * CBV / CBF``.
- Tmax: the first time ``b`` reaches `TMAX_LEVEL` (70 %) of its maximum, interpolated
  between grid points (`first_reach`); for bSVD/oSVD lags in the second half of the
  circular residue (index >= L / 2) are negative, ``(index - L) * dt`` (a tissue curve
  earlier than the AIF). This is the deconvolution's reading of the true Tmax, the first
  time the impulse response reaches its maximum (the delay, for an undispersed residue).
  The arg-max itself is not used: truncation rounds a box residue's sharp start and
  ripples its plateau, so the arg-max of a box falls anywhere on it (healthy tissue with
  MTT 3-6 s read 0.5-3.5 s against a true 0, minimal forward model of `tests/forward`),
  where the clinical Tmax > 6 s rule assumes healthy tissue near 0-2 s. At 70 % the
  rounded start is mostly passed and the ripples are not reached: healthy tissue (MTT
  3-6 s, box, exponential and gamma residues) reads 0-0.4 s noise-free, medians 0-1.0 s
  and 90th percentiles up to 3.1 s at 3 HU of noise; undispersed tissue delayed 0-5 s
  reads its delay -0.3 to +1.5 s late (the longer the box, the wider its rounded start).
  Dispersion delays the rise, and Tmax with it. (80 % read 0-0.8 s noise-free, +2 s for
  a 10 s box, 90th percentiles up to 3.5 s.)
- delay: the first time ``b`` reaches half its maximum: the middle of the rounded onset,
  the tracer's arrival relative to the AIF (within 1 s of the true delay for undispersed
  residues of MTT 3-10 s delayed 0-5 s; sSVD distorts delayed residues more).
- TTP: time of the maximum of the fitted curve ``A b`` (smooth, unlike the measured one),
  parabola-refined, from the first frame (`timing.time_to_peak`).

References
----------
Østergaard L et al. High resolution measurement of cerebral blood flow using intravascular
tracer bolus passages. Part I. Magn Reson Med 1996;36:715-725.
Wu O et al. Tracer arrival timing-insensitive technique for estimating flow in MR
perfusion-weighted imaging using singular value decomposition with a block-circulant
deconvolution matrix. Magn Reson Med 2003;50:164-174.

The module stays whole: the three methods share one discretisation, one residue analysis
and one model class, and differ in a few lines each.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import scipy.fft

from ..errors import InputError
from ..physics import BRAIN_DENSITY, HEMATOCRIT_FACTOR
from .base import (
    DEFAULT_CHUNK,
    PerfusionFit,
    PerfusionModel,
    VoxelLayout,
    area_ratio,
    cbv_from_area_ratio,
    map_chunks,
    single_threaded_blas,
)
from .timing import interpolation_matrix, uniform_grid

__all__ = [
    "SSVDModel",
    "BSVDModel",
    "OSVDModel",
    "SVDFit",
    "convolution_matrix",
    "truncated_pinv",
    "oscillation_index",
    "cbf_from_residue",
    "tmax_from_residue",
    "first_reach",
]

#: Default relative SVD threshold (fraction of the largest singular value).
THRESHOLD = 0.2
#: Default oscillation-index limit of oSVD (Wu 2003).
OI_LIMIT = 0.035
#: oSVD's candidate thresholds: geomspace(first, last, count) of the largest singular value.
OI_LEVELS = (0.002, 0.8, 32)
#: Tmax: the first time the residue reaches this fraction of its maximum (module docstring).
TMAX_LEVEL = 0.7
#: delay: the first time the residue reaches this fraction of its maximum (its onset).
ONSET_LEVEL = 0.5


# ----------------------------------------------------------------------------- functions
def convolution_matrix(aif: np.ndarray, dt: float) -> np.ndarray:
    """Lower-triangular Toeplitz matrix ``A[i, j] = dt * aif[i - j]`` (``j <= i``).

    Parameters
    ----------
    aif : ndarray, shape (n,)
        Arterial input function on a uniform grid.
    dt : float
        Grid step in s.

    Returns
    -------
    ndarray, shape (n, n), float64
        ``A @ b`` is the rectangle-rule convolution ``dt * (aif ⊛ b)``.
    """
    aif = np.asarray(aif, dtype=np.float64)
    n = aif.size
    i, j = np.indices((n, n))
    return np.where(j <= i, dt * aif[np.clip(i - j, 0, None)], 0.0)


def truncated_pinv(matrix: np.ndarray, threshold: float) -> np.ndarray:
    """Pseudo-inverse keeping singular values ``>= threshold * max``.

    Parameters
    ----------
    matrix : ndarray, shape (m, n)
    threshold : float
        Relative threshold in [0, 1).

    Returns
    -------
    ndarray, shape (n, m), float64
    """
    with single_threaded_blas():
        u, s, vt = np.linalg.svd(np.asarray(matrix, dtype=np.float64))
    keep = s >= threshold * s[0]
    inv = np.where(keep, 1.0 / np.where(keep, s, 1.0), 0.0)
    return (vt.T * inv) @ u.T


def oscillation_index(residue: np.ndarray) -> np.ndarray:
    """Oscillation index of residues (Wu 2003).

    ``OI = (1 / L) (1 / max f) * sum_k |f[k] - 2 f[k-1] + f[k-2]|`` over the ``L``
    samples of each residue ``f``.

    Parameters
    ----------
    residue : ndarray, shape (n, L)

    Returns
    -------
    ndarray, shape (n,)
        Dimensionless; ``inf`` where ``max f <= 0``.
    """
    f = np.asarray(residue)
    second = np.abs(f[:, 2:] - 2 * f[:, 1:-1] + f[:, :-2]).sum(axis=1)
    peak = f.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(peak > 0, second / (f.shape[1] * peak), np.inf)


def cbf_from_residue(residue: np.ndarray, scale: float) -> np.ndarray:
    """CBF in mL/100 g/min from the flow-scaled residue ``b`` (1/s): ``max(b) / scale``.

    Parameters
    ----------
    residue : ndarray, shape (n, L)
    scale : float
        ``rho / kappa / 6000`` (`ctpmaps.physics.tissue_scale`).

    Returns
    -------
    ndarray, shape (n,), float64
    """
    return np.asarray(residue).max(axis=1).astype(np.float64) / scale


def first_reach(
    residue: np.ndarray, dt: float, level: float, *, circular: bool = False
) -> np.ndarray:
    """The first time each residue reaches ``level`` of its maximum, in s.

    The first sample at or above ``level * max``, interpolated linearly from the sample
    before it; a residue that starts above it reads its first lag. Not the crossing
    nearest the maximum: a truncated box's plateau ripples, and its last dip before the
    maximum can lie seconds after the onset.

    Parameters
    ----------
    residue : ndarray, shape (n, L)
    dt : float
        Grid step in s.
    level : float
        Fraction of the maximum, in (0, 1].
    circular : bool
        For a circular residue (bSVD, oSVD, ``L >= 2 t``): lags in the second half,
        ``index >= L / 2``, are negative, ``(index - L) * dt``.

    Returns
    -------
    ndarray, shape (n,), float64
        Lag in s (from ``-(L - L // 2) * dt`` for a circular residue, else from 0).

    Examples
    --------
    >>> first_reach(np.array([[0.0, 0.0, 1.0, 2.0, 2.0, 1.0]]), 0.5, 0.5)
    array([1.])
    """
    b = np.asarray(residue)
    n, n_lag = b.shape
    first = 0
    if circular:  # lags -(L - L // 2) .. L // 2 - 1, in order
        first = -(n_lag - n_lag // 2)
        b = np.concatenate([b[:, n_lag // 2 :], b[:, : n_lag // 2]], axis=1)
    rows = np.arange(n)
    thr = level * b.max(axis=1).astype(np.float64)
    k = np.argmax(b >= thr[:, None], axis=1)  # the first sample at or above
    y1 = b[rows, k].astype(np.float64)
    y0 = b[rows, np.maximum(k - 1, 0)].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.clip((thr - y0) / (y1 - y0), 0.0, 1.0)
    idx = np.where(k > 0, k - 1 + np.where(np.isfinite(frac), frac, 1.0), 0.0)
    return (first + idx) * float(dt)


def tmax_from_residue(residue: np.ndarray, dt: float, *, circular: bool = False) -> np.ndarray:
    """Tmax in s: the first time each residue reaches `TMAX_LEVEL` of its maximum.

    Parameters
    ----------
    residue : ndarray, shape (n, L)
    dt : float
        Grid step in s.
    circular : bool
        For a circular residue (bSVD, oSVD): negative lags in the second half.

    Returns
    -------
    ndarray, shape (n,), float64
    """
    return first_reach(residue, dt, TMAX_LEVEL, circular=circular)


# ----------------------------------------------------------------------------- fit
class SVDFit(PerfusionFit):
    """Fit of an SVD model: the deconvolved residue of every voxel.

    Attributes
    ----------
    residue : ndarray, shape (n_fit, L)
        Flow-scaled residue ``b = scale * CBF * R`` (1/s) on the model's uniform grid
        (``L = t_grid`` for sSVD; circular for bSVD/oSVD, ``L`` the first fast FFT
        length ``>= 2 t_grid``).
    ratio : ndarray, shape (n_fit,)
        ``∫C / ∫C_a`` in s, from the measured curves.
    threshold : ndarray, shape (n_fit,)
        Relative SVD threshold used (per voxel for oSVD).
    """

    def __init__(
        self,
        model: _SVDModel,
        layout: VoxelLayout,
        *,
        residue: np.ndarray,
        ratio: np.ndarray,
        threshold: np.ndarray,
    ) -> None:
        super().__init__(model, layout)
        self.residue = residue
        self.ratio = ratio
        self.threshold = threshold

    @cached_property
    def _cbf(self) -> np.ndarray:
        return cbf_from_residue(self.residue, self.model.scale)

    @cached_property
    def _cbv(self) -> np.ndarray:
        return cbv_from_area_ratio(self.ratio, self.model.scale)

    @cached_property
    def _tmax(self) -> np.ndarray:
        return self._reach(TMAX_LEVEL)

    @cached_property
    def _delay(self) -> np.ndarray:
        return self._reach(ONSET_LEVEL)

    def _reach(self, level: float) -> np.ndarray:
        """`first_reach` of every residue at ``level``, chunk by chunk (bounded memory)."""
        m = self.model
        out = np.empty(self.layout.n_fit)

        def work(sl: slice) -> None:
            out[sl] = first_reach(self.residue[sl], m.dt, level, circular=m.circular)

        map_chunks(work, self.layout.n_fit, m.chunk_size, m.workers)
        return out

    def _predict_voxels(self, sl: slice) -> np.ndarray:
        return self.model.convolve(self.residue[sl]).astype(self.layout.dtype, copy=False)


# ----------------------------------------------------------------------------- models
class _SVDModel(PerfusionModel):
    """Shared part of the SVD models: uniform grid, resampling, area ratio."""

    fit_class = SVDFit
    circular = False

    def __init__(
        self,
        aif: np.ndarray,
        times: np.ndarray,
        *,
        threshold: float = THRESHOLD,
        dt: float | None = None,
        hematocrit_factor: float = HEMATOCRIT_FACTOR,
        density: float = BRAIN_DENSITY,
        chunk_size: int = DEFAULT_CHUNK,
        workers: int | None = None,
    ) -> None:
        super().__init__(
            aif,
            times,
            hematocrit_factor=hematocrit_factor,
            density=density,
            chunk_size=chunk_size,
            workers=workers,
        )
        if not 0 <= float(threshold) < 1:
            raise InputError("threshold", f"expected a fraction in [0, 1), got {threshold!r}")
        self.threshold = float(threshold)
        #: Uniform grid (s) the deconvolution runs on.
        self.grid = uniform_grid(self.times, dt=dt)
        self.dt = float(self.grid[1] - self.grid[0])
        self.resampled = self.grid.shape != self.times.shape or not np.allclose(
            self.grid, self.times, rtol=0, atol=1e-6 * self.dt
        )
        if self.resampled:
            self._to_grid = interpolation_matrix(self.times, self.grid).T.copy()
            self._from_grid = interpolation_matrix(self.grid, self.times).T.copy()
        #: AIF on the grid.
        self.aif_grid = np.interp(self.grid, self.times, self.aif)
        self._prepare()

    def _prepare(self) -> None:  # pragma: no cover
        """Build the method's deconvolution operators (after the grid is set)."""
        raise NotImplementedError

    def to_grid(self, curves: np.ndarray) -> np.ndarray:
        """Curves (n, t) at the frame times -> (n, t_grid) on the uniform grid."""
        if not self.resampled:
            return curves
        return curves @ self._to_grid.astype(curves.dtype)

    def from_grid(self, curves: np.ndarray) -> np.ndarray:
        """Curves (n, t_grid) on the uniform grid -> (n, t) at the frame times."""
        if not self.resampled:
            return curves
        return curves @ self._from_grid.astype(curves.dtype)

    def _fit_curves(self, curves: np.ndarray) -> dict[str, Any]:
        n = curves.shape[0]
        residue = np.empty((n, self.n_lags), dtype=curves.dtype)
        threshold = np.empty(n, dtype=np.float32)

        def work(sl: slice) -> None:
            residue[sl], threshold[sl] = self.deconvolve(self.to_grid(curves[sl]))

        map_chunks(work, n, self.chunk_size, self.workers)
        ratio = area_ratio(curves, self.aif, self.times)
        return {"residue": residue, "ratio": ratio, "threshold": threshold}

    @property
    def n_lags(self) -> int:
        """Length of the residue."""
        return self.n_fft if self.circular else self.grid.size

    def deconvolve(self, curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        """Residues (n, n_lags) and thresholds (n,) of curves (n, t_grid) on the grid."""
        raise NotImplementedError

    def convolve(self, residue: np.ndarray) -> np.ndarray:  # pragma: no cover
        """Tissue curves (n, t) at the frame times from residues (n, n_lags)."""
        raise NotImplementedError


class SSVDModel(_SVDModel):
    """Standard truncated SVD deconvolution (Østergaard 1996).

    Parameters
    ----------
    aif : ndarray, shape (t,)
        Arterial enhancement at ``times``.
    times : ndarray, shape (t,)
        Frame times in s (non-uniform ones are resampled, see `timing.uniform_grid`).
    threshold : float
        Singular values below ``threshold * max`` are dropped (0.2).
    dt : float, optional
        Step of the uniform grid in s (default: the frames if uniform).
    hematocrit_factor, density : float
        ``kappa`` and ``rho`` (`ctpmaps.physics`); 1 and 1 for OSIPI's convention.
    chunk_size : int
        Voxels per chunk.
    workers : int, optional
        Threads (default: the CPUs available).

    Examples
    --------
    >>> import numpy as np
    >>> from ctpmaps.physics import residue, tissue_scale
    >>> t = np.arange(60) * 1.0
    >>> aif = np.where(t > 5, (t - 5) ** 3 * np.exp(-(t - 5) / 1.5), 0.0)
    >>> r = residue(t, 4.0, "exponential")
    >>> c = tissue_scale() * 50.0 * np.convolve(aif, r)[:60] * 1.0
    >>> fit = SSVDModel(aif, t).fit(c[None, :])
    >>> bool(30 < fit.cbf[0] < 60)
    True
    """

    method = "ssvd"

    def _prepare(self) -> None:
        self.matrix = convolution_matrix(self.aif_grid, self.dt)
        self._pinv_t = truncated_pinv(self.matrix, self.threshold).T.copy()
        self._matrix_t = self.matrix.T.copy()

    def deconvolve(self, curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b = curves @ self._pinv_t.astype(curves.dtype)
        return b, np.full(curves.shape[0], self.threshold, dtype=np.float32)

    def convolve(self, residue: np.ndarray) -> np.ndarray:
        return self.from_grid(residue @ self._matrix_t.astype(residue.dtype))


class BSVDModel(_SVDModel):
    """Block-circulant SVD deconvolution, insensitive to tracer delay (Wu 2003).

    Same parameters as `SSVDModel` (``threshold`` 0.2). Implemented with FFTs: the
    singular values of the circulant matrix are ``|DFT(dt * aif)|``.
    """

    method = "bsvd"
    circular = True

    def _prepare(self) -> None:
        #: Length of the circulant: at least 2 t (no wrap-around), a fast FFT size.
        self.n_fft = scipy.fft.next_fast_len(2 * self.grid.size, real=True)
        #: Spectrum of the zero-padded AIF (its modulus: the singular values).
        self.spectrum = scipy.fft.rfft(self.dt * self.aif_grid, self.n_fft)
        mod = np.abs(self.spectrum)
        self.singular_values = mod
        #: Rank of each frequency by decreasing singular value (0 = largest).
        self.rank = np.empty(mod.size, dtype=np.int64)
        self.rank[np.argsort(-mod, kind="stable")] = np.arange(mod.size)
        with np.errstate(divide="ignore"):
            self._inverse = np.where(mod > 0, 1.0 / np.where(mod > 0, self.spectrum, 1.0), 0.0)

    def _spectra(self, curves: np.ndarray) -> np.ndarray:
        return scipy.fft.rfft(curves, self.n_fft, axis=1)

    def _residue(self, spectra: np.ndarray, keep: np.ndarray) -> np.ndarray:
        inv = self._inverse.astype(spectra.dtype)
        return scipy.fft.irfft(spectra * np.where(keep, inv, 0), self.n_fft, axis=1)

    def deconvolve(self, curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keep = self.singular_values >= self.threshold * self.singular_values.max()
        b = self._residue(self._spectra(curves), keep[None, :])
        return b, np.full(curves.shape[0], self.threshold, dtype=np.float32)

    def convolve(self, residue: np.ndarray) -> np.ndarray:
        n = self.grid.size
        spec = scipy.fft.rfft(residue, axis=1) * self.spectrum.astype(
            np.complex64 if residue.dtype == np.float32 else np.complex128
        )
        return self.from_grid(scipy.fft.irfft(spec, self.n_fft, axis=1)[:, :n])


class OSVDModel(BSVDModel):
    """Oscillation-index regularised block-circulant SVD (Wu 2003).

    Per voxel, the lowest threshold whose residue has an oscillation index at most
    ``oi_limit`` (0.035), among 32 levels from 0.2 % to 80 % of the largest singular value
    (about 21 % apart; found in 5 bisection steps). Other parameters as `SSVDModel`
    (no ``threshold``: it is chosen per voxel, see ``fit.threshold``).
    """

    method = "osvd"

    def __init__(
        self,
        aif: np.ndarray,
        times: np.ndarray,
        *,
        oi_limit: float = OI_LIMIT,
        dt: float | None = None,
        hematocrit_factor: float = HEMATOCRIT_FACTOR,
        density: float = BRAIN_DENSITY,
        chunk_size: int = DEFAULT_CHUNK,
        workers: int | None = None,
    ) -> None:
        super().__init__(
            aif,
            times,
            dt=dt,
            hematocrit_factor=hematocrit_factor,
            density=density,
            chunk_size=chunk_size,
            workers=workers,
        )
        if not float(oi_limit) > 0:
            raise InputError("oi_limit", f"expected a positive number, got {oi_limit!r}")
        self.oi_limit = float(oi_limit)
        #: Candidate thresholds (fractions of the largest singular value).
        self.levels = np.geomspace(*OI_LEVELS)

    def deconvolve(self, curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        spectra = self._spectra(curves)
        n = curves.shape[0]
        levels = self.levels
        rel = self.singular_values / self.singular_values.max()
        # Lowest level with OI <= limit, by bisection (OI falls as the threshold rises):
        # OI(levels[hi]) ok (or hi is the last level), OI(levels[lo - 1]) not.
        lo = np.zeros(n, dtype=np.int64)
        hi = np.full(n, levels.size - 1, dtype=np.int64)
        while np.any(lo < hi):
            mid = (lo + hi) // 2
            b = self._residue(spectra, rel[None, :] >= levels[mid][:, None])
            ok = oscillation_index(b) <= self.oi_limit
            hi = np.where(ok, mid, hi)
            lo = np.where(ok, lo, mid + 1)
        b = self._residue(spectra, rel[None, :] >= levels[lo][:, None])
        return b, levels[lo].astype(np.float32)
