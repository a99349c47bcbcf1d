"""Residue shapes of the NLR beyond the box: gamma and uniform transit times as ramps
(private).

A residue is the share of tracer still in the tissue, ``R(t) = P(transit time > t)``. With
transit times gamma-distributed (shape ``k``, mean MTT; ``k = 1`` the exponential residue
of a well-mixed compartment, large ``k`` tending to the box), ``R`` is approximated by
straight lines through its values at the ``J`` quantiles ``1 - j / J`` of the transit
times (`gamma_ramps`): a mixture of ``J`` equally likely uniform spreads of transit times
(the tail's bin halved), the first and last as long as their bins' means require, all
rescaled so that the mean transit time is exactly the model's MTT. A uniform spread over
``[u1, u2]`` turns the AIF's running integral ``Ā`` into a difference of its second
integral ``Ā̄``, so the tissue curve is::

    C(t) = scale * CBF * (Ā(t - d) - (1 / MTT) * sum_e w_e Ā̄(t - d - c_e MTT))

with nodes ``c_e`` and weights ``w_e`` fixed by ``k``: a few shifted values of tables the
box fit already holds (`_boxsolve.ShiftTable.ramp`), no convolution per voxel. Written
here rather than taken from a library because the batched Newton fit needs exactly this
form and its derivatives. Transit times spread uniformly about the MTT (`spread_ramps`)
are a single ramp: a trapezoidal residue, triangular when the spread starts at 0.

Why ramps and not steps (``J`` boxes): on the minimal forward model (``tests/forward``,
0.5 s frames, noise-free, MTT 3-12 s) a 6-step staircase fitted true exponential residues
worse than the 2-shape staircase did (sum of squares 2.8-5.7 against 1.4-3.5 HU²), so the
best-fitting shape read their CBF 20-25 % low; 6 ramps fit the exponential best with
its own shape (1.2-1.4 HU², CBF within 2 %).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache, partial

import numpy as np
from scipy import ndimage
from scipy.special import gammainc, gammaincinv

from ._aifspline import aif_integral, aif_second_integral
from ._boxsolve import ShiftTable, newton_state, profile, solve
from .base import map_chunks

__all__ = [
    "RAMPS",
    "RIVAL",
    "Ramps",
    "gamma_ramps",
    "spread_ramps",
    "residue_ramps",
    "dispersion",
    "ramp_curves",
    "evaluate_ramps",
    "select_shapes",
    "climb_shapes",
    "fit_hinted_shapes",
    "pooled_fits",
    "borrow_mtt",
    "adopt_mtt",
]

log = logging.getLogger(__name__)

#: Ramps (equally likely uniform spreads of transit times) per residue.
RAMPS = 8
#: A shape is refined where its grid SSE, less GRID_EXCESS of the curve's energy (how much
#: worse a coarse grid point fits than the refined fit: up to 0.5 % on noise-free curves),
#: plus MARGIN noise variances is below the box's SSE (a noise-dominated voxel gains about
#: two variances by refining two parameters, and the penalty asks for four).
GRID_EXCESS = 5e-3
MARGIN = 2.0
#: Shapes refined per curve at most: the best on the grid.
REFINED = 3
#: Smooth directions of the box's residual tested for misfit, and the F-ratio that flags it
#: (about the 80 % point of F(4, 82): a fifth of the noise-only curves pass). Chosen
#: between speed and accuracy (bench_perfusion's study at 3 HU, gamma residues, one
#: thread: 1.5 takes 1.8 times the box alone's time, 1.0 2.6 times; exponential grey
#: matter at 3 HU read 0.71 of its CBF against 0.88, identical at 1.2 HU and below).
SMOOTH = 4
F_RATIO = 1.5
#: Where a curve kept a shape (`select_shapes`), the other family's best fit is kept too,
#: as ``out["rival_<key>"]`` (`RIVAL`, these values where there is none), and climbed
#: (`climb_shapes`).
_NO_RIVAL = {"cbf": 0.0, "mtt": np.nan, "delay": np.nan, "sse": np.inf, "shape": np.inf}
RIVAL = tuple(f"rival_{key}" for key in _NO_RIVAL)


@dataclass(frozen=True)
class Ramps:
    """A piecewise-linear residue: nodes ``coefs`` (fractions of the MTT, from 0) and the
    weights of ``Ā̄`` at each (``g = Ā(t - d) - sum_e w_e Ā̄(t - d - c_e M) / M``)."""

    coefs: tuple[float, ...]
    weights: tuple[float, ...]


@lru_cache(maxsize=32)
def gamma_ramps(k: float, ramps: int = RAMPS) -> Ramps:
    """The residue of gamma transit times with shape ``k`` as uniform spreads.

    The transit times are cut at their quantiles ``j / ramps`` into equally likely bins,
    the last (the tail) halved once more; each bin becomes a uniform spread between its
    cuts, so the residue is the straight line through its values at the cuts:
    ``ramps + 2`` nodes. The first and last bins, whose outer cuts are 0 and infinity,
    end where their uniform spread has the bin's mean (``2 mean - inner cut``), and all
    nodes are rescaled so that the mixture's mean transit time is the distribution's, 1:
    the model's MTT. Against the true gamma residue (k = 1-8, 8 ramps) the largest error
    is 0.009-0.015 of the residue's height; spreads with each bin's mean and standard
    deviation (the model before) were further off (0.026-0.030) with 16 nodes, each a
    shifted table lookup per fit (noise-free exponential residues of MTT 4-10 s: CBF
    within 1.4 % against 3.6 %).

    Parameters
    ----------
    k : float
        Shape of the gamma distribution of transit times (> 0; 1 is exponential).
    ramps : int
        Number of equally likely bins before the tail's is halved (>= 2).

    Returns
    -------
    Ramps
        Node positions (fractions of the MTT) and weights of ``Ā̄`` at each.

    Examples
    --------
    >>> [round(c, 3) for c in gamma_ramps(1.0, 2).coefs]
    [0.0, 0.673, 1.346, 3.288]
    """
    k, j = float(k), int(ramps)
    prob = np.concatenate([np.arange(j) / j, [1.0 - 0.5 / j, 1.0]])
    cuts = gammaincinv(k, prob)  # Gamma(k, scale 1)
    cuts[-1] = np.inf
    share = np.diff(prob)
    mean = np.diff(gammainc(k + 1.0, cuts)) / share  # E[T | bin], scale 1 / k: mean 1
    nodes = cuts / k
    nodes[0] = max(2.0 * mean[0] - nodes[1], 0.0)
    nodes[-1] = 2.0 * mean[-1] - nodes[-2]
    nodes /= np.sum(share * 0.5 * (nodes[1:] + nodes[:-1]))  # mixture mean exactly 1
    density = share / np.diff(nodes)
    weights = np.diff(density, prepend=0.0, append=0.0)
    return Ramps(tuple(float(c) for c in nodes), tuple(float(w) for w in weights))


def spread_ramps(width: float) -> Ramps:
    """The residue of transit times uniform over ``[1 - width, 1 + width]`` (fractions of
    the MTT): a trapezoid, falling in a straight line from ``1 - width`` to ``1 + width``;
    ``width = 1`` is the triangular residue ``R(t) = 1 - t / (2 MTT)`` (uniform transit
    times from 0, Kudo et al. 2013's third shape), which falls from its onset.

    No gamma shape falls from its onset: fitted with the box and gamma shapes alone, the
    triangular tiles of the DRO (``tests/forward/dro.py``) read their CBF a median 25 % low
    noise-free.

    Examples
    --------
    >>> spread_ramps(1.0)
    Ramps(coefs=(0.0, 2.0), weights=(0.5, -0.5))
    """
    w = float(width)
    if not 0.0 < w <= 1.0:
        raise ValueError(f"a spread's half-width is a fraction of the MTT in (0, 1], got {w}")
    return Ramps((1.0 - w, 1.0 + w), (0.5 / w, -0.5 / w))


def residue_ramps(key: float) -> Ramps:
    """The ramps of a residue shape's key: ``k > 0`` gamma transit times of shape ``k``
    (`gamma_ramps`), ``-1 <= k < 0`` transit times spread uniformly by ``|k|`` of the MTT
    about it (`spread_ramps`; -1 the triangular residue). The box (``inf``) has none."""
    k = float(key)
    if k > 0 and np.isfinite(k):
        return gamma_ramps(k)
    if -1.0 <= k < 0:
        return spread_ramps(-k)
    raise ValueError(f"no ramps for the residue shape {key!r}")


def dispersion(key) -> np.ndarray:
    """Signed coefficient of variation of a residue shape's transit times (its keys as in
    `residue_ramps`; ``inf``, the box, 0): ``1 / sqrt(k)`` for gamma shapes, ``-|k| /
    sqrt(3)`` for uniform spreads. Ordered by it, shapes run from the triangular residue
    through the box to the exponential, each next to the shapes it resembles
    (`climb_shapes`, `select_shapes`)."""
    k = np.asarray(key, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(k > 0, 1.0 / np.sqrt(np.abs(k)), k / np.sqrt(3.0))


def ramp_curves(times, knots, mtt, delay, ramps: Ramps) -> np.ndarray:
    """Unit-flow tissue curves (n, t) of a ramp residue, exactly (float64, scale 1)."""
    t = np.asarray(times, dtype=np.float64)[None, :]
    mtt = np.atleast_1d(np.asarray(mtt, dtype=np.float64))[:, None]
    delay = np.atleast_1d(np.asarray(delay, dtype=np.float64))[:, None]
    out = aif_integral(t - delay, *knots)[0]
    for c, w in zip(ramps.coefs, ramps.weights, strict=True):
        out = out - w / mtt * aif_second_integral(t - delay - c * mtt, *knots)
    return out


def _table_sums(table: ShiftTable, d: np.ndarray, m: np.ndarray, ramps: Ramps):
    """Weighted sums over the nodes of ``Ā̄``, ``Ā``, ``c Ā`` and ``{1, c, c²} a`` (n, t)."""
    return table.ramp_sums(d, m, *_nodes(ramps))


def table_ramp_curves(table: ShiftTable, d, m, ramps: Ramps) -> np.ndarray:
    """``g`` (n, t) of a ramp residue from the table, in its dtype (scaled)."""
    d, m = np.asarray(d, dtype=np.float64), np.asarray(m, dtype=np.float64)
    onset = table(d)[0]
    s_aa = _table_sums(table, d, m, ramps)[0]
    return (onset - s_aa / m[:, None]).astype(table.dtype, copy=False)


def evaluate_ramps(table: ShiftTable, y, theta, nonnegative: bool, ramps: Ramps):
    """Profiled fit, SSE, gradient and Newton system of a ramp residue at ``theta``.

    With ``A' = -a``, ``Ā̄' = -Ā`` (derivatives in the shift) and ``S_X = sum_e w_e X_e``:
    ``g = A_0 - S_Ā̄ / M``, ``g_d = -a_0 + S_Ā / M``, ``g_M = S_Ā̄ / M² + S_cĀ / M``;
    the second derivatives enter only through their products with the residual
    (`ShiftTable.ramp_state` computes every product in one pass).
    """
    s = table.ramp_state(y, theta[:, 0], theta[:, 1], *_nodes(ramps), nonnegative)
    p, rr, gram, q = (s[:, 3], s[:, 4]), (s[:, 5], s[:, 6]), s[:, 7:10].T, s[:, 10:13].T
    return newton_state(theta, s[:, 0], s[:, 2], s[:, 1], p, rr, gram, q)


@lru_cache(maxsize=32)
def _nodes(ramps: Ramps) -> tuple[np.ndarray, np.ndarray]:
    """A ramp residue's node positions and weights as arrays."""
    return np.array(ramps.coefs), np.array(ramps.weights)


