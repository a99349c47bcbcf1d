"""Classic-model haemodynamics: input functions and tissue impulse responses, fine grid.

Curves are enhancement in HU (CT enhancement is linear in iodine concentration). The
arterial input is a gamma variate with a second pass and a slow third pass (both of finite
area, so that area ratios converge); the venous output is the AIF convolved with a venous
transit-time distribution of unit area, so that its area equals the AIF's. A tissue
downstream of an occlusion receives the AIF delayed by ``delay`` and dispersed by an
exponential kernel of time constant ``dispersion``. Tissue curves follow the
indicator-dilution model: ``C = (rho / kappa) * CBF / 6000 * (a ⊛ R)`` with the constants
of `ctpmaps.physics` and the phantom's own residue functions (`ctpmaps.phantom.forward`).
Used by the classic preset only (`ctpmaps.phantom.classic`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..physics import FLOW_UNIT
from .forward import FINE_DT, convolve, residue_function

__all__ = [
    "FINE_DT",
    "InputFunction",
    "random_input_function",
    "gamma_variate",
    "arterial_input",
    "delayed_input",
    "venous_output",
    "tissue_curve",
    "impulse_response",
    "tmax_of_response",
]


def gamma_variate(t: np.ndarray, t0: float, alpha: float, beta: float) -> np.ndarray:
    """Gamma variate with peak value 1 at ``t0 + alpha * beta`` (0 before ``t0``)."""
    x = np.clip(t - t0, 0.0, None) / (alpha * beta)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(x > 0, np.exp(alpha * (np.log(np.where(x > 0, x, 1.0)) + 1.0 - x)), 0.0)
    return out


@dataclass(frozen=True)
class InputFunction:
    """Parameters of one patient's arterial and venous curves (times in s, values in HU).

    Attributes
    ----------
    arrival_s : float
        Bolus arrival time in the artery, s from the first frame.
    alpha, beta_s : float
        Gamma-variate shape and scale (s) of the first pass.
    peak_hu : float
        Peak enhancement of the first pass in a large artery, HU.
    recirculation_delay_s : float
        Delay of the second pass after arrival, s.
    recirculation_fraction : float
        Area of the second pass relative to the first.
    third_pass_fraction : float
        Area of the slow third pass (whole-body recirculation) relative to the first.
    venous_transit_s : float
        Mean transit time from the arterial input to the sinus, s.
    """

    arrival_s: float
    alpha: float
    beta_s: float
    peak_hu: float
    recirculation_delay_s: float
    recirculation_fraction: float
    third_pass_fraction: float
    venous_transit_s: float

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def random_input_function(rng: np.random.Generator, *, duration_s: float) -> InputFunction:
    """Random AIF parameters: arrival 1–9 s (early boluses included, capped at 20 % of the
    acquisition), time to peak 3–7 s after arrival, peak 250–550 HU at 80 kV."""
    latest = min(9.0, 0.2 * duration_s)
    return InputFunction(
        arrival_s=float(rng.uniform(min(1.0, latest), latest)),
        alpha=float(rng.uniform(2.5, 4.5)),
        beta_s=float(rng.uniform(0.9, 1.6)),
        peak_hu=float(rng.uniform(250.0, 550.0)),
        recirculation_delay_s=float(rng.uniform(8.0, 12.0)),
        recirculation_fraction=float(rng.uniform(0.15, 0.3)),
        third_pass_fraction=float(rng.uniform(0.3, 0.6)),
        venous_transit_s=float(rng.uniform(5.0, 8.0)),
    )


def arterial_input(p: InputFunction, t: np.ndarray) -> np.ndarray:
    """AIF in HU on times ``t`` (s): first pass, second pass, slow third pass."""
    first = gamma_variate(t, p.arrival_s, p.alpha, p.beta_s)
    area1 = np.trapezoid(gamma_variate(np.arange(0, 200, 0.05), 0, p.alpha, p.beta_s), dx=0.05)
    t2 = p.arrival_s + p.recirculation_delay_s
    second = gamma_variate(t, t2, p.alpha, 2 * p.beta_s)
    area2 = np.trapezoid(gamma_variate(np.arange(0, 300, 0.05), 0, p.alpha, 2 * p.beta_s), dx=0.05)
    third = gamma_variate(t, t2, 1.5, 15.0)
    area3 = np.trapezoid(gamma_variate(np.arange(0, 600, 0.05), 0, 1.5, 15.0), dx=0.05)
    return p.peak_hu * (
        first
        + p.recirculation_fraction * area1 / area2 * second
        + p.third_pass_fraction * area1 / area3 * third
    )


def delayed_input(aif: np.ndarray, dt: float, delay_s: float, dispersion_s: float) -> np.ndarray:
    """The AIF a tissue actually receives: delayed by ``delay_s`` and dispersed by a
    unit-area exponential kernel of time constant ``dispersion_s`` (0 = none)."""
    t = np.arange(len(aif)) * dt
    shifted = np.interp(t - delay_s, t, aif, left=0.0)
    if dispersion_s <= 0:
        return shifted
    return convolve(shifted, _unit_kernel(np.exp(-t / dispersion_s), dt), dt)


def _unit_kernel(k: np.ndarray, dt: float) -> np.ndarray:
    """Scale a sampled kernel so its discrete integral (sum * dt) is exactly 1."""
    return k / (k.sum() * dt)


def _cell_residue(t: np.ndarray, mtt_s: float, shape: str, dt: float, n: int = 16) -> np.ndarray:
    """Residue averaged over each time cell [t, t + dt): its discrete integral equals MTT
    to within dt / n (a point-sampled box would be off by up to one cell)."""
    sub = (np.arange(n) + 0.5) / n * dt
    return residue_function(t[:, None] + sub[None, :], mtt_s, shape).mean(axis=1)


def venous_output(aif: np.ndarray, dt: float, transit_s: float) -> np.ndarray:
    """VOF: the AIF convolved with a gamma transit distribution (shape 4, mean
    ``transit_s``, unit area), so its total area equals the AIF's."""
    t = np.arange(len(aif)) * dt
    k = 4.0
    h = t ** (k - 1) * np.exp(-t * k / transit_s)
    return convolve(aif, _unit_kernel(h, dt), dt)


