"""Start points of the box fit from a grid of (delay, MTT) (private).

Given (delay, MTT) the box model is linear in CBF, so the best CBF and the SSE of every
voxel at every grid point follow from one matrix product with the grid's curves
normalised to unit norm: ``corr = y @ basis``, SSE ``= |y|^2 - corr^2`` (for
``corr > 0``). The best grid point, refined by a parabola along each axis, is the first
start. Noisy curves often have two basins of nearly equal depth, whose order on the grid
need not be their order once refined: the best local maximum of ``corr`` away from the
first (looked for on every other node) is a second start, used where its grid SSE is
within ``gap`` (relative) of the first's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["StartGrid", "subspace"]

#: Energy of the grids' unit curves left outside the compressed subspace.
SUBSPACE_TOL = 1e-10


def subspace(grids: list[StartGrid], tol: float = SUBSPACE_TOL) -> np.ndarray:
    """Orthonormal columns (t, r) spanning every grid's unit curves but ``tol`` of their
    energy (SVD of the concatenated bases)."""
    basis = np.concatenate([g.basis.astype(np.float64) for g in grids], axis=1)
    u, s, _ = np.linalg.svd(basis, full_matrices=False)
    left = 1.0 - np.cumsum(s**2) / np.sum(s**2)
    r = int(np.searchsorted(-left, -tol)) + 1
    return u[:, : min(r, u.shape[1])]


class StartGrid:
    """Normalised box curves on a (delay, MTT) grid and the starts they give.

    Parameters
    ----------
    curves : callable
        ``curves(mtt, delay) -> (n, t)`` unit-height box curves for arrays (n,).
    delays : ndarray, shape (n_d,)
        Delays in s, increasing.
    log_mtts : ndarray, shape (n_m,)
        Natural logs of MTT in s, increasing.
    dtype : numpy dtype
    nonnegative : bool
        Only positive correlations (CBF >= 0) count.
    """

    def __init__(
        self, curves, delays: np.ndarray, log_mtts: np.ndarray, dtype: Any, nonnegative: bool
    ) -> None:
        self.delays, self.log_mtts = delays, log_mtts
        n_d, n_m = delays.size, log_mtts.size
        # Columns: the coarse nodes (even indices on both axes) first, then the others, so
        # the coarse correlations are one contiguous block.
        coarse = np.zeros((n_d, n_m), bool)
        coarse[::2, ::2] = True
        order = np.concatenate([np.flatnonzero(coarse.ravel()), np.flatnonzero(~coarse.ravel())])
        self.column = np.empty(n_d * n_m, np.intp)
        self.column[order] = np.arange(order.size)
        self.node = order  # column -> flat node index (i_d * n_m + i_m)
        self.coarse_shape = ((n_d + 1) // 2, (n_m + 1) // 2)
        d, lm = np.meshgrid(delays, log_mtts, indexing="ij")
        g = curves(np.exp(lm.ravel()[order]), d.ravel()[order])
        norm = np.linalg.norm(g, axis=1, keepdims=True)
        g = np.divide(g, norm, out=np.zeros_like(g), where=norm > 0)
        self.basis = np.ascontiguousarray(g.T, dtype=dtype)
        self.nonnegative = nonnegative

    def compress(self, u: np.ndarray) -> None:
        """Correlate in the subspace of ``u`` (t, r; orthonormal columns spanning the
        basis): ``corr = (y @ u) @ (u.T @ basis)``, one small product shared by every grid
        instead of a (t, nodes) product per grid. The grids' unit curves are smooth, so a
        few dozen components hold them to 1e-5 (`subspace`)."""
        self.weights = np.ascontiguousarray(u.T @ self.basis.astype(np.float64)).astype(
            self.basis.dtype
        )

    def starts(
        self, y: np.ndarray, gap: float, z: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """First starts (n, 2), second starts (n, 2) and the curves worth a second start.

        Starts are (delay, MTT) in s; ``z`` is ``y`` projected on the compressed subspace.
        """
        corr, rows, i_d, i_m, c0, first = self._best(y, z)
        n = y.shape[0]

        # Second start: the best 3 x 3 local maximum of the coarse block, away from the best.
        c_d, c_m = self.coarse_shape
        cube = corr[:, : c_d * c_m].reshape(n, c_d, c_m)
        rim = cube.copy()
        np.maximum(rim[:, 1:], cube[:, :-1], out=rim[:, 1:])
        np.maximum(rim[:, :-1], cube[:, 1:], out=rim[:, :-1])
        around = rim.copy()
        np.maximum(around[:, :, 1:], rim[:, :, :-1], out=around[:, :, 1:])
        np.maximum(around[:, :, :-1], rim[:, :, 1:], out=around[:, :, :-1])
        local = np.where(cube >= around, cube, -np.inf)
        for k in (-1, 0, 1):
            dd = np.clip((i_d + 1) // 2 + k, 0, c_d - 1)
            for j in (-1, 0, 1):
                local[rows, dd, np.clip((i_m + 1) // 2 + j, 0, c_m - 1)] = -np.inf
        flat = local.reshape(n, -1)
        k = np.argmax(flat, axis=1)
        c1 = flat[rows, k].astype(np.float64)
        a_d, a_m = np.divmod(k, c_m)
        second = np.stack([self.delays[2 * a_d], np.exp(self.log_mtts[2 * a_m])], axis=1)
        yy = np.einsum("ij,ij->i", y, y).astype(np.float64)
        sse0 = np.maximum(yy - c0 * c0, 0.0)
        near = np.flatnonzero(np.isfinite(c1) & (c1 > 0) & (c0 * c0 - c1 * c1 <= gap * sse0))
        return first, second, near

    def best(self, y: np.ndarray, z: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The best grid point of each curve, parabola-refined (n, 2: delay, MTT in s), and
        its SSE on the grid (n,)."""
        *_, c0, first = self._best(y, z)
        yy = np.einsum("ij,ij->i", y, y).astype(np.float64)
        return first, np.maximum(yy - c0 * c0, 0.0)

    def _best(self, y: np.ndarray, z: np.ndarray | None = None):
        """Correlations (n, nodes), rows, best node's indices and correlation, first start."""
        if z is None:
            corr = y @ self.basis.astype(y.dtype, copy=False)
        else:
            corr = z @ self.weights.astype(z.dtype, copy=False)
        if not self.nonnegative:
            np.abs(corr, out=corr)
        n = y.shape[0]
        n_d, n_m = self.delays.size, self.log_mtts.size
        rows = np.arange(n)
        best = self.node[np.argmax(corr, axis=1)]
        i_d, i_m = np.divmod(best, n_m)
        c0 = self._at(corr, rows, i_d, i_m)

        def vertex(i: np.ndarray, n_axis: int, step_d: int, step_m: int) -> np.ndarray:
            inner = (i > 0) & (i < n_axis - 1)
            cm = self._at(
                corr, rows, np.where(inner, i_d - step_d, i_d), np.where(inner, i_m - step_m, i_m)
            )
            cp = self._at(
                corr, rows, np.where(inner, i_d + step_d, i_d), np.where(inner, i_m + step_m, i_m)
            )
            den = cm - 2 * c0 + cp
            with np.errstate(divide="ignore", invalid="ignore"):
                off = np.where(inner & (den < 0), 0.5 * (cm - cp) / den, 0.0)
            return i + np.clip(off, -0.5, 0.5)

        d = np.interp(vertex(i_d, n_d, 1, 0), np.arange(n_d), self.delays)
        lm = np.interp(vertex(i_m, n_m, 0, 1), np.arange(n_m), self.log_mtts)
        first = np.stack([d, np.exp(lm)], axis=1)
        return corr, rows, i_d, i_m, c0, first

    def _at(
        self, corr: np.ndarray, rows: np.ndarray, i_d: np.ndarray, i_m: np.ndarray
    ) -> np.ndarray:
        return corr[rows, self.column[i_d * self.log_mtts.size + i_m]].astype(np.float64)
