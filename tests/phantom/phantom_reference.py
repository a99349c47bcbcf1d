"""An exact per-voxel forward model, written for the tests: what the phantom's shared
fine-grid curves are measured against (``test_forward.py``, ``benchmarks/bench_phantom.py``).

Each voxel is convolved on its own on a 0.005 s grid from point values of the residue
(box or gamma survival function) and of an exponential transport kernel; nothing here comes
from the phantom's forward model except the AIF, evaluated on that finer grid.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve
from scipy.special import gammaincc

from ctpmaps.phantom.inputs import Bolus, arterial_curve
from ctpmaps.physics import BRAIN_DENSITY, FLOW_UNIT, HEMATOCRIT_FACTOR

#: Step in s of the reference grid.
DT = 0.005


def residue(s: np.ndarray, mtt: float, k: float) -> np.ndarray:
    """Box (k = inf) or gamma-survival residue at times ``s`` (s)."""
    return (s < mtt).astype(float) if np.isinf(k) else gammaincc(k, k * s / mtt)


def exact_curve(times, aif, cbf, mtt, tau, k, delay) -> np.ndarray:
    """Enhancement (HU) at ``times`` of one voxel, from the AIF on the ``DT`` grid."""
    s = np.arange(len(aif)) * DT
    if tau > 0:
        kernel = np.exp(-s / tau)
        aif = fftconvolve(aif, kernel / (kernel.sum() * DT))[: len(s)] * DT
    c = fftconvolve(aif, residue(s, mtt, k))[: len(s)] * DT
    scale = BRAIN_DENSITY / HEMATOCRIT_FACTOR / FLOW_UNIT * cbf
    return scale * np.interp(times - delay, s, c, left=0.0)


def curve_errors(ph, n_random: int = 6, seed: int = 0) -> list[float]:
    """Largest difference between the phantom's noise-free tissue curve and the exact one,
    relative to the exact curve's peak, for ``n_random`` pure-tissue voxels plus one of the
    core and one of the penumbra (``ph`` simulated with ``noise=False``)."""
    t = ph.truth
    b = t.params["input_function"]
    bolus = Bolus(**{**b, "segments": tuple(tuple(x) for x in b["segments"])})
    aif = arterial_curve(bolus, np.arange(0, ph.study.times[-1] + 1, DT))
    f = t.fractions
    pure = t.masks["brain"] & (f.artery == 0) & (f.vein == 0) & (f.scalp == 0)
    candidates = np.argwhere(pure)
    picks = list(candidates[np.random.default_rng(seed).choice(len(candidates), n_random, False)])
    picks += [np.argwhere(t.masks[z] & pure)[0] for z in ("core", "penumbra") if t.masks[z].any()]
    errors = []
    for i in map(tuple, picks):
        m = t.maps
        ref = exact_curve(
            ph.study.times, aif, m["cbf"][i], m["mtt"][i], t.dispersion[i], t.residue_k[i],
            m["delay"][i],
        )  # fmt: skip
        sim = ph.study.frames[i] - ph.study.frames[i][0]
        errors.append(float(np.abs(sim - ref).max() / ref.max()))
    return errors