def tissue_curve(
    aif: np.ndarray,
    dt: float,
    *,
    cbf: float,
    mtt_s: float,
    shape: str,
    delay_s: float = 0.0,
    dispersion_s: float = 0.0,
    hematocrit_factor: float,
    density: float,
) -> np.ndarray:
    """Tissue enhancement in HU on the fine grid, for CBF in mL/100 g/min and MTT in s."""
    t = np.arange(len(aif)) * dt
    a = delayed_input(aif, dt, delay_s, dispersion_s)
    r = _cell_residue(t, mtt_s, shape, dt)
    scale = density / hematocrit_factor / FLOW_UNIT
    return scale * cbf * convolve(a, r, dt)


def impulse_response(
    t: np.ndarray, *, cbf: float, mtt_s: float, shape: str, delay_s: float, dispersion_s: float
) -> np.ndarray:
    """What deconvolution by the undelayed AIF recovers: ``CBF * (d ⊛ R)(t - delay)``,
    with ``d`` the dispersion kernel (mL/100 g/min)."""
    dt = float(t[1] - t[0])
    r = _cell_residue(t, mtt_s, shape, dt)
    if dispersion_s > 0:
        r = convolve(r, _unit_kernel(np.exp(-t / dispersion_s), dt), dt)
    return cbf * np.interp(t - delay_s, t, r, left=0.0)


def tmax_of_response(t: np.ndarray, h: np.ndarray, *, level: float = 0.95) -> np.ndarray:
    """Tmax truth: first time the impulse response reaches ``level`` of its maximum.

    For an undispersed response (box, exponential or gamma residue) this is the delay;
    a dispersed box has a plateau that deconvolution cannot place better than where it
    begins, hence 95 % of the maximum rather than the arg-max. ``h`` is (..., t).
    """
    peak = h.max(axis=-1, keepdims=True)
    idx = np.argmax(h >= level * peak, axis=-1)
    return t[idx]
