"""From HU frames to enhancement (ΔHU): pre-bolus baseline found per study.

CT enhancement is linear in iodine concentration, so the tissue and arterial
"concentration" curves the models fit are the HU frames minus each voxel's pre-bolus
baseline. The baseline window ends at the bolus arrival, found per study
(`bolus_arrival_frame`): a fixed window (say frames 0-4) includes enhanced frames when the
bolus comes early and wastes frames when it comes late. One window serves every voxel,
and it must end before the *earliest* arrival of the study, the AIF's
(`ctpmaps.perfusion.compute_maps`): a window that reaches into the AIF's rise (as the
whole-brain mean's would, when part of the brain is delayed) lifts the AIF's baseline and
cuts its area, and every CBV and CBF scales with that loss.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import FitError, InputError
from ..preprocess.unenhanced import unenhanced

__all__ = [
    "bolus_arrival_frame",
    "baseline",
    "enhancement",
    "rebaseline",
    "check_baseline_frames",
    "noise_sd",
]

#: Fraction of the peak enhancement that marks the sustained rise.
RISE_FRACTION = 0.1
#: A frame-to-frame increase above this fraction of the peak enhancement is still rising.
FOOT_FRACTION = 0.02


def _mean_curve(frames: np.ndarray, n_frames: int, mask: np.ndarray | None) -> np.ndarray:
    flat = frames.reshape(-1, n_frames)
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != frames.shape[:-1]:
            raise InputError("mask", f"expected shape {frames.shape[:-1]}, got {m.shape}")
        flat = flat[m.astype(bool, copy=False).ravel()]
        if flat.shape[0] == 0:
            raise InputError("mask", "expected at least one voxel, the mask is empty")
    return flat.mean(axis=0, dtype=np.float64)


def _smooth(curve: np.ndarray, times: np.ndarray, width: float) -> np.ndarray:
    """Moving average over about ``width`` s (odd number of frames, 1 to 5), edges held."""
    dt = float(np.median(np.diff(times)))
    w = int(min(5, max(1, round(width / dt))))
    w += 1 - w % 2
    if w == 1:
        return curve
    half = w // 2
    padded = np.pad(curve, half, mode="edge")
    return np.convolve(padded, np.ones(w) / w, mode="valid")


def bolus_arrival_frame(
    curve_or_mean: np.ndarray, times: np.ndarray, *, smooth: float = 1.0
) -> int:
    """Index of the last frame before the sustained rise of the contrast bolus.

    The curve (or the mean of many curves over all leading axes, e.g. the whole-brain
    mean) is smoothed over ``smooth`` s. The sustained rise is the run of frames above
    ``RISE_FRACTION`` of the peak enhancement that ends at the peak; from the frame before
    that run, frames still rising by more than ``FOOT_FRACTION`` of the peak enhancement
    are walked back over, to the foot of the rise.

    Parameters
    ----------
    curve_or_mean : ndarray, shape (t,) or (..., t)
        HU (or enhancement) curve; an array of curves is averaged first.
    times : ndarray, shape (t,)
        Frame times in s.
    smooth : float
        Width of the moving average in s.

    Returns
    -------
    int
        Frame index ``>= 0``: frames ``0 .. index`` are the pre-bolus baseline (at least
        one frame).

    Raises
    ------
    InputError
        Shapes disagree or values are not finite.
    FitError
        The curve has no bolus (its peak does not rise above five times its noise).

    Examples
    --------
    >>> t = np.arange(20.0)
    >>> c = np.where(t > 6, 100.0 * (t - 6), 0.0)
    >>> bolus_arrival_frame(c, t)
    6
    """
    times = np.asarray(times, dtype=np.float64)
    c = np.asarray(curve_or_mean, dtype=np.float64)
    if c.ndim > 1:
        c = c.reshape(-1, c.shape[-1]).mean(axis=0)
    if c.shape != times.shape or times.ndim != 1 or times.size < 3:
        raise InputError(
            "curve_or_mean",
            f"expected a last axis of {times.size} frames matching times (t >= 3), "
            f"got shape {np.shape(curve_or_mean)}",
        )
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(times))):
        raise InputError("curve_or_mean", "expected finite values, found NaN or inf")
    s = _smooth(c, times, smooth)
    peak = int(np.argmax(s))
    low = float(s[: peak + 1].min())
    amp = float(s[peak]) - low
    d = np.diff(c)
    noise = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2.0)
    if not amp > 5.0 * noise or amp <= 0:
        raise FitError(
            f"no contrast bolus: the peak enhancement of the curve ({amp:.4g} HU) is not "
            f"above 5 x its noise ({5.0 * noise:.4g} HU)"
        )
    level = low + RISE_FRACTION * amp
    j = peak
    while j > 0 and s[j - 1] > level:
        j -= 1
    if j == 0:
        return 0
    a = j - 1
    while a > 0 and s[a] - s[a - 1] > FOOT_FRACTION * amp:
        a -= 1
    return a


def baseline(
    frames: np.ndarray,
    times: np.ndarray,
    *,
    n_baseline: int | None = None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Pre-bolus baseline of each voxel: the mean of the first ``n_baseline`` frames.

    Parameters
    ----------
    frames : ndarray, shape (x, y, z, t) or (n_vox, t)
        HU frames.
    times : ndarray, shape (t,)
        Frame times in s.
    n_baseline : int, optional
        Number of baseline frames; by default ``bolus_arrival_frame`` of the mean curve
        (over ``mask``) plus one.
    mask : ndarray of bool, shape (x, y, z) or (n_vox,), optional
        Voxels whose mean curve finds the bolus arrival (the brain); all by default.

    Returns
    -------
    ndarray, shape (x, y, z) or (n_vox,)
        HU, float32 (float64 stays float64).
    """
    frames, times = _check(frames, times)
    return unenhanced(frames, _n_baseline(frames, times, n_baseline, mask))