def select_shapes(model, y: np.ndarray, out: dict, lo, hi, kw: dict) -> None:
    """Replace the box fits ``out`` (per-voxel arrays, modified) by a ramp residue of one
    of ``model.shapes`` where it fits better by more than ``model.shape_penalty`` noise
    variances.

    A shape is refined (`_boxsolve.solve`) where it may win: where its coarse start grid's
    best SSE, less the grid's coarseness (`GRID_EXCESS` of the curve's energy), comes
    within `MARGIN` noise variances of the box's refined SSE, and not much worse than the
    best shape's on the grid (a coarse grid does not rank close shapes reliably); the
    `REFINED` best of those, and the best of each family (gamma shapes, uniform spreads:
    noise-free, a triangular residue's coarse grid fitted 1.3-1.6 times worse than three
    gamma shapes' although its refined fit was exact, and it was never refined).
    The best refined shape is kept where ``SSE_shape + penalty * s2 < SSE_box``, with
    ``s2 = min(SSE) / (t - 3)`` the voxel's noise variance. The penalty keeps the box
    where noise alone would pick another shape: an unpenalised choice lets noise fit
    short-tailed residues of high CBF, which lifted the median CBF of healthy grey matter
    1.7-fold at 3 HU.
    """
    n_t = y.shape[1]
    dof = max(n_t - 3, 1)
    out |= {f"rival_{key}": np.full(y.shape[0], fill) for key, fill in _NO_RIVAL.items()}
    flagged = np.flatnonzero(misfit(model, y, out))
    if flagged.size == 0:
        return
    y = y[flagged]
    n = flagged.size
    box = out["sse"][flagged]
    slack = GRID_EXCESS * np.einsum("ij,ij->i", y, y).astype(np.float64) - MARGIN * box / dof
    # Start grids for every other shape of each family from the box outward (its most
    # dispersed always); `climb_shapes` then reaches the shapes between.
    shapes = np.asarray(model.shapes, dtype=np.float64)
    spread = np.abs(dispersion(shapes))
    gridded = np.unique(np.concatenate([
        np.concatenate([order[::2], order[-1:]])
        for family in (shapes > 0, shapes < 0)
        for order in [np.flatnonzero(family)[np.argsort(spread[family])]]
    ]))  # fmt: skip
    starts, sse = zip(*(model._grid(y.dtype, shapes[i]).best(y) for i in gridded), strict=True)
    sse = np.stack(sse)
    best_grid = sse.min(axis=0)
    chosen = (sse - slack < box) & (sse - best_grid <= slack + 2 * MARGIN * box / dof)
    # The best on the grid, and the best of each family (gamma shapes, uniform spreads):
    # the coarse grid ranks shapes of one family, not a family's against another's.
    rank = np.argsort(np.argsort(sse, axis=0), axis=0)
    family = np.sign(shapes[gridded])[:, None]
    first = np.stack([sse[j] == np.where(family == f, sse, np.inf).min(axis=0)
                      for j, f in enumerate(family[:, 0])])  # fmt: skip
    chosen &= (rank < REFINED) | first
    table = model._table(y.dtype)
    fams = {f: {key: np.zeros(n) for key in ("cbf", "mtt", "delay")} for f in (1.0, -1.0)}
    for fam in fams.values():
        fam |= {"sse": np.full(n, np.inf), "shape": np.full(n, np.inf)}
    for j, i in enumerate(gridded):
        k = float(shapes[i])
        sel = np.flatnonzero(chosen[j])
        if sel.size == 0:
            continue
        evaluate_at = partial(evaluate_ramps, ramps=residue_ramps(k))
        alt = solve(table, y[sel], starts[j][sel], lo, hi, evaluate_at=evaluate_at, **kw)
        out["iterations"][flagged[sel]] += alt["iterations"]
        fam = fams[float(np.sign(k))]
        better = (alt["sse"] < fam["sse"][sel]) & (alt["cbf"] > 0)
        for key in ("cbf", "mtt", "delay", "sse"):
            fam[key][sel[better]] = alt[key][better]
        fam["shape"][sel[better]] = k
    spread_wins = fams[-1.0]["sse"] < fams[1.0]["sse"]
    best = {key: np.where(spread_wins, fams[-1.0][key], fams[1.0][key]) for key in fams[1.0]}
    rival = {key: np.where(spread_wins, fams[1.0][key], fams[-1.0][key]) for key in fams[1.0]}
    noise = np.minimum(best["sse"], box) / dof
    win = np.flatnonzero(best["sse"] + model.shape_penalty * noise < box)
    log.debug(
        "shapes: %d of %d voxels misfit, %d refined, %d kept",
        n,
        out["sse"].size,
        int(chosen.any(axis=0).sum()),
        win.size,
    )
    for key in _NO_RIVAL:
        out[key][flagged[win]] = best[key][win]
        out[f"rival_{key}"][flagged[win]] = rival[key][win]


