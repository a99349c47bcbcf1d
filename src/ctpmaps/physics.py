"""Physical constants and residue functions shared by the phantom and the fitters.

This is the only module the digital phantom shares with ``perfusion/``: the constants of
the indicator-dilution model and the definitions of the residue functions. The phantom
never uses fitting code, so that it stays an independent truth.

Indicator-dilution model (Østergaard 1996; Wirestam 2000), with concentrations in HU of
enhancement (CT enhancement is linear in iodine concentration)::

    C_tissue(t) = (rho / kappa) * CBF * (C_a ⊛ R)(t)

where ``C_a`` is the arterial concentration, ``R`` the residue function (``R(0) = 1``),
``rho`` the brain density (g/mL) and ``kappa = (1 - Hct_large) / (1 - Hct_small)`` the
hematocrit correction factor. With CBF in mL/100 g/min and time in s, CBF enters as
``CBF / 6000`` (per 100 g, per minute → per g, per s). Then::

    CBV = (kappa / rho) * 100 * ∫C_tissue / ∫C_a        [mL/100 g]
    MTT = CBV / CBF * 60                               [s]
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "HCT_LARGE_VESSEL",
    "HCT_SMALL_VESSEL",
    "HEMATOCRIT_FACTOR",
    "BRAIN_DENSITY",
    "FLOW_UNIT",
    "RESIDUE_SHAPES",
    "residue",
    "tissue_scale",
    "MAP_UNITS",
]

#: Hematocrit in large vessels (where the AIF is measured).
HCT_LARGE_VESSEL = 0.45
#: Hematocrit in capillaries.
HCT_SMALL_VESSEL = 0.25
#: kappa = (1 - 0.45) / (1 - 0.25) = 0.55 / 0.75 ≈ 0.733, dimensionless.
HEMATOCRIT_FACTOR = (1.0 - HCT_LARGE_VESSEL) / (1.0 - HCT_SMALL_VESSEL)
#: Brain tissue density, g/mL.
BRAIN_DENSITY = 1.05
#: 100 g * 60 s/min: converts CBF in mL/100 g/min to mL/g/s.
FLOW_UNIT = 6000.0

#: Units of every perfusion map, wherever it is made (phantom truth, fits, the U-Net).
MAP_UNITS = {
    "cbf": "mL/100 g/min",
    "cbv": "mL/100 g",
    "mtt": "s",
    "ttp": "s",
    "tmax": "s",
    "delay": "s",
}

#: Residue-function shapes known to the project.
RESIDUE_SHAPES = ("box", "exponential", "gamma")

#: Shape parameter of the gamma transit-time distribution behind the ``gamma`` residue
#: (OSIPI's DSC reference uses 3 as well).
GAMMA_RESIDUE_SHAPE = 3.0


def tissue_scale(
    *, hematocrit_factor: float = HEMATOCRIT_FACTOR, density: float = BRAIN_DENSITY
) -> float:
    """Factor ``rho / kappa / 6000`` that turns CBF (mL/100 g/min) into a rate in 1/s.

    ``C_tissue = tissue_scale() * CBF * (C_a ⊛ R)`` with time in s.
    """
    return density / hematocrit_factor / FLOW_UNIT


def residue(t: np.ndarray, mtt: np.ndarray | float, shape: str = "box") -> np.ndarray:
    """Residue function ``R(t)`` with mean transit time ``mtt``.

    Parameters
    ----------
    t : ndarray
        Times in s since the tracer entered the tissue (negative times give 0).
    mtt : float or ndarray
        Mean transit time in s; broadcast against ``t``.
    shape : {"box", "exponential", "gamma"}
        ``box``: ``R = 1`` for ``0 <= t < MTT`` (plug flow);
        ``exponential``: ``R = exp(-t / MTT)`` (well-mixed compartment);
        ``gamma``: ``R = 1 - F(t)`` with ``F`` the cumulative gamma transit-time distribution
        of shape 3 and mean ``MTT``.

    Returns
    -------
    ndarray
        ``R(t)`` in [0, 1], the broadcast shape of ``t`` and ``mtt``; its integral is MTT.
    """
    t = np.asarray(t, dtype=np.float64)
    mtt = np.asarray(mtt, dtype=np.float64)
    pos = t >= 0
    if shape == "box":
        out = (pos & (t < mtt)).astype(np.float64)
    elif shape == "exponential":
        out = np.where(pos, np.exp(-np.clip(t, 0, None) / mtt), 0.0)
    elif shape == "gamma":
        from scipy.special import gammaincc

        k = GAMMA_RESIDUE_SHAPE
        out = np.where(pos, gammaincc(k, np.clip(t, 0, None) * k / mtt), 0.0)
    else:
        raise ValueError(f"shape: expected one of {RESIDUE_SHAPES}, got {shape!r}")
    return out
