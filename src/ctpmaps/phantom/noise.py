"""CT noise of the phantom: correlated texture, dose scaling and a spatially varying level.

Noise is independent between frames and slices and correlated in-plane like filtered
back-projection noise (ramp x Gaussian apodisation, peak near 0.25 lp/mm). Its standard
deviation is set at 0.49 mm pixels (512 over 250 mm) and 150 mAs and scales as
``1 / sqrt(mAs)``; a coarser grid keeps only the part of the same noise power spectrum below
its Nyquist frequency. The default phantom multiplies the texture by a smooth map of the
local level (`noise_sd_map`): higher towards the skull base and in the centre of the head,
with a random smooth in-plane variation.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from .anatomy import CoarseGrid
from .lesion import smooth_field

__all__ = [
    "REFERENCE_PIXEL_MM",
    "noise_sigma_on_grid",
    "add_ct_noise",
    "noise_sd_map",
]

#: Pixel size (mm) at which the noise SD of an `Acquisition` is set: 512 over 250 mm.
REFERENCE_PIXEL_MM = 250.0 / 512
#: MNI height (mm) above which the skull-base increase of the noise has faded out, and the
#: height range over which it grows to its full factor below that.
_SKULL_BASE_TOP_MM = 30.0
_SKULL_BASE_RANGE_MM = 50.0
#: Relative increase of the noise SD at the isocentre over the head's edge (the central
#: rays cross the most bone and tissue), over a radius of 100 mm.
_CENTRE_GAIN = 0.10
_CENTRE_RADIUS_MM = 100.0


def _nps_power(n: int, pixel_mm: float) -> float:
    """Integral of the (unnormalised) noise power spectrum over the band an n x n grid of
    ``pixel_mm`` pixels represents."""
    f = np.fft.fftfreq(n, d=pixel_mm)
    fr = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    return float(((fr * np.exp(-((fr / 0.35) ** 2))) ** 2).sum() / (n * pixel_mm) ** 2)


def noise_sigma_on_grid(sigma_reference_hu: float, matrix: int, pixel_mm: float) -> float:
    """Noise SD on a grid, from the SD at 0.49 mm pixels: a coarser grid keeps only the part
    of the same noise power spectrum below its Nyquist frequency (at 128 over 250 mm,
    0.63 of the SD; at 64, 0.22), a finer one all of it."""
    ref = _nps_power(512, REFERENCE_PIXEL_MM)
    return sigma_reference_hu * float(np.sqrt(_nps_power(matrix, pixel_mm) / ref))


def _noise_filter(shape: tuple[int, int], pixel_mm: float) -> np.ndarray:
    """Amplitude of the noise power spectrum shaping filter (ramp × Gaussian apodisation,
    peak near 0.25 lp/mm, as filtered back-projection with a soft-tissue kernel),
    normalised so white noise of unit variance keeps unit variance."""
    fx = np.fft.fftfreq(shape[0], d=pixel_mm)[:, None]
    fy = np.fft.rfftfreq(shape[1], d=pixel_mm)[None, :]
    fr = np.sqrt(fx**2 + fy**2)
    h = fr * np.exp(-((fr / 0.35) ** 2))
    # Parseval over the full (not half) spectrum: weight the rfft columns that stand for two.
    w = np.full(h.shape, 2.0)
    w[:, 0] = 1.0
    if shape[1] % 2 == 0:
        w[:, -1] = 1.0
    power = (w * h**2).sum() / (shape[0] * shape[1])
    return (h / np.sqrt(power)).astype(np.float32)


def add_ct_noise(
    frames: np.ndarray,
    sigma_hu: float,
    pixel_mm: float,
    rng: np.random.Generator,
    *,
    relative_sd: np.ndarray | None = None,
    also: np.ndarray | None = None,
) -> None:
    """Add spatially correlated CT noise in place.

    Parameters
    ----------
    frames : ndarray, shape (x, y, z, t), float32
        Frames in HU, modified in place.
    sigma_hu : float
        Noise SD in HU on this grid (see `noise_sigma_on_grid`).
    pixel_mm : float
        In-plane pixel size in mm.
    rng : numpy.random.Generator
        Source of the white noise.
    relative_sd : ndarray, shape (x, y, z), optional
        Local noise level relative to ``sigma_hu`` (a smooth map, `noise_sd_map`); uniform
        when None.
    also : ndarray, shape (x, y, z, t), optional
        Receives the same noise realisation.
    """
    if sigma_hu <= 0:
        return
    nx, ny, nz, nt = frames.shape
    filt = _noise_filter((nx, ny), pixel_mm)
    for k in range(nt):
        white = rng.standard_normal((nx, ny, nz), dtype=np.float32)
        spec = scipy.fft.rfft2(white, axes=(0, 1), workers=-1)
        spec *= filt[:, :, None] * sigma_hu
        noise = scipy.fft.irfft2(spec, s=(nx, ny), axes=(0, 1), workers=-1)
        if relative_sd is not None:
            noise *= relative_sd
        frames[..., k] += noise
        if also is not None:
            also[..., k] += noise


def noise_sd_map(
    grid: CoarseGrid,
    p_mni: np.ndarray,
    p_ct_mm: np.ndarray,
    brain: np.ndarray,
    rng: np.random.Generator,
    *,
    skull_base_factor: float,
    in_plane_cv: float,
) -> np.ndarray:
    """Local noise SD relative to the configured level, on the CT grid.

    ``g(z) * q(x, y, z)`` with ``g`` growing linearly from 1 at MNI z >= 30 mm to
    ``skull_base_factor`` at z <= -20 mm (the petrous bone and skull base harden the beam
    in the lower slices), and ``q = 1 + 0.1 * (1 - r² / (100 mm)²)⁺ + in_plane_cv * f`` with
    ``r`` the in-plane distance to the isocentre and ``f`` a smooth unit-variance random
    field (scale 60 mm) in scanner coordinates. Normalised so that its root mean square over
    the brain is 1: the configured SD is the brain's RMS noise, so dose scaling holds.

    Parameters
    ----------
    grid : CoarseGrid
        Where the map is computed before linear interpolation to the CT grid.
    p_mni, p_ct_mm : ndarray, shape (3, *grid.shape)
        MNI and scanner positions (mm) of the coarse voxels.
    brain : ndarray, shape (x, y, z), bool
        Brain mask on the CT grid (for the normalisation).
    rng : numpy.random.Generator
    skull_base_factor, in_plane_cv : float
        See `ctpmaps.phantom.config.HeterogeneousSettings`.

    Returns
    -------
    ndarray, shape (x, y, z), float32
        Positive relative SD.
    """
    below = np.clip((_SKULL_BASE_TOP_MM - p_mni[2]) / _SKULL_BASE_RANGE_MM, 0.0, 1.0)
    g = 1.0 + (skull_base_factor - 1.0) * below
    r2 = (p_ct_mm[0] ** 2 + p_ct_mm[1] ** 2) / _CENTRE_RADIUS_MM**2
    q = 1.0 + _CENTRE_GAIN * np.clip(1.0 - r2, 0.0, None)
    q = q + in_plane_cv * smooth_field(rng, p_ct_mm, scale_mm=60.0)
    rel = grid.upsample((g * np.clip(q, 0.5, None)).astype(np.float32))
    rms = float(np.sqrt(np.mean(rel[brain].astype(np.float64) ** 2))) if brain.any() else 1.0
    return (rel / rms).astype(np.float32)