#: Rounds of `climb_shapes` at most, and curves per solver call there.
CLIMB_ROUNDS = 3
CLIMB_CHUNK = 32768


def climb_shapes(model, y: np.ndarray, out: dict, lo, hi, kw) -> None:
    """Where a curve kept a shape (`select_shapes`), refine the shapes next to it in
    ``model.shapes`` along their `dispersion` (started from its fit) while that lowers
    the SSE, from the kept shape and from the other family's best (``out["rival_*"]``,
    removed); the better is kept. ``out`` is modified.

    Each family is climbed because the climb is local: noise-free, gamma residues of
    shape 8 kept a uniform spread of SSE 2-3 times the gamma shape 6's and read their CBF
    8-26 % high; the spreads' neighbours were no better, and the gamma shapes were not
    reached.

    The start grids rank shapes by fits half a second apart in onset, and only every
    other shape has one: a residue whose onset falls between grid points can see the
    right shape left out of the `REFINED` best. Noise-free, before this step, a gamma
    residue of shape 20 delayed 0.7 s was fitted as shape 8 and read its CBF 15 % high
    (shape 10 as 5.5, 25 % high), although shape 20 fits it exactly (minimal forward
    model, ``tests/forward``). Curves that kept the box are left alone: noise decides
    them (most of the brain at 3 HU) and no neighbour would change that. One pass over
    every curve (not per chunk of `select_shapes`): the solver's cost per call
    (about 1.5 ms) made small per-chunk calls cost a second at 512.
    """
    rival = {key: out.pop(f"rival_{key}") for key in _NO_RIVAL}
    rival["iterations"] = out["iterations"]
    for fits in (out, rival):
        _climb(model, y, fits, lo, hi, kw)
    take = (rival["sse"] < out["sse"]) & (rival["cbf"] > 0)
    for key in _NO_RIVAL:
        out[key][take] = rival[key][take]


