"""Arterial input and venous output of the default phantom: injections, not gamma variates.

The arterial curve is built the way a bolus travels: an injection profile (a boxcar of
4-5 mL/s over 7-12 s, a split injection with two peaks 2-4 s apart, or a slow injection with a ramp)
is dispersed by the cardiopulmonary circulation (an inverse-Gaussian transit-time density),
then recirculates through the body: each pass returns a fraction ``f`` of the tracer
through another inverse-Gaussian delay, so the whole curve is
``first ⊛ (δ + f K + f² K ⊛ K + ...)``, computed in the Fourier domain on a long grid
(finite area, ``1 / (1 - f)`` times the first pass). None of these is a gamma variate:
the AIF fits of the project assume that family, and this phantom must not.

The venous output is the arterial curve passed through the brain's transit-time density
(another inverse Gaussian of mean 5-8 s) and scaled by a ratio of 0.85-1.0: its area is
below the AIF's (hematocrit and sampling differences), not equal by construction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .config import HeterogeneousSettings
from .forward import convolve

__all__ = ["Bolus", "random_bolus", "inverse_gaussian", "arterial_curve", "venous_curve"]

#: Injection kinds and their probabilities.
INJECTIONS = {"boxcar": 0.5, "split": 0.25, "slow": 0.25}
#: Seconds simulated after the last frame for the recirculation series (its terms have
#: decayed below 1e-7 of the peak by then).
_TAIL_S = 400.0
#: The arterial curve "arrives" where it first exceeds this fraction of its peak.
ARRIVAL_LEVEL = 1e-3


@dataclass(frozen=True)
class Bolus:
    """Parameters of one patient's arterial and venous curves (times in s, HU).

    Attributes
    ----------
    injection : str
        ``boxcar``, ``split`` or ``slow`` (`INJECTIONS`).
    segments : tuple of (start_s, duration_s, relative_rate)
        Injection profile: boxes (with 1 s linear ramps; a slow injection's first ramp
        lasts 2-4 s) from the start of the injection.
    ramp_s : float
        Duration of the rate's first rise, s.
    cardiopulmonary_mean_s, cardiopulmonary_cv : float
        Inverse-Gaussian transit from the arm vein to the brain arteries.
    recirculation_fraction : float
        Share of the tracer that comes back in each further pass.
    recirculation_mean_s, recirculation_cv : float
        Inverse-Gaussian transit time of one pass through the body.
    arrival_s : float
        First time (s from the first frame) the arterial curve exceeds 0.1 % of its peak.
    peak_hu : float
        Peak enhancement of the arterial curve in a large artery, HU.
    venous_transit_s, venous_cv : float
        Inverse-Gaussian transit from the arterial input to the superior sagittal sinus.
    vof_area_ratio : float
        Area of the venous curve over that of the arterial curve.
    late : bool
        Whether the bolus was drawn late (tissue curves then leave the acquisition
        well before returning to baseline).
    """

    injection: str
    segments: tuple[tuple[float, float, float], ...]
    ramp_s: float
    cardiopulmonary_mean_s: float
    cardiopulmonary_cv: float
    recirculation_fraction: float
    recirculation_mean_s: float
    recirculation_cv: float
    arrival_s: float
    peak_hu: float
    venous_transit_s: float
    venous_cv: float
    vof_area_ratio: float
    late: bool

    def to_dict(self) -> dict:
        d = asdict(self)
        d["segments"] = [list(s) for s in self.segments]
        return d


def _segments(rng: np.random.Generator, kind: str) -> tuple[tuple[float, float, float], ...]:
    """Injection boxes (start s, duration s, relative rate) of one injection kind."""
    if kind == "boxcar":  # 40-50 mL at 4-5 mL/s
        return ((0.0, float(rng.uniform(7.0, 12.0)), 1.0),)
    if kind == "split":  # two hand-pushed halves: a double peak
        d1, d2 = rng.uniform(3.0, 5.0, 2)
        gap = float(rng.uniform(2.0, 4.0))
        return ((0.0, float(d1), 1.0), (float(d1) + gap, float(d2), float(rng.uniform(0.6, 1.0))))
    return ((0.0, float(rng.uniform(14.0, 20.0)), 1.0),)  # slow: 2-3 mL/s, long plateau


def random_bolus(
    rng: np.random.Generator, *, duration_s: float, settings: HeterogeneousSettings
) -> Bolus:
    """Draw a patient's bolus: injection kind, transits, recirculation, arrival, peak.

    Arrival is 3-10 s after the first frame, or 14-22 s for a share
    ``settings.late_bolus_fraction`` of patients; never after half the acquisition.
    Peak 250-550 HU at 80 kV, as measured in the seed's arteries.
    """
    kind = str(rng.choice(list(INJECTIONS), p=list(INJECTIONS.values())))
    late = bool(rng.random() < settings.late_bolus_fraction)
    arrival = rng.uniform(14.0, 22.0) if late else rng.uniform(3.0, 10.0)
    return Bolus(
        injection=kind,
        segments=_segments(rng, kind),
        ramp_s=float(rng.uniform(2.0, 4.0)) if kind == "slow" else 1.0,
        cardiopulmonary_mean_s=float(rng.uniform(3.0, 6.0)),
        cardiopulmonary_cv=float(rng.uniform(0.25, 0.45)),
        recirculation_fraction=float(rng.uniform(0.3, 0.5)),
        recirculation_mean_s=float(rng.uniform(10.0, 15.0)),
        recirculation_cv=float(rng.uniform(0.4, 0.6)),
        arrival_s=float(min(arrival, 0.5 * duration_s)),
        peak_hu=float(rng.uniform(250.0, 550.0)),
        venous_transit_s=float(rng.uniform(5.0, 8.0)),
        venous_cv=float(rng.uniform(0.3, 0.5)),
        vof_area_ratio=float(rng.uniform(*settings.vof_area_ratio)),
        late=late,
    )


def inverse_gaussian(t: np.ndarray, mean_s: float, cv: float) -> np.ndarray:
    """Inverse-Gaussian (Wald) density of mean ``mean_s`` and coefficient of variation
    ``cv`` on a uniform grid ``t`` (s), scaled to unit discrete area (sum * dt = 1)."""
    lam = mean_s / cv**2
    tt = np.where(t > 0, t, 1.0)
    f = np.where(
        t > 0,
        np.sqrt(lam / (2 * np.pi * tt**3))
        * np.exp(-lam * (tt - mean_s) ** 2 / (2 * mean_s**2 * tt)),
        0.0,
    )
    return f / (f.sum() * (t[1] - t[0]))


def _injection(t: np.ndarray, b: Bolus) -> np.ndarray:
    """Injection rate profile (relative) on times ``t`` from the start of the injection."""
    rate = np.zeros_like(t)
    for i, (start, duration, level) in enumerate(b.segments):
        ramp = b.ramp_s if i == 0 else 1.0
        up = np.clip((t - start) / ramp, 0.0, 1.0)
        down = np.clip((start + duration - t) / 1.0, 0.0, 1.0)
        rate += level * np.minimum(up, down)
    return rate


def _full_arterial(b: Bolus, dt: float, n: int) -> np.ndarray:
    """Arterial curve shape (peak 1) on a grid of ``n`` cells from the injection start."""
    size = 1 << int(np.ceil(np.log2(2 * n)))
    t = np.arange(size) * dt
    first = np.fft.rfft(_injection(t, b)) * np.fft.rfft(
        inverse_gaussian(t, b.cardiopulmonary_mean_s, b.cardiopulmonary_cv) * dt
    )
    body = np.fft.rfft(inverse_gaussian(t, b.recirculation_mean_s, b.recirculation_cv) * dt)
    curve = np.fft.irfft(first / (1.0 - b.recirculation_fraction * body), size)[:n]
    return np.clip(curve, 0.0, None) / curve.max()


def arterial_curve(b: Bolus, t: np.ndarray) -> np.ndarray:
    """True arterial enhancement in HU on the uniform fine grid ``t`` (s from the first
    frame): the bolus shape shifted so it first exceeds 0.1 % of its peak at
    ``b.arrival_s``."""
    dt = float(t[1] - t[0])
    n = int(np.ceil((t[-1] + _TAIL_S) / dt))
    shape = _full_arterial(b, dt, n)
    i = int(np.argmax(shape > ARRIVAL_LEVEL))  # first crossing, interpolated
    onset = (i - 1 + (ARRIVAL_LEVEL - shape[i - 1]) / (shape[i] - shape[i - 1])) * dt
    return b.peak_hu * np.interp(t - b.arrival_s + onset, np.arange(n) * dt, shape, left=0.0)


def venous_curve(aif: np.ndarray, t: np.ndarray, b: Bolus) -> np.ndarray:
    """True venous enhancement in HU (pure blood, before the sinus's partial volume): the
    arterial curve ``aif`` through the brain's transit density, scaled to the area ratio."""
    dt = float(t[1] - t[0])
    n = max(len(t), int(np.ceil(_TAIL_S / dt)))
    kernel = inverse_gaussian(np.arange(n) * dt, b.venous_transit_s, b.venous_cv)[: len(t)]
    return b.vof_area_ratio * convolve(aif, kernel, dt)
