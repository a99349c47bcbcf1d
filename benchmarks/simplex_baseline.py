"""The baseline: the seed's per-voxel downhill simplex fit of the box model.

One ``scipy.optimize.minimize(method="Nelder-Mead", maxiter=300)`` per voxel, from the
seed's start values (CBF 60 mL/100 g/min, MTT 5 s, delay 3.5 s), minimising the sum of
squared errors of the same forward model as `ctpmaps.perfusion.BoxNLRModel`
(`ctpmaps.perfusion.boxnlr.box_curves`, exact, float64), without bounds. Slow by design:
``benchmarks/bench_perfusion.py`` runs it on a voxel sample and compares.

Run on its own for a quick check::

    .venv/bin/python benchmarks/simplex_baseline.py
"""

from __future__ import annotations

import time

import numpy as np
from scipy.optimize import minimize

from ctpmaps.perfusion.boxnlr import BoxNLRModel, box_curves

#: The seed's start: CBF (mL/100 g/min), MTT (s), delay (s).
START = (60.0, 5.0, 3.5)
MAXITER = 300


def fit_voxel(
    curve: np.ndarray, model: BoxNLRModel, *, start: tuple[float, float, float] = START
) -> tuple[float, float, float, float, int]:
    """Fit one curve (t,); returns CBF, MTT, delay, SSE and the number of iterations."""
    y = np.asarray(curve, dtype=np.float64)

    def sse(p: np.ndarray) -> float:
        c = box_curves(model.times, model.aif_knots, p[0], p[1], p[2], scale=model.scale)[0]
        return float(((y - c) ** 2).sum())

    res = minimize(sse, np.array(start), method="Nelder-Mead", options={"maxiter": MAXITER})
    cbf, mtt, delay = res.x
    return float(cbf), float(mtt), float(delay), float(res.fun), int(res.nit)


def fit_simplex(curves: np.ndarray, model: BoxNLRModel) -> dict[str, np.ndarray]:
    """Fit every curve of ``curves`` (n, t) one by one; arrays of shape (n,)."""
    rows = [fit_voxel(c, model) for c in np.asarray(curves)]
    out = np.array(rows, dtype=np.float64).reshape(-1, 5)
    keys = ("cbf", "mtt", "delay", "sse", "iterations")
    return {k: out[:, i] for i, k in enumerate(keys)}


if __name__ == "__main__":
    t = np.arange(89) * 0.5
    aif = np.where(t > 5, 300 * ((t - 5) / 4.5) ** 3 * np.exp(3 - (t - 5) / 1.5), 0.0)
    model = BoxNLRModel(aif, t)
    truth = box_curves(t, model.aif_knots, [50.0, 20.0], [4.0, 8.0], [1.0, 4.0], scale=model.scale)
    start = time.perf_counter()
    fit = fit_simplex(truth, model)
    took = time.perf_counter() - start
    for k, v in fit.items():
        print(f"{k:>10}: {np.round(v, 3)}")
    print(f"{took / truth.shape[0] * 1000:.1f} ms per voxel")