def _climb(model, y: np.ndarray, out: dict, lo, hi, kw) -> None:
    """`climb_shapes` from the shapes of ``out`` (modified)."""
    shapes = np.asarray(model.shapes, dtype=np.float64)
    if shapes.size < 2:
        return
    ascending = np.sort(dispersion(shapes))

    def rank_of(k: np.ndarray) -> np.ndarray:  # place along the shapes' dispersion
        return np.searchsorted(ascending, dispersion(k))

    rank = rank_of(shapes)
    kept = np.flatnonzero(np.isfinite(out["shape"]) & (out["cbf"] > 0))
    tried = np.zeros((shapes.size, kept.size), dtype=bool)
    table = model._table(y.dtype)
    for _ in range(CLIMB_ROUNDS):
        at = rank_of(out["shape"][kept])
        tried[rank[:, None] == at[None, :]] = True  # its own shape
        improved = False
        for i, k in enumerate(shapes):
            sel = np.flatnonzero((np.abs(at - rank[i]) == 1) & ~tried[i])
            if sel.size == 0:
                continue
            tried[i, sel] = True
            idx = kept[sel]
            evaluate_at = partial(evaluate_ramps, ramps=residue_ramps(k))
            better = np.zeros(sel.size, dtype=bool)

            def work(sl: slice, idx=idx, evaluate_at=evaluate_at, k=k, better=better) -> None:
                v = idx[sl]
                start = np.stack([out["delay"][v], out["mtt"][v]], axis=1)
                alt = solve(table, y[v], start, lo, hi, evaluate_at=evaluate_at, **kw)
                win = (alt["sse"] < out["sse"][v]) & (alt["cbf"] > 0)
                for key in ("cbf", "mtt", "delay", "sse"):
                    out[key][v[win]] = alt[key][win]
                out["shape"][v[win]] = k
                out["iterations"][v] += alt["iterations"]
                better[sl] = win

            map_chunks(work, idx.size, CLIMB_CHUNK, model.workers)
            improved |= bool(better.any())
        if not improved:
            return


