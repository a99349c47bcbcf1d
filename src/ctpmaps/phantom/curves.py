"""Tissue curves of the default phantom: one fine-grid response per distinct parameter set.

A voxel's enhancement is ``(rho / kappa) * CBF / 6000 * (a_tau ⊛ R_{k,MTT})(t - delay)``
with ``a_tau`` the true AIF through the voxel's transport kernel. Convolving 2 million
voxels one by one on a 0.05 s grid would take minutes; instead every parameter is held on
a fine lattice and the voxels that share one (MTT, dispersion, shape) triple share one
fine-grid response, which each voxel then reads at its own frame times minus its delay:

- MTT on a logarithmic lattice of 2 % steps, dispersion in 0.05 s steps, ln k in steps of
  0.1, delay in steps of the fine grid (0.05 s);
- the quantised values *are* the truth (maps, Tmax, the truth files): curves and truth
  agree exactly, and the only discretisation left is that of the fine grid, measured
  against a per-voxel convolution on a 0.005 s grid in ``tests/phantom`` and in
  ``docs/phantom.md``.

The true Tmax of a voxel is its delay plus the first time its impulse response
``transport ⊛ R`` is within 5 % of its maximum (`forward.TMAX_PEAK_TOLERANCE`), found on
the fine grid per shared set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .forward import cell_residues, first_peak_index, tissue_convolve, transport

__all__ = [
    "MTT_LOG_STEP",
    "DISPERSION_STEP_S",
    "LOG_K_STEP",
    "VoxelParameters",
    "quantise",
    "ResponseTable",
    "response_table",
    "sample_tissue",
]

#: Lattice of the shared parameters (the truth takes the lattice values).
MTT_LOG_STEP = 0.02
DISPERSION_STEP_S = 0.05
LOG_K_STEP = 0.1
#: Combinations per block when building responses (bounds memory to ~40 MB).
_BLOCK = 1024


@dataclass
class VoxelParameters:
    """Quantised parameters of the tissue voxels, each (n,).

    ``mtt_s``, ``dispersion_s``, ``delay_s`` in s; ``k`` the residue shape (`BOX` = inf);
    ``delay_steps`` the delay in fine-grid steps; ``combo`` the row of each voxel in the
    `ResponseTable`; ``table_*`` the distinct (MTT, dispersion, k) triples.
    """

    mtt_s: np.ndarray
    dispersion_s: np.ndarray
    k: np.ndarray
    delay_s: np.ndarray
    delay_steps: np.ndarray
    combo: np.ndarray
    table_mtt_s: np.ndarray
    table_dispersion_s: np.ndarray
    table_k: np.ndarray


def quantise(
    mtt_s: np.ndarray,
    dispersion_s: np.ndarray,
    log_k: np.ndarray | None,
    delay_s: np.ndarray,
    dt: float,
    *,
    k_fixed: float | None = None,
) -> VoxelParameters:
    """Put voxel parameters (n,) on the lattice and find the distinct response triples.

    ``log_k`` is ln of the shape parameter; ``k_fixed`` (e.g. `BOX`) overrides it.
    """
    i_m = np.rint(np.log(mtt_s) / MTT_LOG_STEP).astype(np.int64)
    i_d = np.rint(dispersion_s / DISPERSION_STEP_S).astype(np.int64)
    if k_fixed is None:
        i_k = np.rint(np.clip(log_k, 0.0, None) / LOG_K_STEP).astype(np.int64)
    else:
        i_k = np.zeros(len(mtt_s), np.int64)
    key = (i_m * 4096 + i_d) * 4096 + i_k
    uniq, combo = np.unique(key, return_inverse=True)
    u_m, rest = np.divmod(uniq, 4096 * 4096)
    u_d, u_k = np.divmod(rest, 4096)
    table_k = np.exp(u_k * LOG_K_STEP) if k_fixed is None else np.full(len(uniq), k_fixed)
    steps = np.rint(delay_s / dt).astype(np.int64)
    return VoxelParameters(
        mtt_s=np.exp(i_m * MTT_LOG_STEP),
        dispersion_s=i_d * DISPERSION_STEP_S,
        k=np.exp(i_k * LOG_K_STEP) if k_fixed is None else np.full(len(mtt_s), k_fixed),
        delay_s=steps * dt,
        delay_steps=steps,
        combo=combo.astype(np.int64),
        table_mtt_s=np.exp(u_m * MTT_LOG_STEP),
        table_dispersion_s=u_d * DISPERSION_STEP_S,
        table_k=table_k,
    )


@dataclass
class ResponseTable:
    """Shared responses: ``curves`` (m, n_fine + 1) float32, ``(a_tau ⊛ R)`` per unit rate
    on the fine grid with a zero last column (read by negative indices, i.e. before the
    bolus); ``peak_s`` (m,) the time after the delay at which ``transport ⊛ R`` peaks;
    ``peak_height`` (m,) its maximum (1 for an undispersed residue, lower with a transport
    kernel: see `ctpmaps.phantom.truth.Truth.response_peak`)."""

    curves: np.ndarray
    peak_s: np.ndarray
    peak_height: np.ndarray


def response_table(
    aif_fine: np.ndarray,
    dt: float,
    mtt_s: np.ndarray,
    dispersion_s: np.ndarray,
    k: np.ndarray,
) -> ResponseTable:
    """Fine-grid responses and Tmax offsets of distinct (MTT, dispersion, k) triples.

    Parameters
    ----------
    aif_fine : ndarray, shape (n_fine,)
        True AIF in HU on the fine grid from the first frame.
    dt : float
        Fine-grid step, s.
    mtt_s, dispersion_s, k : ndarray, shape (m,)
        The triples.
    """
    n_fine = len(aif_fine)
    curves = np.zeros((len(mtt_s), n_fine + 1), np.float32)
    peak = np.zeros(len(mtt_s))
    height = np.zeros(len(mtt_s))
    order = np.lexsort((mtt_s, dispersion_s))
    for tau in np.unique(dispersion_s):
        rows = order[dispersion_s[order] == tau]
        a_tau = transport(aif_fine, float(tau), dt)
        for block in np.array_split(rows, max(1, int(np.ceil(len(rows) / _BLOCK)))):
            # Long enough for the peak of transport ⊛ R (at most MTT + a few tau).
            n_long = max(n_fine, int(np.ceil((2 * mtt_s[block].max() + 8 * tau + 2) / dt)))
            r = cell_residues(mtt_s[block], k[block], n_long, dt)
            h = transport(r, float(tau), dt)
            peak[block] = first_peak_index(h) * dt
            height[block] = h.max(axis=-1)
            curves[block, :n_fine] = tissue_convolve(a_tau, r[:, :n_fine], dt)
    return ResponseTable(curves, peak, height)


def sample_tissue(
    out: np.ndarray,
    index: np.ndarray,
    amplitude: np.ndarray,
    params: VoxelParameters,
    table: ResponseTable,
    times: np.ndarray,
    dt: float,
    *,
    chunk: int = 131_072,
) -> np.ndarray:
    """Add ``amplitude * response(t - delay)`` at the frame times to rows ``index`` of
    ``out`` (n_voxels, t); returns each voxel's time to peak (s, at the frame times).

    Frame times on the fine grid are read directly; others are interpolated linearly
    between the two neighbouring fine-grid samples.
    """
    pos = times / dt
    base = np.floor(pos + 1e-9).astype(np.int64)
    frac = (pos - base).astype(np.float32)
    exact = bool(np.all(frac < 1e-6))
    n_fine = table.curves.shape[1] - 1
    ttp = np.empty(len(index), np.float64)
    for lo in range(0, len(index), chunk):
        sl = slice(lo, lo + chunk)
        rows = params.combo[sl, None]
        idx = base[None, :] - params.delay_steps[sl, None]
        # Before the bolus reaches the voxel: the zero column (index -1).
        vals = table.curves[rows, np.maximum(idx, -1)]
        if not exact:
            nxt = np.where(idx + 1 < 0, -1, np.minimum(idx + 1, n_fine - 1))
            vals += frac[None, :] * (table.curves[rows, nxt] - vals)
        vals *= amplitude[sl, None]
        out[index[sl]] += vals
        ttp[sl] = times[np.argmax(vals, axis=1)]
    return ttp
