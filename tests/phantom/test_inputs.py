"""The default phantom's input functions: injections through the circulation, not gamma
variates, with a venous output of smaller area."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import curve_fit
from scipy.signal import find_peaks

from ctpmaps.phantom import HeterogeneousSettings
from ctpmaps.phantom.inputs import arterial_curve, random_bolus, venous_curve

T = np.arange(0.0, 300.0, 0.05)


def _boluses(n: int = 40):
    for seed in range(n):
        yield random_bolus(
            np.random.default_rng(seed), duration_s=44.5, settings=HeterogeneousSettings()
        )


def _gamma_variate(t, t0, alpha, beta, peak):
    x = np.clip(t - t0, 1e-9, None) / (alpha * beta)
    return np.where(t > t0, peak * np.exp(alpha * (np.log(x) + 1 - x)), 0.0)


def test_every_injection_kind_occurs_and_split_gives_two_peaks():
    kinds = {}
    for b in _boluses():
        kinds.setdefault(b.injection, b)
    assert set(kinds) == {"boxcar", "split", "slow"}
    aif = arterial_curve(kinds["split"], T)
    peaks, _ = find_peaks(aif, prominence=0.05 * aif.max())
    assert len(peaks) >= 2 and T[peaks[1]] - T[peaks[0]] < 15


def test_first_pass_is_not_a_gamma_variate():
    """The best gamma variate misses every first pass by > 4 % of its peak somewhere (a
    split injection by > 20 %): the AIF fits of the project assume that family."""
    for b in _boluses():
        aif = arterial_curve(b, T)
        first = T < T[np.argmax(aif)] + 6
        p0 = (b.arrival_s, 3.0, 1.5, aif.max())
        with np.errstate(invalid="ignore", over="ignore"):
            params, _ = curve_fit(_gamma_variate, T[first], aif[first], p0=p0, maxfev=20000)
            miss = np.abs(aif[first] - _gamma_variate(T[first], *params)).max() / aif.max()
        assert miss > (0.2 if b.injection == "split" else 0.04), (b.injection, miss)


def test_arrival_peak_and_area_ratio():
    for b in _boluses():
        aif = arterial_curve(b, T)
        vof = venous_curve(aif, T, b)
        assert T[np.argmax(aif > 1e-3 * aif.max())] == pytest.approx(b.arrival_s, abs=0.05)
        assert aif.max() == pytest.approx(b.peak_hu, rel=1e-3)
        assert 0.85 <= b.vof_area_ratio <= 1.0
        ratio = np.trapezoid(vof, T) / np.trapezoid(aif, T)
        assert ratio == pytest.approx(b.vof_area_ratio, rel=1e-3)
        assert np.argmax(vof) > np.argmax(aif)
        assert aif[-1] < 1e-5 * aif.max()  # finite area: recirculation dies out