#: In-plane size (mm) of the blocks whose mean curves are fitted for the shape
#: (`pooled_fits`), before the Gaussian pooling.
POOL_BLOCK_MM = 2.0
#: Width (s) of the delay bins whose curves are pooled apart (`pooled_fits`), and their
#: number (the last one open-ended).
POOL_DELAY_S = 1.0
POOL_DELAY_BINS = 12


#: A neighbourhood's fit where there is none (`pooled_fits`): the box, no MTT, no onset.
_NO_FIT = {"shape": np.inf, "mtt": np.nan, "delay": np.nan}


def pooled_fits(
    model,
    curves: np.ndarray,
    layout,
    spacing,
    sigma_mm: float,
    delay: np.ndarray,
    every: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Fit of each curve's neighbourhood: ``shape``, ``mtt`` and ``delay`` (n_fit,) of the
    curves pooled around it among curves of a similar delay; ``curves`` (n_fit, t) come
    from the (x, y, z) grid of ``layout`` (`base.VoxelLayout`), whose voxel size is
    ``spacing`` (mm), and ``delay`` (n_fit,) is each one's fitted onset (s). For the
    curves ``every`` (indices), also the fit of every delay bin's neighbourhood:
    ``bin_shape``, ``bin_mtt``, ``bin_delay`` (bins, len(every)).

    One voxel's curve rarely tells its residue's shape: at the noise of filtered frames
    (3 HU) a dispersed residue's box fit is within the shape penalty of the shaped one, so
    most dispersed tissue keeps the box and its CBF reads 20-35 % low. The shape is a
    property of the tissue around the voxel (dispersion grows with distance from an
    occluded artery, it does not jump between neighbours), so it is chosen
    (`select_shapes`, same penalty) on pooled curves: the mean curves of `POOL_BLOCK_MM`
    blocks, pooled in-plane by a Gaussian of ``sigma_mm`` (normalised by the voxels
    present) and fitted every ``sigma_mm`` / 2 or so. Only curves whose delays fall in
    the same `POOL_DELAY_S` bin are pooled: curves of different delays average into a
    dispersed-looking curve (at the border of a delayed lesion, healthy box tissue took
    dispersed shapes and read its CBF 15 % high). Every curve takes the fit of the
    nearest fitted block of its slice and delay bin (shape ``inf``, the box, and NaN MTT
    and delay where there is none).
    """
    delay = _local_delay(delay, layout.index, layout.shape, spacing)
    bins = np.floor(np.clip(delay, 0.0, None) / POOL_DELAY_S).astype(np.int64)
    bins = np.minimum(bins, POOL_DELAY_BINS - 1)
    every = np.zeros(0, dtype=np.intp) if every is None else np.asarray(every)
    out = {k: np.full(curves.shape[0], v) for k, v in _NO_FIT.items()}
    out |= {f"bin_{k}": np.full((POOL_DELAY_BINS, every.size), v) for k, v in _NO_FIT.items()}
    for j in np.unique(bins):
        sel = np.flatnonzero(bins == j)
        own, others = _pooled_bin(model, curves[sel], layout.index[sel], layout.shape,
                                  spacing, sigma_mm, layout.index[every])  # fmt: skip
        for key in _NO_FIT:
            out[key][sel] = own[key]
            out[f"bin_{key}"][j] = others[key]
    return out


class _Blocks:
    """The `POOL_BLOCK_MM` in-plane blocks of an (x, y, z) grid of voxel size ``spacing``:
    ``size`` voxels per block side, the blocks' ``grid`` and ``of(flat)``, the block of
    each flat voxel index."""

    def __init__(self, shape, spacing) -> None:
        self.shape = tuple(shape)
        self.px = np.asarray(spacing[:2], dtype=np.float64)
        self.size = np.maximum(1, np.round(POOL_BLOCK_MM / self.px).astype(int))
        b = self.size
        self.grid = (-(-shape[0] // b[0]), -(-shape[1] // b[1]), shape[2])

    def of(self, flat: np.ndarray) -> np.ndarray:
        x, y, z = np.unravel_index(flat, self.shape)
        return np.ravel_multi_index((x // self.size[0], y // self.size[1], z), self.grid)


#: Blocks (`POOL_BLOCK_MM`) per side of the in-plane window whose median of block delays
#: bins a curve for pooling (`_local_delay`): 3, a window of about 6 mm.
POOL_DELAY_BLOCKS = 3


def _local_delay(delay, index, shape, spacing) -> np.ndarray:
    """The delay (s) around each curve: the median, over `POOL_DELAY_BLOCKS` x
    `POOL_DELAY_BLOCKS` blocks in-plane, of the mean delays of the `POOL_BLOCK_MM` blocks
    (blocks without curves take their nearest one's), per curve at flat ``index`` of
    ``shape``.

    Binning curves by their own fitted delay selects them by their noise: of healthy
    tissue (no delay), the curves whose noise fitted a late onset were pooled together,
    and their pooled curve looked dispersed (on the minimal forward model at 3 HU, healthy
    white matter took gamma shapes and read its CBF 36 % high, 8 % now). A window of 10 mm
    did as well there but lowered core Dice on the phantom by 0.01-0.03 (calibration
    seeds): a lesion's delay changes over a few millimetres.
    """
    blocks = _Blocks(shape, spacing)
    block, grid = blocks.of(index), blocks.grid
    clipped = np.clip(delay, 0.0, POOL_DELAY_S * POOL_DELAY_BINS)
    count = np.bincount(block, minlength=int(np.prod(grid)))
    mean = np.bincount(block, clipped, minlength=count.size) / np.maximum(count, 1)
    empty = (count == 0).reshape(grid)
    nearest = ndimage.distance_transform_edt(empty, return_distances=False, return_indices=True)
    mean = mean.reshape(grid)[tuple(nearest)]
    size = (POOL_DELAY_BLOCKS, POOL_DELAY_BLOCKS, 1)
    return ndimage.median_filter(mean, size=size, mode="nearest").ravel()[block]


def _pooled_bin(model, curves, index, shape, spacing, sigma_mm, also):
    """`pooled_fits` for the curves of one delay bin at flat ``index`` of ``shape``: the
    fits at those curves and at the flat indices ``also``."""
    from scipy import sparse

    blocks = _Blocks(shape, spacing)
    px, b, grid, block_of = blocks.px, blocks.size, blocks.grid, blocks.of
    block = block_of(index)
    n_blocks, n = int(np.prod(grid)), curves.shape[0]
    member = sparse.csr_matrix(
        (np.ones(n, dtype=curves.dtype), (block, np.arange(n))), shape=(n_blocks, n)
    )
    sums = np.asarray(member @ curves).reshape(grid + (curves.shape[1],))
    count = np.bincount(block, minlength=n_blocks).reshape(grid).astype(np.float32)
    sig = (sigma_mm / (b[0] * px[0]), sigma_mm / (b[1] * px[1]))
    stride = max(1, int(round(0.5 * sig[0])))
    weight = _blur_every(count, sig, stride)
    # A quarter of the neighbourhood's voxels in this bin at least.
    keep = weight >= 0.25 * b[0] * b[1]
    if not keep.any():
        return tuple({k: np.full(m, v) for k, v in _NO_FIT.items()} for m in (n, len(also)))
    pooled = _blur_every(sums, sig, stride)[keep] / weight[keep][:, None]
    fitted = np.zeros(grid, bool)
    fitted[::stride, ::stride] = keep
    fit = model._fit_curves(pooled)
    fit["mtt"][fit["cbf"] <= 0] = np.nan  # nothing fitted: no MTT to lend
    # Nearest fitted block in the same slice (another slice is out of reach).
    far = (b[0] * px[0], b[1] * px[1], 1e6)
    nearest = ndimage.distance_transform_edt(
        ~fitted, sampling=far, return_distances=False, return_indices=True
    )
    own, others = {}, {}
    for key, fill in _NO_FIT.items():
        values = np.full(grid, fill)
        values[fitted] = fit[key]
        values = values[tuple(nearest)].ravel()
        own[key], others[key] = values[block], values[block_of(also)]
    return own, others


def _blur_every(a: np.ndarray, sigma: tuple[float, float], stride: int) -> np.ndarray:
    """In-plane Gaussian blur (``sigma`` in blocks along axes 0 and 1, truncated at 3
    sigma, edges reflected) of ``a``, at every ``stride``-th block along both.

    Each axis's blur is a matrix (`_blur_matrix`: only the rows kept) applied by one
    matrix product over the other axes, which keeps the trailing time axis contiguous:
    ``ndimage.gaussian_filter1d`` across it took 2 of the 3.8 s of `pooled_fits` at 512.
    """
    lead = _blur_matrix(a.shape[0], sigma[0], stride)
    a = (lead @ a.reshape(a.shape[0], -1)).reshape((lead.shape[0],) + a.shape[1:])
    cross = _blur_matrix(a.shape[1], sigma[1], stride)
    return np.matmul(cross, a.reshape(a.shape[0], a.shape[1], -1)).reshape(
        (a.shape[0], cross.shape[0]) + a.shape[2:]
    )


def _blur_matrix(n: int, sigma: float, stride: int) -> np.ndarray:
    """Rows ``::stride`` of the (n, n) operator of ``ndimage.gaussian_filter1d`` (sigma,
    truncate 3, reflected edges), float32: its response to each unit impulse."""
    eye = np.eye(n, dtype=np.float64)
    return ndimage.gaussian_filter1d(eye, sigma, axis=0, truncate=3.0)[::stride].astype(np.float32)


def fit_hinted_shapes(model, y: np.ndarray, out: dict, hint: np.ndarray, lo, hi, kw) -> None:
    """Replace the box fits ``out`` by a fit of the shape ``hint`` gives per curve
    (``inf``: keep the box), where that fit has a positive flow and the curve does not
    reject it: its SSE exceeds the box's by less than ``model.shape_penalty`` noise
    variances (the box's SSE / (t - 3)). A neighbourhood's shape is a prior, which the
    voxel's own curve can overrule (at a border between tissues of different delay,
    pooled curves look dispersed; a noise-free box is never refitted as anything else).
    """
    table = model._table(y.dtype)
    dof = max(y.shape[1] - 3, 1)
    for k in np.unique(hint[np.isfinite(hint)]):
        sel = np.flatnonzero(hint == k)
        evaluate_at = partial(evaluate_ramps, ramps=residue_ramps(k))
        start = model._grid(y.dtype, float(k)).best(y[sel])[0]
        alt = solve(table, y[sel], start, lo, hi, evaluate_at=evaluate_at, **kw)
        out["iterations"][sel] += alt["iterations"]
        box = out["sse"][sel]
        ok = (alt["cbf"] > 0) & (alt["sse"] <= box * (1.0 + model.shape_penalty / dof))
        for key in ("cbf", "mtt", "delay", "sse"):
            out[key][sel[ok]] = alt[key][ok]
        out["shape"][sel[ok]] = k


#: Onsets tried (s, around the neighbourhood's) when a curve takes its neighbourhood's
#: MTT and shape (`borrow_mtt`).
BORROW_DELAYS = np.arange(-1.5, 1.51, 0.5)
#: Onsets tried (s, around its neighbourhood's; the curve's own onset is tried too) when a
#: curve is fitted with its neighbourhood's MTT and shape (`adopt_mtt`).
ADOPT_DELAYS = np.arange(-0.5, 0.51, 0.25)
#: Noise variances of SSE by which a curve rejects its neighbourhood's MTT and shape
#: (`adopt_mtt`): the 1 % tail of a chi-square of the two parameters the neighbourhood
#: fixes, -2 ln 0.01 = 9.2. Where the neighbourhood's MTT and shape are the voxel's own,
#: noise alone then rejects them in about 1 % of curves; at the shape choice's 4 it did
#: in about 13 % (e^-2), and those were the curves whose noise favoured a shorter box.
ADOPT_PENALTY = -2.0 * math.log(0.01)


def _best_onset(model, ys, mtt, shape, onsets, lo, hi) -> dict[str, np.ndarray]:
    """Fits of the curves ``ys`` (m, t) with a residue of fixed ``mtt`` and ``shape`` (m,):
    of the ``onsets`` (arrays (m,), s, clipped to the delay bounds), the one of least SSE
    with a positive flow, CBF profiled. Returns ``sse`` (``inf`` where no onset gave a
    positive flow), ``cbf`` and ``delay``, each (m,)."""
    best = {"sse": np.full(len(ys), np.inf), "cbf": np.zeros(len(ys)), "delay": np.zeros(len(ys))}
    for onset in onsets:
        delay = np.clip(onset, lo[0], hi[0])
        g = model.curves(np.ones(len(ys)), mtt, delay, ys.dtype, shape)
        f, _, _, sse = profile(ys, g, model.nonnegative)
        better = (sse < best["sse"]) & (f > 0)
        best["sse"][better], best["cbf"][better] = sse[better], f[better]
        best["delay"][better] = delay[better]
    return best


def _take_unless_rejected(y, out, sel, best, flag: str, penalty: float) -> None:
    """Write the fits ``best`` (keys of ``out``, each (len(sel),)) of the curves ``sel``
    into ``out`` where the curve does not reject them: their SSE exceeds the curve's own
    fit's by at most ``penalty`` noise variances (the own SSE / (t - 3));
    ``out[flag]`` marks the curves that took them."""
    dof = max(y.shape[1] - 3, 1)
    ok = best["sse"] <= out["sse"][sel] * (1.0 + penalty / dof)
    for key in ("cbf", "delay", "mtt", "shape", "sse"):
        out[key][sel[ok]] = best[key][ok]
    out[flag][sel[ok]] = True


def borrow_mtt(model, y: np.ndarray, out: dict, pooled: dict, lo, hi) -> None:
    """Refit the curves ``pooled["every"]`` (those whose fit ended on the lower MTT bound)
    with a neighbourhood's MTT and shape (``pooled``, `pooled_fits`): of every delay bin's
    neighbourhood, the one that fits the curve best, CBF profiled and the onset the best
    of `BORROW_DELAYS` around the neighbourhood's; ``out`` is modified, and
    ``out["borrowed"]`` marks the curves refitted.

    A fit on the bound is the noise's, not the tissue's: at 3 HU, 7-9 % of the brain's
    voxels at 512 (low-flow white matter and the core most of all) fitted a box of the
    shortest MTT and read their CBF 1.8-2.5 times the truth, and a core voxel read that
    way is counted as penumbra. The neighbourhood's pooled curve, much less noisy, gives
    the MTT; the voxel's own curve then gives its CBF and onset. Every delay bin's
    neighbourhood is tried because the short box's onset, which chose the voxel's own
    bin, is not the tissue's. The voxel keeps its own fit where the borrowed one is worse
    by more than ``model.shape_penalty`` noise variances (a curve that really is that
    short: a vessel).
    """
    sel = pooled["every"]
    if sel.size == 0:
        return
    best = {"sse": np.full(sel.size, np.inf), "shape": np.full(sel.size, np.inf)}
    best |= {k: np.zeros(sel.size) for k in ("cbf", "delay", "mtt")}

    def work(sl: slice) -> None:
        ys, part = y[sel[sl]], {k: v[sl] for k, v in best.items()}  # views: written in place
        for j in range(pooled["bin_mtt"].shape[0]):
            mtt, shape = pooled["bin_mtt"][j, sl], pooled["bin_shape"][j, sl]
            has = np.flatnonzero(mtt > lo[1] * (1 + 1e-6))
            if has.size == 0:
                continue
            around = pooled["bin_delay"][j, sl][has]
            onsets = [around + step for step in BORROW_DELAYS]
            fit = _best_onset(model, ys[has], mtt[has], shape[has], onsets, lo, hi)
            better = fit["sse"] < part["sse"][has]
            w = has[better]
            for key in ("sse", "cbf", "delay"):
                part[key][w] = fit[key][better]
            part["mtt"][w], part["shape"][w] = mtt[w], shape[w]

    map_chunks(work, sel.size, model.chunk_size, model.workers)
    _take_unless_rejected(y, out, sel, best, "borrowed", model.shape_penalty)


def adopt_mtt(model, y: np.ndarray, out: dict, pooled: dict, lo, hi) -> None:
    """Fit every curve with its neighbourhood's MTT and shape (``pooled["mtt"]``,
    ``pooled["shape"]``, `pooled_fits`: the pooled curve of its own delay bin), CBF
    profiled and the onset the best of its own and of `ADOPT_DELAYS` around its
    neighbourhood's; a curve takes that fit unless its own curve rejects it by more than
    `ADOPT_PENALTY` noise variances. Curves already refitted (``out["borrowed"]``) and
    curves without flow are left; ``out["adopted"]`` (bool, (n,)) marks the curves that
    took it.

    Why: the MTT of one voxel's curve is the least determined of its parameters, and
    noise does not spread it evenly: a shorter box or a less dispersed shape follows the
    noise more closely, so at low contrast the fitted MTT is biased short and the CBF,
    ``CBV / MTT`` with an almost unbiased CBV, high. MTT is a property of the tissue
    around the voxel, as its shape is; a voxel whose own MTT differs enough to show (a
    lesion's border, a vessel) keeps its own fit. The test is a likelihood ratio: the
    neighbourhood fixes two parameters (MTT and shape), so where they are the voxel's
    own the SSE they cost is about a chi-square of two noise variances, and the penalty
    is its 1 % tail. At the shape choice's 4 (13.5 % of that chi-square) the curves that
    rejected were mostly those whose noise favoured a short box, and the CBF error stayed
    twice as large (``docs/accuracy_forward.md``, "The neighbourhood's MTT"; measurements
    and the known limit on the phantom in the module docstring of `boxnlr`).
    """
    fitted = out["cbf"] > 0
    sel = np.flatnonzero(fitted & ~out["borrowed"] & (pooled["mtt"] > lo[1] * (1 + 1e-6)))
    if sel.size == 0:
        return
    best = {"sse": np.full(sel.size, np.inf), "cbf": np.zeros(sel.size)}
    best |= {"delay": np.zeros(sel.size), "mtt": pooled["mtt"][sel], "shape": pooled["shape"][sel]}

    def work(sl: slice) -> None:
        idx = sel[sl]
        around = pooled["delay"][idx]
        onsets = [out["delay"][idx]] + [around + step for step in ADOPT_DELAYS]
        fit = _best_onset(model, y[idx], best["mtt"][sl], best["shape"][sl], onsets, lo, hi)
        for key in ("sse", "cbf", "delay"):
            best[key][sl] = fit[key]

    map_chunks(work, sel.size, model.chunk_size, model.workers)
    _take_unless_rejected(y, out, sel, best, "adopted", ADOPT_PENALTY)


def misfit(model, y: np.ndarray, out: dict) -> np.ndarray:
    """Curves whose box fit leaves more smooth structure than noise would, (n,) bool.

    The residual's energy in the `SMOOTH` leading directions of the box's model curves
    (`boxnlr.BoxNLRModel._subspace`) against the rest's, per direction: an F-ratio above `F_RATIO`.
    White noise spreads evenly (ratio about 1); a residue the box cannot follow leaves
    its misfit in those few smooth directions. Only such curves can gain from another
    shape by more than the penalty, so only they get the shapes' grids and fits (on
    noise-dominated curves about a fifth pass by chance).
    """
    fitted = out["cbf"] != 0
    r = y - model.curves(out["cbf"], out["mtt"], out["delay"], y.dtype)
    u = model._subspace(y.dtype)[:, :SMOOTH]
    smooth = np.einsum("ij,ij->i", p := r @ u, p).astype(np.float64)
    rest = np.maximum(out["sse"] - smooth, 0.0)
    q, dof = SMOOTH, max(y.shape[1] - 3 - SMOOTH, 1)
    return fitted & (smooth * dof > F_RATIO * q * rest)