def enhancement(
    frames: np.ndarray,
    times: np.ndarray,
    *,
    n_baseline: int | None = None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Enhancement ΔHU: frames minus each voxel's pre-bolus baseline.

    Parameters
    ----------
    frames : ndarray, shape (x, y, z, t) or (n_vox, t)
        HU frames.
    times : ndarray, shape (t,)
        Frame times in s.
    n_baseline : int, optional
        Number of baseline frames; found automatically by default (see `baseline`).
    mask : ndarray of bool, optional
        Voxels whose mean curve finds the bolus arrival; all by default.

    Returns
    -------
    ndarray, same shape as ``frames``
        ΔHU, float32 (float64 stays float64).

    Examples
    --------
    >>> t = np.arange(10.0)
    >>> hu = (30.0 + np.where(t > 3, 50.0 * (t - 3), 0.0)).astype(np.float32)
    >>> enhancement(hu[None, :], t)[0, :6]
    array([  0.,   0.,   0.,   0.,  50., 100.], dtype=float32)
    """
    base = baseline(frames, times, n_baseline=n_baseline, mask=mask)
    out = np.asarray(frames).astype(base.dtype, copy=True)
    out -= base[..., None]
    return out


def rebaseline(enh: np.ndarray, frames: np.ndarray, old: int, new: int) -> None:
    """Move enhancement made with ``old`` baseline frames to ``new`` ones, in place.

    Parameters
    ----------
    enh : ndarray, shape (..., t)
        ``frames`` minus the mean of their first ``old`` frames (`enhancement`); modified.
    frames : ndarray, shape (..., t)
        The HU frames ``enh`` came from.
    old, new : int
        Baseline frames used and wanted.

    Notes
    -----
    Adds ``mean(frames[..., :old]) - mean(frames[..., :new])`` to each voxel: no second
    copy of the frames is made (the study's enhancement can be most of the memory used).
    """
    if old == new:
        return
    shift = unenhanced(frames, old).astype(np.float64) - unenhanced(frames, new)
    enh += shift.astype(enh.dtype)[..., None]


def _check(frames: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    frames = np.asarray(frames)
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or frames.ndim not in (2, 4) or frames.shape[-1] != times.size:
        raise InputError(
            "frames",
            f"expected shape (x, y, z, t) or (n_vox, t) with t = {times.size} (len(times)), "
            f"got {frames.shape}",
        )
    if not np.issubdtype(frames.dtype, np.number):
        raise InputError("frames", f"expected numbers, got dtype {frames.dtype}")
    return frames, times


def check_baseline_frames(n: int, n_frames: int, *, name: str = "baseline_frames") -> int:
    """``n`` as an int if it is a number of baseline frames for ``n_frames`` frames.

    Raises
    ------
    InputError
        ``n`` is not an integer in ``[1, n_frames]`` (named ``name``).
    """
    if isinstance(n, bool) or int(n) != n or not 1 <= int(n) <= n_frames:
        raise InputError(name, f"expected an integer in [1, {n_frames}], got {n!r}")
    return int(n)


def _n_baseline(
    frames: np.ndarray, times: np.ndarray, n_baseline: int | None, mask: np.ndarray | None
) -> int:
    n_t = times.size
    if n_baseline is None:
        return bolus_arrival_frame(_mean_curve(frames, n_t, mask), times) + 1
    return check_baseline_frames(n_baseline, n_t, name="n_baseline")


def noise_sd(curves: np.ndarray, n_baseline: int, *, mask: np.ndarray | None = None) -> float:
    """Noise of the frames in HU: a robust SD of frame-to-frame differences before the bolus.

    Parameters
    ----------
    curves : ndarray, shape (n_vox, t) or (x, y, z, t)
        HU curves (e.g. the brain's voxels), or frames with ``mask``.
    n_baseline : int
        Pre-bolus frames (at least the first two are used).
    mask : ndarray of bool, shape (x, y, z), optional
        The voxels of ``curves`` (x, y, z, t) to use; only their pre-bolus frames are
        copied (a fifth or less of the study).

    Returns
    -------
    float
        ``1.4826 * MAD(d) / sqrt(2)`` of the differences ``d`` between consecutive
        pre-bolus frames: the SD of one frame's noise, insensitive to anatomy and to a few
        moving voxels.
    """
    curves = np.asarray(curves)
    n = max(2, min(int(n_baseline), curves.shape[-1]))
    if mask is not None:
        curves = curves[..., :n][np.asarray(mask, dtype=bool)]
    d = np.diff(curves[:, :n].astype(np.float64), axis=1).ravel()
    if d.size == 0:
        return float("nan")
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2.0))
