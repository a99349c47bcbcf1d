"""The batched least-squares solver behind `boxnlr.BoxNLRModel` (private).

Parameters per voxel: ``theta = (delay, MTT)``, the box's two edges being ``delay`` and
``delay + MTT`` (linear in theta, so the SSE is close to quadratic in it, also for very
short boxes where it flattens towards MTT = 0; other residue shapes bring their own
`evaluate`, `_residues`); CBF is profiled out (closed form, ``>= 0``
unless told otherwise). Each iteration takes the Newton step on the SSE reduced to
``theta`` (exact Hessian of the variable-projection problem: noise makes the residuals
large, so their second-order terms matter, and Gauss-Newton alone crawls), or the
Gauss-Newton step where the Hessian is not positive definite, capped (2 s of delay, 2 s
or half the MTT) and projected on the bounds. A trial is kept only where it lowers the
SSE, so a voxel never ends worse than its start; where it does not, the step shrinks to
the minimum of the parabola through SSE(0), its slope and SSE(trial) (backtracking). A
voxel stops when the Newton decrement falls below ``rtol`` of its SSE or its step below
``ALPHA_STOP`` of the Newton step.

Everything a step needs is a handful of dot products over time between the residual,
the model curve ``g`` and the AIF values and slopes at the two box edges: no derivative
curve is formed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._jit import jit
from ._aifspline import aif_integral, aif_second_integral
from .timing import is_uniform

__all__ = ["ShiftTable", "profile", "newton_state", "evaluate", "solve"]

#: Largest step per iteration: delay (s), and MTT (s, or half the MTT if more).
STEP_CAP = (2.0, 2.0)
#: Step fraction below which a voxel whose trials keep failing counts as converged.
ALPHA_STOP = 1e-3


class ShiftTable:
    """``s Ā(t_k - x)``, ``s a(t_k - x)`` and its slope for any shift ``x`` (s).

    Tabulated at ``x = x0 + j h`` over ``[x_lo, x_hi]``; between nodes ``a`` is linear in
    ``x`` and ``Ā`` quadratic, exact when frames are uniform (nodes then fall on knots).

    Parameters
    ----------
    times : ndarray, shape (t,)
        Frame times in s.
    knots : (ndarray, ndarray)
        AIF knots (times, values), linear in between.
    x_lo, x_hi : float
        Range of shifts in s.
    scale : float
        Factor ``s`` applied to everything (the tissue scale).
    dtype : numpy dtype
        Of the tables and results.
    """

    def __init__(
        self,
        times: np.ndarray,
        knots: tuple[np.ndarray, np.ndarray],
        x_lo: float,
        x_hi: float,
        scale: float,
        dtype: Any,
    ) -> None:
        self.h = float(np.diff(knots[0]).min())
        if not is_uniform(times):
            self.h /= 2.0
        self.x0 = self.h * np.floor(x_lo / self.h) - self.h
        n = int(np.ceil((x_hi - self.x0) / self.h)) + 3
        x = self.x0 + self.h * np.arange(n)
        integral, value = aif_integral(times[None, :] - x[:, None], *knots)
        self._second = (times, knots, x, scale)  # for `ramp`, built when first needed
        self.AA: np.ndarray | None = None
        self.n = n
        self.dtype = np.dtype(dtype)
        # The running integral stays float64: g = Ā(t - d) - Ā(t - d - MTT) cancels for
        # short boxes, float32 would lose most digits there.
        self.A = scale * integral
        self.a = (scale * value).astype(self.dtype)
        #: Change of ``s a`` from node j to j + 1 (``d(s a)/du = -da / h``).
        self.da = (scale * np.diff(value, axis=0, append=value[-1:])).astype(self.dtype)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``s Ā``, ``s a`` at ``t - x`` and the node step ``da`` for shifts ``x`` (n,)."""
        jf = (np.asarray(x, dtype=np.float64) - self.x0) / self.h
        j = np.clip(np.floor(jf).astype(np.intp), 0, self.n - 2)
        w = (jf - j).astype(self.dtype)[:, None]
        a_j = np.take(self.a, j, axis=0)
        da = np.take(self.da, j, axis=0)
        value = a_j + w * da
        # Ā(t - x_j - w h) = Ā_j - w h (a_j + a) / 2, exact for a linear in between.
        a_j += value
        a_j *= w * self.dtype.type(0.5 * self.h)
        integral = np.take(self.A, j, axis=0)
        integral -= a_j
        return integral, value, da

    def ramp_sums(
        self, d: np.ndarray, m: np.ndarray, coefs: np.ndarray, weights: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """What a ramp residue's curve and Newton system need: with ``X_e`` each table
        value at ``t - d - c_e m`` (shift ``d + c_e m`` per curve, nodes ``c_e`` = ``coefs``,
        weights ``w_e`` = ``weights``), the sums over the nodes ``S_Ā̄ = sum w_e s Ā̄_e``,
        ``S_Ā``, ``S_cĀ`` (float64) and ``S_a``, ``S_ca``, ``S_cca`` (the table's dtype),
        each (n, t), for ``d``, ``m`` (n,).

        Between table nodes ``Ā̄(u - δ) = Ā̄ - δ Ā + δ² a / 2 + δ³ a' / 6`` and
        ``Ā(u - δ) = Ā - δ a - δ² a' / 2`` (exact for ``a`` linear in between). One
        compiled loop (`_ramp_sums_loop`, numba) instead of numpy's 28 passes over
        (n, t) arrays per node: 7 times faster on 16384 curves.
        """
        tables = self._ramp_tables()
        d = np.ascontiguousarray(d, dtype=np.float64)
        m = np.ascontiguousarray(m, dtype=np.float64)
        shape = (d.size, self.A.shape[1])
        out = tuple(np.empty(shape) for _ in range(3))
        out += tuple(np.empty(shape, self.dtype) for _ in range(3))
        coefs = np.asarray(coefs, dtype=np.float64)
        weights = np.asarray(weights, dtype=np.float64)
        _compiled(_ramp_sums_loop)(*tables, self.x0, self.h, d, m, coefs, weights, *out)
        return out

    def ramp_state(
        self,
        y: np.ndarray,
        d: np.ndarray,
        m: np.ndarray,
        coefs: np.ndarray,
        weights: np.ndarray,
        nonnegative: bool,
    ) -> np.ndarray:
        """Per curve ``y`` (n, t), the scalars of a ramp residue's profiled fit and Newton
        system at onset ``d`` and MTT ``m`` (n,), as `_residues.evaluate_ramps` defines
        them: columns ``f, 1/<g,g>, SSE, <g,g_d>, <g,g_M>, <r,g_d>, <r,g_M>, <g_d,g_d>,
        <g_d,g_M>, <g_M,g_M>, <r,g_dd>, <r,g_dM>, <r,g_MM>`` (n, 13) float64. One compiled
        loop (`_ramp_state_loop`): the curves ``g`` and their derivatives are never stored.
        """
        tables = self._ramp_tables()
        out = np.empty((y.shape[0], 13))
        _compiled(_ramp_state_loop)(
            *tables,
            self.x0,
            self.h,
            np.ascontiguousarray(y),
            np.ascontiguousarray(d, dtype=np.float64),
            np.ascontiguousarray(m, dtype=np.float64),
            np.asarray(coefs, dtype=np.float64),
            np.asarray(weights, dtype=np.float64),
            bool(nonnegative),
            out,
        )
        return out

    def _ramp_tables(self) -> tuple[np.ndarray, ...]:
        """``s Ā̄``, ``s Ā``, ``s a`` and its slope ``d(s a)/dx`` at the nodes, float64."""
        if self.AA is None:
            # Built on first use by whichever worker thread gets here first: AA is set last,
            # so another thread that sees it set finds the other tables too.
            times, knots, nodes, scale = self._second
            self._a64 = self.a.astype(np.float64)
            self._da64 = self.da.astype(np.float64) / self.h
            self.AA = scale * aif_second_integral(times[None, :] - nodes[:, None], *knots)
        return self.AA, self.A, self._a64, self._da64

    def box(self, x1: np.ndarray, x2: np.ndarray) -> tuple[np.ndarray, ...]:
        """``g = s (Ā(t - x1) - Ā(t - x2))`` and ``s a``, ``da`` at both edges."""
        i1, v1, d1 = self(x1)
        i2, v2, d2 = self(x2)
        i1 -= i2
        return i1.astype(self.dtype, copy=False), v1, d1, v2, d2


def _ramp_sums_loop(AA, A, a, slope, x0, h, d, m, coefs, weights, s0, s1, s2, s3, s4, s5):
    """`ShiftTable.ramp_sums` as loops (compiled by `_compiled`): per curve and node, one
    pass over the frames (contiguous rows, vectorised) into float64 sums."""
    last = A.shape[0] - 2
    acc = np.empty((6, A.shape[1]))
    for i in range(d.size):
        _node_sums(AA, A, a, slope, x0, h, d[i], m[i], coefs, weights, last, acc)
        for t in range(A.shape[1]):
            s0[i, t] = acc[0, t]
            s1[i, t] = acc[1, t]
            s2[i, t] = acc[2, t]
            s3[i, t] = acc[3, t]
            s4[i, t] = acc[4, t]
            s5[i, t] = acc[5, t]


def _ramp_state_loop(AA, A, a, slope, x0, h, y, d, m, coefs, weights, nonnegative, out):
    """`ShiftTable.ramp_state` as loops (compiled by `_compiled`): per curve, the node sums
    as `_ramp_sums_loop`, then ``g = A(t - d) - S_Ā̄ / M``, ``g_d = S_Ā / M - a(t - d)``,
    ``g_M = S_Ā̄ / M² + S_cĀ / M``, the profiled CBF and the dot products over the frames."""
    n_t = A.shape[1]
    last = A.shape[0] - 2
    acc = np.empty((6, n_t))
    g = np.empty(n_t)
    g_d = np.empty(n_t)
    g_m = np.empty(n_t)
    step = np.empty(n_t)
    for i in range(d.size):
        _node_sums(AA, A, a, slope, x0, h, d[i], m[i], coefs, weights, last, acc)
        jf = (d[i] - x0) / h
        j = min(max(int(np.floor(jf)), 0), last)
        x = (jf - j) * h
        inv = 1.0 / m[i]
        gg = 0.0
        yg = 0.0
        for t in range(n_t):
            value = a[j, t] + slope[j, t] * x
            onset = A[j, t] - x * (a[j, t] + slope[j, t] * (0.5 * x))
            g[t] = onset - inv * acc[0, t]
            g_d[t] = inv * acc[1, t] - value
            g_m[t] = inv * inv * acc[0, t] + inv * acc[2, t]
            step[t] = slope[j, t]
            gg += g[t] * g[t]
            yg += y[i, t] * g[t]
        f = yg / gg if gg > 0.0 and (yg > 0.0 or not nonnegative) else 0.0
        sums = np.zeros(16)
        for t in range(n_t):
            r = y[i, t] - f * g[t]
            sums[0] += r * r
            sums[1] += g[t] * g_d[t]
            sums[2] += g[t] * g_m[t]
            sums[3] += r * g_d[t]
            sums[4] += r * g_m[t]
            sums[5] += g_d[t] * g_d[t]
            sums[6] += g_d[t] * g_m[t]
            sums[7] += g_m[t] * g_m[t]
            sums[8] += r * step[t]
            for k in range(6):
                sums[9 + k] += r * acc[k, t]
        out[i, 0] = f
        out[i, 1] = 1.0 / gg if gg > 0.0 else 0.0
        for k in range(8):
            out[i, 2 + k] = sums[k]
        raa, ra, rca, rv, rcv, rccv = sums[9], sums[10], sums[11], sums[12], sums[13], sums[14]
        out[i, 10] = -sums[8] - inv * rv
        out[i, 11] = -inv * inv * ra - inv * rcv
        out[i, 12] = -2.0 * inv**3 * raa - 2.0 * inv * inv * rca - inv * rccv


def _node_sums_loop(AA, A, a, slope, x0, h, d, m, coefs, weights, last, acc):
    """The six node sums of one curve (``acc``, (6, t)): see `ShiftTable.ramp_sums`."""
    acc[:] = 0.0
    for e in range(coefs.size):
        c, w = coefs[e], weights[e]
        jf = (d + c * m - x0) / h
        j = min(max(int(np.floor(jf)), 0), last)
        x = (jf - j) * h
        wc, wcc = w * c, w * c * c
        for t in range(A.shape[1]):
            a_j, s_j, big = a[j, t], slope[j, t], A[j, t]
            second = AA[j, t] + x * (x * (s_j * (x / 6.0) + 0.5 * a_j) - big)
            first = big - x * (a_j + s_j * (0.5 * x))
            value = a_j + s_j * x
            acc[0, t] += w * second
            acc[1, t] += w * first
            acc[2, t] += wc * first
            acc[3, t] += w * value
            acc[4, t] += wc * value
            acc[5, t] += wcc * value


#: What the loops call: `_node_sums_loop`, compiled by `_compiled` before them.
_node_sums = _node_sums_loop


def _compiled(loop):
    """``loop`` compiled (`ctpmaps._jit.jit`), after the helper it calls, `_node_sums`.
    Written by hand because the batched fit needs exactly these sums and no library
    evaluates them without numpy's temporaries (28 passes over (n, t) arrays per node:
    7 times slower on 16384 curves)."""
    global _node_sums
    _node_sums = jit(_node_sums_loop)
    return jit(loop)


@dataclass
class _State:
    """Per-voxel scalars at ``theta``: profiled CBF, SSE, -1/2 gradient and 1/2 Hessian."""

    theta: np.ndarray  # (n, 2)
    f: np.ndarray  # (n,)
    sse: np.ndarray  # (n,)
    b: np.ndarray  # (n, 2)
    hess: np.ndarray  # (n, 3): h11, h12, h22

    def take(self, keep: np.ndarray) -> _State:
        return _State(*(v[keep] for v in (self.theta, self.f, self.sse, self.b, self.hess)))

    def put(self, where: np.ndarray, other: _State) -> None:
        for name in ("theta", "f", "sse", "b", "hess"):
            getattr(self, name)[where] = getattr(other, name)[where]


def _dot(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", p, q).astype(np.float64)


def profile(y: np.ndarray, g: np.ndarray, nonnegative: bool):
    """CBF profiled out: ``f = <y, g> / <g, g>`` (0 where negative and ``nonnegative``),
    ``1 / <g, g>``, the residual ``r = y - f g`` and the SSE, per curve."""
    gg, yg = _dot(g, g), _dot(y, g)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where((gg > 0) & ((yg > 0) | (not nonnegative)), yg / gg, 0.0)
        inv_gg = np.where(gg > 0, 1.0 / gg, 0.0)
    r = y - f.astype(y.dtype)[:, None] * g
    return f, inv_gg, r, _dot(r, r)


def evaluate(
    table: ShiftTable,
    y: np.ndarray,
    theta: np.ndarray,
    nonnegative: bool = True,
) -> _State:
    """Profiled fit, SSE, gradient and Hessian of the box at ``theta`` for curves ``y``
    (n, t): dot products of the AIF values at the two edges, no derivative curve formed."""
    mtt = theta[:, 1]
    g, v1, d1, v2, d2 = table.box(theta[:, 0], theta[:, 0] + mtt)
    f, inv_gg, r, sse = profile(y, g, nonnegative)
    # <u, v> for the values v1, v2 and node steps d1, d2 at both edges of the box.
    v11, v12, v22 = _dot(v1, v1), _dot(v1, v2), _dot(v2, v2)
    gv1, gv2, rv1, rv2 = _dot(g, v1), _dot(g, v2), _dot(r, v1), _dot(r, v2)
    rs1, rs2 = _dot(r, d1), _dot(r, d2)
    # Derivatives of g (edges at d and d + M): g_d = v2 - v1, g_M = v2,
    # g_dd = (d2 - d1) / h, g_dM = g_MM = d2 / h.
    inv_h = 1.0 / table.h
    p = (gv2 - gv1, gv2)
    rr = (rv2 - rv1, rv2)
    gram = (v22 - 2 * v12 + v11, v22 - v12, v22)
    q = ((rs2 - rs1) * inv_h, rs2 * inv_h, rs2 * inv_h)
    return newton_state(theta, f, sse, inv_gg, p, rr, gram, q)


def newton_state(theta, f, sse, inv_gg, p, rr, gram, q) -> _State:
    """The Newton (or, where not positive definite, Gauss-Newton) system at ``theta``.

    ``p = <g, g_i>``, ``rr = <r, g_i>``, ``gram = <g_i, g_j>``, ``q = <r, g_ij>``.
    """
    f2 = f * f
    c_d, c_l = f * p[0] - rr[0], f * p[1] - rr[1]
    newton = np.stack(
        [
            f2 * gram[0] - f * q[0] - c_d * c_d * inv_gg,
            f2 * gram[1] - f * q[1] - c_d * c_l * inv_gg,
            f2 * gram[2] - f * q[2] - c_l * c_l * inv_gg,
        ],
        axis=1,
    )
    pd = (newton[:, 0] > 0) & (newton[:, 0] * newton[:, 2] > newton[:, 1] ** 2)
    if not np.all(pd):
        gn = np.stack(
            [
                f2 * (gram[0] - p[0] * p[0] * inv_gg),
                f2 * (gram[1] - p[0] * p[1] * inv_gg),
                f2 * (gram[2] - p[1] * p[1] * inv_gg),
            ],
            axis=1,
        )
        newton = np.where(pd[:, None], newton, gn)
    b = np.stack([f * rr[0], f * rr[1]], axis=1)
    return _State(theta, f, sse, b, newton)


def _step(state: _State, lam: np.ndarray | float, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Solve ``(H + lam diag(H)) step = b`` per voxel (2 x 2, explicit), projected on bounds.

    A parameter on a bound whose step points outward is held, and the other one takes its
    1-D step.
    """
    h11, h12, h22 = state.hess.T
    tiny = 1e-12 * (np.abs(h11) + np.abs(h22)) + 1e-300
    a11 = h11 + lam * (h11 + tiny) + tiny
    a22 = h22 + lam * (h22 + tiny) + tiny
    det = a11 * a22 - h12 * h12
    b1, b2 = state.b.T
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        step = np.stack([(a22 * b1 - h12 * b2) / det, (a11 * b2 - h12 * b1) / det], axis=1)
        alone = np.stack([b1 / a11, b2 / a22], axis=1)
    theta = state.theta
    blocked = ((theta <= lo) & (step < 0)) | ((theta >= hi) & (step > 0))
    if np.any(blocked):
        one = blocked[:, ::-1] & ~blocked  # the free parameter where the other is blocked
        step = np.where(blocked, 0.0, np.where(one, alone, step))
    return np.where(np.isfinite(step), step, 0.0)


def solve(
    table: ShiftTable,
    y: np.ndarray,
    theta: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    max_iter: int,
    rtol: float,
    nonnegative: bool = True,
    evaluate_at=evaluate,
) -> dict[str, np.ndarray]:
    """Refine ``theta`` (n, 2) for curves ``y`` (n, t) within ``[lo, hi]``.

    ``evaluate_at(table, y, theta, nonnegative)`` gives the model's profiled fit and its
    Newton system (`evaluate`, the box, by default; `_residues` passes its ramps').
    Returns per-voxel ``cbf``, ``mtt``, ``delay``, ``sse`` (float64) and ``iterations``.
    """
    n = y.shape[0]
    state = evaluate_at(table, y, np.clip(theta, lo, hi), nonnegative)
    out = _State(state.theta.copy(), state.f.copy(), state.sse.copy(), state.b, state.hess)
    iterations = np.zeros(n, dtype=np.int16)
    active = np.flatnonzero(state.f != 0)
    state = state.take(active)
    ya = y[active]
    alpha = np.ones(active.size)
    for it in range(max_iter + 1):
        step = _step(state, 0.0, lo, hi)
        cap = np.stack(
            [np.full(ya.shape[0], STEP_CAP[0]), np.maximum(STEP_CAP[1], 0.5 * state.theta[:, 1])],
            axis=1,
        )
        step /= np.maximum(np.max(np.abs(step) / cap, axis=1), 1.0)[:, None]
        slope = np.einsum("ij,ij->i", step, state.b)  # -1/2 d SSE / d alpha at 0
        done = (0.5 * slope <= rtol * state.sse) | (alpha < ALPHA_STOP) | (state.f == 0)
        if np.any(done):
            idx = active[done]
            out.theta[idx], out.f[idx], out.sse[idx] = (
                state.theta[done],
                state.f[done],
                state.sse[done],
            )
            keep = ~done
            active, ya, alpha = active[keep], ya[keep], alpha[keep]
            step, slope = step[keep], slope[keep]
            state = state.take(keep)
        if active.size == 0 or it == max_iter:
            break
        trial = evaluate_at(
            table, ya, np.clip(state.theta + alpha[:, None] * step, lo, hi), nonnegative
        )
        better = trial.sse < state.sse
        # Backtrack by the minimum of the parabola through SSE(0), its slope and SSE(alpha).
        rise = trial.sse - state.sse + 2 * alpha * slope
        with np.errstate(divide="ignore", invalid="ignore"):
            shrink = np.clip(alpha * slope / np.where(rise > 0, rise, np.inf), 0.1, 0.5)
        state.put(better, trial)
        alpha = np.where(better, np.minimum(1.0, 2.0 * alpha), alpha * shrink)
        iterations[active] += 1
    out.theta[active], out.f[active], out.sse[active] = state.theta, state.f, state.sse
    return {
        "cbf": out.f,
        "mtt": out.theta[:, 1],
        "delay": out.theta[:, 0],
        "sse": out.sse,
        "iterations": iterations,
    }
