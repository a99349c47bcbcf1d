"""A second, minimal forward model of CT perfusion, written for the tests alone.

It shares nothing with `ctpmaps.phantom` or `ctpmaps.physics` (a test checks the imports):
its input functions, residue functions, transport kernel, constants and convolution are
written out here, so that the fitters are judged on curves made without their own
conventions.

Indicator dilution, with concentrations as enhancement in HU::

    C(t) = (rho / kappa) * CBF / 6000 * ∫ a(t - s) h(s) ds
    h(s) = (k ⊛ R)(s - delay)                       effective impulse response

``a`` the arterial enhancement (HU), ``R`` the residue (``R(0) = 1``, ``∫R = MTT``), ``k``
a unit-area transport kernel (dispersion between the measured artery and the tissue),
``rho`` the brain density (1.05 g/mL), ``kappa`` the hematocrit factor
(``(1 - 0.45) / (1 - 0.25) = 0.55 / 0.75``), CBF in mL/100 g/min, time in s (6000 = 100 g
x 60 s/min). Every curve is computed on a fine grid (`FINE_DT` = 0.02 s) by a rectangle-rule
convolution and then sampled at the frame times.

Truth of one region: CBF (mL/100 g/min), CBV = CBF * MTT / 60 (mL/100 g), MTT (s), delay
(s, relative to the AIF) and Tmax = the first time the effective impulse response ``h``
reaches its maximum (so an undispersed residue has Tmax = delay).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import gammaincc

#: Hematocrit factor kappa = (1 - Hct_large) / (1 - Hct_small), dimensionless.
KAPPA = 0.55 / 0.75
#: Brain density rho, g/mL.
RHO = 1.05
#: CBF in mL/100 g/min to mL/g/s.
PER_100G_PER_MIN = 6000.0
#: Fine time step of every convolution, s.
FINE_DT = 0.02
#: Default acquisition: 89 frames 0.5 s apart.
FRAMES = np.arange(89) * 0.5


# ----------------------------------------------------------------------------- kernels
def exponential_kernel(t: np.ndarray, tau: float) -> np.ndarray:
    """Unit-area exponential kernel ``exp(-t / tau) / tau`` on the grid ``t`` (s) from 0;
    a unit impulse at 0 for ``tau == 0``. Normalised to unit sum x FINE step."""
    dt = float(t[1] - t[0])
    if tau <= 0:
        out = np.zeros_like(t)
        out[0] = 1.0 / dt
        return out
    out = np.exp(-t / tau)
    return out / (out.sum() * dt)


def convolve(a: np.ndarray, b: np.ndarray, dt: float) -> np.ndarray:
    """Causal rectangle-rule convolution ``dt * (a ⊛ b)``, the length of ``a``."""
    n = a.size
    size = 1 << int(np.ceil(np.log2(2 * n)))
    out = np.fft.irfft(np.fft.rfft(a, size) * np.fft.rfft(b[:n], size), size)[:n]
    return out * dt


# ----------------------------------------------------------------------------- inputs
def boxcar_aif(
    t: np.ndarray,
    *,
    arrival: float = 5.0,
    injection: float = 5.0,
    peak: float = 320.0,
    spread: tuple[float, float] = (0.8, 1.2),
    recirculation: float = 0.3,
    recirculation_delay: float = 11.0,
) -> np.ndarray:
    """AIF of a boxcar injection: a plateau ``injection`` s long, rounded by two cascaded
    exponential kernels (``spread``, s), then a recirculation (area ``recirculation`` of the
    first pass, ``recirculation_delay`` s later, dispersed over 4 s more). Zero before
    ``arrival``; HU of enhancement on the grid ``t`` (uniform, from 0)."""
    dt = float(t[1] - t[0])
    box = ((t >= arrival) & (t < arrival + injection)).astype(float)
    first = convolve(convolve(box, exponential_kernel(t, spread[0]), dt),
                     exponential_kernel(t, spread[1]), dt)  # fmt: skip
    shift = int(round(recirculation_delay / dt))
    second = np.zeros_like(first)
    second[shift:] = first[:-shift] if shift else first
    second = convolve(second, exponential_kernel(t, 4.0), dt) * recirculation
    out = (first + second) * (peak / first.max())
    return np.where(t >= arrival, out, 0.0)


def double_peak_aif(
    t: np.ndarray, *, arrival: float = 5.0, peak: float = 300.0, gap: float = 5.0
) -> np.ndarray:
    """AIF of an interrupted (slow) injection: two short boxcars ``gap`` s apart, the
    second 60 % of the first, each rounded by cascaded exponentials (0.7 s, 1.0 s), plus
    a small dispersed recirculation. Zero before ``arrival``."""
    dt = float(t[1] - t[0])
    inj = ((t >= arrival) & (t < arrival + 2.0)).astype(float)
    inj += 0.6 * ((t >= arrival + gap) & (t < arrival + gap + 2.0))
    first = convolve(convolve(inj, exponential_kernel(t, 0.7), dt),
                     exponential_kernel(t, 1.0), dt)  # fmt: skip
    shift = int(round(12.0 / dt))
    second = np.zeros_like(first)
    second[shift:] = first[:-shift]
    second = convolve(second, exponential_kernel(t, 5.0), dt) * 0.25
    return np.where(t >= arrival, (first + second) * (peak / first.max()), 0.0)


def gamma_variate_aif(
    t: np.ndarray, *, arrival: float = 5.0, peak: float = 300.0, alpha: float = 3.0,
    beta: float = 1.5,
) -> np.ndarray:  # fmt: skip
    """The classic gamma-variate bolus (no recirculation), peak ``peak`` HU at
    ``arrival + alpha * beta``."""
    x = np.clip(t - arrival, 0.0, None) / (alpha * beta)
    return peak * x**alpha * np.exp(alpha * (1.0 - x))


AIFS = {"boxcar": boxcar_aif, "double": double_peak_aif, "gamma": gamma_variate_aif}


# ----------------------------------------------------------------------------- residues
def residue(t: np.ndarray, mtt: float, shape: str | float) -> np.ndarray:
    """Residue ``R(t)`` (1 at 0, area ``mtt``) on times ``t`` (s; 0 before 0).

    ``shape``: ``"box"`` (plug flow), ``"exponential"`` (a mixed compartment),
    ``"triangular"`` (transit times uniform from 0 to ``2 mtt``: ``R`` falls linearly to 0
    at ``2 mtt``, Kudo et al. 2013's third shape), ``"uniform:W"`` (transit times uniform
    over ``(1 +- W) mtt``, ``0 < W <= 1``: a trapezoid, ``"uniform:1"`` the triangular) or
    a number ``k``, the shape of a gamma distribution of transit times with mean ``mtt``
    (``R = 1 - F``; 1 is the exponential, large ``k`` tends to the box).
    """
    t = np.asarray(t, dtype=np.float64)
    on = t >= 0
    if shape == "box":
        return (on & (t < mtt)).astype(np.float64)
    if shape == "exponential":
        return np.where(on, np.exp(-np.clip(t, 0, None) / mtt), 0.0)
    if shape == "triangular":
        shape = "uniform:1"
    if isinstance(shape, str) and shape.startswith("uniform:"):
        w = float(shape.split(":", 1)[1])
        if not 0 < w <= 1:
            raise ValueError(f"uniform transit times need 0 < W <= 1, got {shape!r}")
        start, end = (1.0 - w) * mtt, (1.0 + w) * mtt
        return np.where(on, np.clip((end - t) / (end - start), 0.0, 1.0), 0.0)
    k = float(shape)
    return np.where(on, gammaincc(k, k * np.clip(t, 0, None) / mtt), 0.0)


# ----------------------------------------------------------------------------- regions
@dataclass(frozen=True)
class Region:
    """One tissue region's truth: CBF (mL/100 g/min), MTT (s), delay (s), residue shape and
    transport dispersion (time constant of the exponential kernel, s)."""

    cbf: float
    mtt: float
    delay: float = 0.0
    shape: str | float = "box"
    dispersion: float = 0.0

    @property
    def cbv(self) -> float:
        """mL/100 g."""
        return self.cbf * self.mtt / 60.0


@dataclass
class Curves:
    """Enhancement curves sampled at ``times``: ``aif`` (t,), ``tissue`` (n, t), the
    regions' truth and each region's Tmax truth (s)."""

    times: np.ndarray
    aif: np.ndarray
    tissue: np.ndarray
    regions: list[Region]
    tmax: np.ndarray
    fine_aif: np.ndarray = field(repr=False, default=None)

    def truth(self, name: str) -> np.ndarray:
        """Truth of every region: ``cbf``, ``cbv``, ``mtt``, ``delay`` or ``tmax``."""
        if name == "tmax":
            return self.tmax
        return np.array([getattr(r, name) for r in self.regions])


def impulse_response(tf: np.ndarray, region: Region) -> np.ndarray:
    """``h(t) = (k ⊛ R)(t - delay)`` on the fine grid ``tf`` (from 0), 1/unit CBF."""
    dt = float(tf[1] - tf[0])
    r = residue(tf, region.mtt, region.shape)
    if region.dispersion > 0:
        r = convolve(r, exponential_kernel(tf, region.dispersion), dt)
    return np.interp(tf - region.delay, tf, r, left=0.0)


def first_max_time(tf: np.ndarray, h: np.ndarray) -> float:
    """The first time ``h`` reaches its maximum (within 1e-9 relative: flat tops count)."""
    return float(tf[np.argmax(h >= h.max() * (1 - 1e-9))])


def simulate(
    regions: list[Region],
    *,
    aif: str = "boxcar",
    times: np.ndarray = FRAMES,
    arrival: float = 5.0,
    tail: float = 60.0,
) -> Curves:
    """Noise-free tissue curves of ``regions`` and the AIF, sampled at ``times`` (s).

    ``aif`` names one of `AIFS`; it arrives at ``arrival`` s. ``tail`` s of fine grid past
    the last frame keep long residues from wrapping.
    """
    times = np.asarray(times, dtype=np.float64)
    tf = np.arange(0.0, times[-1] + tail, FINE_DT)
    a = AIFS[aif](tf, arrival=arrival)
    scale = RHO / KAPPA / PER_100G_PER_MIN
    out = np.empty((len(regions), times.size))
    tmax = np.empty(len(regions))
    for i, reg in enumerate(regions):
        h = impulse_response(tf, reg)
        tmax[i] = first_max_time(tf, h)
        c = scale * reg.cbf * convolve(a, h, FINE_DT)
        out[i] = np.interp(times, tf, c)
    return Curves(times, np.interp(times, tf, a), out, list(regions), tmax, a)


def add_noise(curves: np.ndarray, sd: float, seed: int) -> np.ndarray:
    """Gaussian noise of ``sd`` HU, from ``numpy.random.default_rng(seed)``."""
    return curves + np.random.default_rng(seed).normal(0.0, sd, curves.shape)


# ----------------------------------------------------------------------------- a study
@dataclass
class Phantomless:
    """A small study built from curves: HU frames, the AIF and brain masks, per-voxel truth."""

    frames: np.ndarray  # (x, y, z, t) HU, float32
    times: np.ndarray
    aif_mask: np.ndarray  # (x, y, z) bool
    brain: np.ndarray  # (x, y, z) bool
    region: np.ndarray  # (x, y, z) int: index of the region, -1 outside the brain
    curves: Curves


def build_study(
    curves: Curves,
    *,
    voxels_per_region: int = 4,
    noise: float = 0.0,
    seed: int = 0,
    tissue_hu: float = 35.0,
    artery_hu: float = 45.0,
) -> Phantomless:
    """Frames of a study holding every region of ``curves`` (``voxels_per_region`` voxels
    each, one row per region) and an artery (a row of AIF voxels) above them.

    Baselines: ``tissue_hu`` and ``artery_hu``; Gaussian noise ``noise`` HU on every voxel
    (``seed``).
    """
    n_reg, n_t = curves.tissue.shape
    nx, ny = voxels_per_region, n_reg + 1
    frames = np.full((nx, ny, 1, n_t), tissue_hu, np.float64)
    region = np.full((nx, ny, 1), -1, np.int64)
    aif_mask = np.zeros((nx, ny, 1), bool)
    aif_mask[:, 0, 0] = True
    frames[:, 0, 0] = artery_hu + curves.aif
    for i in range(n_reg):
        frames[:, i + 1, 0] += curves.tissue[i]
        region[:, i + 1, 0] = i
    if noise:
        frames = add_noise(frames, noise, seed)
    return Phantomless(
        frames.astype(np.float32), curves.times, aif_mask, region >= 0, region, curves
    )
