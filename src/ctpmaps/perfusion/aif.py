"""Arterial input and venous output functions: automatic search, manual masks and CSV.

Automatic AIF (after the usual criteria of Mouridsen et al. 2006 and of the seed
pipeline): inside the intracranial space, keep the voxels that enhance most; of those,
the ones whose bolus arrives earliest; rank them by peak height over peak width and
average the best (about 100, as the seed). Automatic VOF: the voxels that enhance most
among those peaking clearly after the AIF (the superior sagittal sinus), averaged.
Partial-volume correction: small arteries never fill a voxel, so the AIF is scaled until
its first-pass area matches the VOF's (a large sinus is not partial-volume affected, and
all tracer that enters the brain leaves through the veins). First-pass areas come from
gamma-variate fits, which remove recirculation and the truncation of the acquisition.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import curve_fit

from ..errors import FitError, InputError

__all__ = [
    "InputFunction",
    "find_aif",
    "find_vof",
    "default_aif_voxels",
    "curve_from_mask",
    "read_curve_csv",
    "first_pass_area",
    "partial_volume_scale",
]

log = logging.getLogger(__name__)


@dataclass
class InputFunction:
    """A measured input (or output) function.

    Attributes
    ----------
    curve : ndarray (t,)
        Enhancement in HU at the frame times (after any scaling).
    times : ndarray (t,)
        Frame times in s.
    voxels : ndarray (n, 3) int
        Voxel indices averaged (empty for a curve read from CSV).
    kind : str
        ``"aif"`` or ``"vof"``.
    source : str
        ``"automatic"``, ``"mask:<file>"`` or ``"csv:<file>"``.
    scale : float
        Factor applied to the averaged curve (partial-volume correction), 1 if none.
    """

    curve: np.ndarray
    times: np.ndarray
    voxels: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), int))
    kind: str = "aif"
    source: str = "automatic"
    scale: float = 1.0


def _gamma(t, t0, a, b, amp):
    x = np.clip(t - t0, 0, None) / max(a * b, 1e-6)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        y = np.where(x > 0, amp * np.exp(a * (np.log(np.where(x > 0, x, 1)) + 1 - x)), 0.0)
    return y


def first_pass_area(curve: np.ndarray, times: np.ndarray) -> float:
    """Area (HU·s) of a gamma variate fitted to the first pass of ``curve``.

    The fit uses the frames from the start to where the curve falls below 40 % of its peak
    after the peak, so recirculation is left out; the area is that of the whole fitted
    gamma variate (not truncated by the end of the acquisition).
    """
    curve = np.asarray(curve, float)
    ip = int(np.argmax(curve))
    peak = curve[ip]
    if peak <= 0:
        raise FitError("input function has no positive peak: cannot fit its first pass")
    after = np.nonzero(curve[ip:] < 0.4 * peak)[0]
    end = ip + (int(after[0]) if after.size else len(curve) - 1 - ip)
    rise = np.nonzero(curve[: ip + 1] < 0.1 * peak)[0]
    t0 = float(times[rise[-1]]) if rise.size else float(times[0])
    tp = float(times[ip]) - t0
    sel = slice(0, end + 1)
    p0 = (t0, 3.0, max(tp / 3.0, 0.1), peak)
    try:
        (t0f, a, b, amp), _ = curve_fit(
            _gamma,
            times[sel],
            curve[sel],
            p0=p0,
            maxfev=5000,
            bounds=([times[0] - 5, 0.5, 0.05, 0], [times[ip], 20, 20, 5 * peak]),
        )
    except (RuntimeError, ValueError) as exc:
        raise FitError(f"gamma-variate fit of the first pass failed: {exc}") from exc
    tt = np.arange(0, 20 * (a * b + 1) + 60, 0.05)
    return float(np.trapezoid(_gamma(tt, 0.0, a, b, amp), tt))


def _candidates(enh: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.argwhere(region)
    return idx, enh[region]


def _smooth_time(curves: np.ndarray, times: np.ndarray, width_s: float = 1.5) -> np.ndarray:
    """Moving average over about ``width_s`` (odd number of frames), edges held."""
    dt = float(np.median(np.diff(times)))
    w = int(max(1, round(width_s / dt)))
    w += 1 - w % 2
    if w == 1:
        return curves
    pad = np.pad(curves, ((0, 0), (w // 2, w // 2)), mode="edge")
    c = np.cumsum(pad, axis=1, dtype=np.float64)
    c = np.concatenate([np.zeros((len(c), 1)), c], axis=1)
    return ((c[:, w:] - c[:, :-w]) / w).astype(np.float32)


def default_aif_voxels(spacing: tuple[float, float, float]) -> int:
    """About 100 voxels at the seed's 0.49 mm pixels, scaled by pixel area (the same
    volume of blood) for other matrices, at least 4."""
    return max(4, int(round(100 * (0.488**2) / (spacing[0] * spacing[1]))))


def find_aif(
    enhancement: np.ndarray,
    times: np.ndarray,
    region: np.ndarray,
    *,
    n_voxels: int = 100,
    top_fraction: float = 0.05,
    tissue_ttp: float | None = None,
) -> InputFunction:
    """Automatic AIF from enhancement curves (x, y, z, t) inside ``region`` (x, y, z).

    On curves smoothed over 1.5 s (so noise spikes do not pass for boluses):
    (1) keep the ``top_fraction`` of region voxels with the largest area under the curve
    and a peak above 50 HU; (2) drop the most irregular quarter (roughness: squared second
    differences over the squared peak); (3) keep early arrivals: time to peak within 2 s of
    the earliest quartile (this leaves out the sinus and arteries behind an occlusion);
    (4) rank by peak over full width at half maximum (high and narrow) and average the
    unsmoothed curves of the best ``n_voxels`` (see `default_aif_voxels`).
    With ``tissue_ttp`` (s, time to peak of the mean brain curve), candidates must peak at
    least 1 s before the tissue does: arteries fill before the tissue they feed, the veins
    after, so the sinus can never pass for the AIF even where small arteries are lost.

    Raises
    ------
    FitError
        No voxel enhances like an artery (smoothed peak above 50 HU).
    """
    idx, curves = _candidates(enhancement, region)
    if len(curves) == 0:
        raise FitError("AIF search region is empty")
    sm = _smooth_time(curves, times)
    peak = sm.max(axis=1)
    auc = sm.sum(axis=1)
    n_top = max(4 * n_voxels, int(top_fraction * len(curves)))
    top = np.argsort(auc)[::-1][:n_top]
    top = top[peak[top] > 50.0]
    if tissue_ttp is not None:
        top = top[times[np.argmax(sm[top], axis=1)] <= tissue_ttp - 1.0]
    if top.size == 0:
        raise FitError(
            f"no voxel enhances like an artery (highest smoothed peak "
            f"{peak.max():.0f} HU, expected > 50 HU): is there a contrast bolus?"
        )
    rough = (np.diff(curves[top], 2, axis=1) ** 2).sum(axis=1) / peak[top] ** 2
    top = top[rough <= np.percentile(rough, 75)]
    ttp = times[np.argmax(sm[top], axis=1)]
    early = top[ttp <= np.percentile(ttp, 25) + 2.0]
    c = sm[early]
    dt = float(np.median(np.diff(times)))
    width = (c >= 0.5 * c.max(axis=1, keepdims=True)).sum(axis=1) * dt
    best = early[np.argsort(c.max(axis=1) / width)[::-1][:n_voxels]]
    log.info("AIF: %d voxels of %d candidates", best.size, len(curves))
    return InputFunction(curves[best].mean(axis=0), np.asarray(times), idx[best], "aif")


def find_vof(
    enhancement: np.ndarray,
    times: np.ndarray,
    region: np.ndarray,
    aif: InputFunction,
    *,
    n_voxels: int = 20,
) -> InputFunction:
    """Automatic VOF: of the voxels peaking at least 2 s after the AIF, the ``n_voxels``
    with the highest peak enhancement (the superior sagittal sinus), averaged."""
    idx, curves = _candidates(enhancement, region)
    ttp = times[np.argmax(curves, axis=1)]
    t_aif = float(times[np.argmax(aif.curve)])
    late = np.nonzero(ttp >= t_aif + 2.0)[0]
    if late.size == 0:
        raise FitError("no voxel peaks after the AIF: cannot find a venous output function")
    peak = curves[late].max(axis=1)
    best = late[np.argsort(peak)[::-1][:n_voxels]]
    if curves[best].max() <= aif.curve.max() * 0.3:
        log.warning("VOF peak is below 30 %% of the AIF peak: the sinus may be outside the slab")
    return InputFunction(curves[best].mean(axis=0), np.asarray(times), idx[best], "vof")


def partial_volume_scale(aif: InputFunction, vof: InputFunction) -> float:
    """Factor that makes the AIF's first-pass area equal to the VOF's."""
    a, v = first_pass_area(aif.curve, aif.times), first_pass_area(vof.curve, vof.times)
    return v / a


def curve_from_mask(
    enhancement: np.ndarray, times: np.ndarray, mask: np.ndarray, *, kind: str, source: str
) -> InputFunction:
    """Mean enhancement over a user's mask (x, y, z)."""
    mask = np.asarray(mask).astype(bool)
    if mask.shape != enhancement.shape[:3]:
        raise InputError(
            source, f"mask shape {mask.shape} does not match the study {enhancement.shape[:3]}"
        )
    if not mask.any():
        raise InputError(source, "the mask is empty")
    return InputFunction(
        enhancement[mask].mean(axis=0), np.asarray(times), np.argwhere(mask), kind, f"mask:{source}"
    )


def read_curve_csv(path: str | Path, times: np.ndarray, *, kind: str = "aif") -> InputFunction:
    """Read a curve from a CSV of ``time, value`` rows (s, HU of enhancement), with or
    without a header, and interpolate it at the study's frame times."""
    path = Path(path)
    try:
        rows = list(csv.reader(path.read_text().splitlines()))
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc}") from exc
    values = []
    for i, row in enumerate(rows):
        try:
            values.append((float(row[0]), float(row[1])))
        except (ValueError, IndexError):
            if i == 0:
                continue  # a header
            raise InputError(path, f"line {i + 1}: expected 'time, value', got {row}") from None
    if len(values) < 3:
        raise InputError(path, f"expected at least 3 'time, value' rows, got {len(values)}")
    t, v = np.array(values).T
    if np.any(np.diff(t) <= 0):
        raise InputError(path, "times are not strictly increasing")
    if t[0] > times[0] + 1e-6 or t[-1] < times[-1] - 1e-6:
        raise InputError(
            path, f"times cover {t[0]:g}-{t[-1]:g} s, the study {times[0]:g}-{times[-1]:g} s"
        )
    return InputFunction(np.interp(times, t, v), np.asarray(times), kind=kind, source=f"csv:{path}")
