"""Curves simulated for the perfusion tests: `ctpmaps.physics` residues, a gamma-variate AIF.

The tissue curve is ``scale * CBF * (AIF ⊛ R)`` computed on a 0.01 s grid (independent of
the fitters' discretisation) and sampled at the frame times (0.5 s, 89 frames by
default); a delay shifts the tissue curve (later for a positive delay).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctpmaps.perfusion import BoxNLRModel, BSVDModel, OSVDModel, SSVDModel
from ctpmaps.physics import residue, tissue_scale

#: Every perfusion model, by method name.
MODELS = {"ssvd": SSVDModel, "bsvd": BSVDModel, "osvd": OSVDModel, "nlr": BoxNLRModel}
FINE = 0.01
TIMES = np.arange(89) * 0.5


def gamma_aif(t: np.ndarray, *, t0: float = 5.0, peak: float = 300.0) -> np.ndarray:
    """Gamma-variate AIF in ΔHU (alpha 3, beta 1.5 s), arriving at ``t0``, peak ``peak``."""
    x = np.clip(t - t0, 0, None) / 4.5
    return peak * x**3 * np.exp(3.0 * (1.0 - x))


@dataclass
class Simulated:
    aif: np.ndarray
    curves: np.ndarray
    times: np.ndarray


def simulate(
    cbf,
    mtt,
    delay=0.0,
    *,
    shape: str = "box",
    times: np.ndarray = TIMES,
    noise: float = 0.0,
    seed: int = 0,
    t0: float = 5.0,
    hematocrit_factor: float | None = None,
    density: float | None = None,
) -> Simulated:
    """Tissue curves (n, t) for parameters broadcast to (n,), plus the AIF at ``times``."""
    cbf, mtt, delay = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(v, float)) for v in (cbf, mtt, delay))
    )
    kw = {}
    if hematocrit_factor is not None:
        kw["hematocrit_factor"] = hematocrit_factor
    if density is not None:
        kw["density"] = density
    tf = np.arange(0.0, times[-1] + 20.0, FINE)
    a = gamma_aif(tf, t0=t0)
    cache: dict[float, np.ndarray] = {}
    out = np.empty((cbf.size, times.size))
    for i, (f, m, d) in enumerate(zip(cbf, mtt, delay, strict=True)):
        if m not in cache:
            cache[m] = np.convolve(a, residue(tf, m, shape))[: tf.size] * FINE
        out[i] = tissue_scale(**kw) * f * np.interp(times - d, tf, cache[m], left=0.0)
    if noise:
        out += np.random.default_rng(seed).normal(0.0, noise, out.shape)
    return Simulated(gamma_aif(times, t0=t0), out, np.asarray(times, float))
