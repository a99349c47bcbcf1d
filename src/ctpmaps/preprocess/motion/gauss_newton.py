"""All moved frames registered at once: batched rigid Gauss-Newton on SSD, in torch.

Why hand-written: elastix registers one frame at a time (about 2 s a frame at 512 x 512 x 8
on one core, after 12 s loading itk), and no library we use fits a batch of rigid
transforms with per-frame robust weights on the CPU and, when present, the GPU. Here every
frame to register is one row of a batch; one iteration samples all of them with
`torch.nn.functional.grid_sample` (trilinear) and solves one 6 x 6 system per frame.

The fit, per resolution (4, 2, then 1 mm in-plane; block averages smoothed with a Gaussian
of the level's voxel size):

- Sample points: random positions (not voxel centres) inside the reference's head (above
  -500 HU) and 5 mm of air around it, away from the ``edge_slices`` outermost slices. The
  margin keeps the whole scalp edge, the strongest one, in the metric: cut at -500 HU it
  made the median residual displacement on the benchmark's phantom larger at every grid
  size tried (64, 128 and 512 pixels). Reading the reference between
  voxels too blurs both sides alike: with both on voxel centres, the interpolated moving
  frame alone is blurred, which biases the fit towards whole-slice shifts (5 mm slices).
- Residual ``frame(T(x)) - reference(x)``; its gradient is the exact derivative of the
  trilinear interpolant (autograd through ``grid_sample``), so the iteration stops at the
  minimum of the interpolated SSD (forward-additive Gauss-Newton, left-composed update
  ``T <- exp(dp) T``, rotation vector about the volume centre).
- Weights: Tukey's biweight of each frame's residuals (scale 1.4826 x median absolute
  residual, c = 4.685), so that enhancing vessels and parenchyma count less; and the
  position the point lands at in the frame: full weight only at least one slice inside the
  ``edge_slices`` margin, tapering to zero at its border, because through-plane motion
  brings in anatomy the reference does not have there (and the edge slice repeats itself
  beyond the slab).

Each weight was kept because it lowered the residual displacement of the brain on the
fully moving 512 x 512 x 8 x 89 phantom of ``benchmarks/bench_motion.py`` (the Tukey
weights mostly the median, the edge taper mostly the 95th percentile); `edge_slices=0`
turns the taper off.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np
from scipy import ndimage

from .geometry import block_factor, block_mean

__all__ = ["LEVELS", "fit_frames"]

log = logging.getLogger(__name__)

#: Resolutions, coarse to fine: (in-plane voxel mm, sample points per frame, most iterations).
LEVELS = ((4.0, 8000, 12), (2.0, 16000, 8), (1.0, 32000, 6))
#: Head: reference voxels above this (HU), and a margin of air around it (mm, in-plane).
HEAD_HU = -500.0
MARGIN_MM = 5.0
#: Tukey's biweight constant (95 % efficiency for Gaussian residuals).
TUKEY_C = 4.685
#: Convergence: every frame's last step under this displacement over the head (mm).
TOL_MM = 2e-3
#: Frames fitted together by one thread.
BATCH = 16


def fit_frames(
    frames: np.ndarray,
    spacing,
    reference: int,
    todo: list[int],
    center: np.ndarray,
    *,
    edge_slices: int,
    threads: int,
    device: str,
    seed: int,
) -> np.ndarray:
    """Rigid transforms of the frames in ``todo`` against ``reference``.

    Parameters
    ----------
    frames : ndarray, shape (x, y, z, t)
        HU.
    spacing : tuple of 3 floats
        Voxel size, mm.
    reference : int
    todo : list of int
        Frames to register.
    center : ndarray, shape (3,)
        Centre of rotation, mm from voxel 0.
    edge_slices : int
        Slices at each end of z kept out of the metric (module docstring).
    threads : int
        CPU threads; on the CPU each fits its share of the frames.
    device : str
        Torch device (``"cpu"``, ``"cuda"``, ...).
    seed : int
        Sample positions.

    Returns
    -------
    ndarray, shape (len(todo), 4, 4)
        Transforms in mm (`ctpmaps.preprocess.motion.geometry` convention).
    """
    import torch

    spacing = np.asarray(spacing, float)
    shape = np.array(frames.shape[:3])
    grids = [_Grid(shape, spacing, mm, center, device) for mm, _, _ in LEVELS]
    pyramid = _pyramid(frames, [reference, *todo], [g.factor for g in grids])
    # On the CPU each thread fits its own share of the frames with single-threaded torch
    # operations: no barrier between threads at every small operation, which on a busy
    # machine made two-threaded operations up to ten times slower than one thread.
    # At most BATCH frames at a time bounds the temporaries (about 4 MB a frame at 1 mm).
    cpu = torch.device(device).type == "cpu"
    workers = threads if cpu else 1
    n_chunks = max(workers, -(-len(todo) // BATCH))
    chunks = [c for c in np.array_split(np.arange(len(todo)), n_chunks) if len(c)]
    mats = torch.eye(4, dtype=torch.float64, device=device).repeat(len(todo), 1, 1)
    with _torch_threads(torch, 1 if cpu else threads), ThreadPoolExecutor(workers) as pool:
        for level, (grid, (_, n_points, iterations)) in enumerate(zip(grids, LEVELS, strict=True)):
            volumes = grid.volumes(pyramid[level], threads)
            pyramid[level] = None
            rng = np.random.default_rng([seed, level])
            points, ref_values = grid.points(volumes[0], edge_slices, n_points, rng)
            fit = partial(_fit_part, grid, volumes[1:], points, ref_values, mats, iterations)
            steps = max(pool.map(fit, chunks, [edge_slices] * len(chunks)))
            log.debug("level %.2g mm: %d iterations", grid.voxel_mm, steps)
            del volumes
    to_abs = np.eye(4)
    to_abs[:3, 3] = center
    return to_abs @ mats.cpu().numpy() @ np.linalg.inv(to_abs)


def _pyramid(frames: np.ndarray, index: list[int], factors: list[np.ndarray]) -> list:
    """Block averages (len(index), ...) of the frames at each level's factors; a level whose
    factors are multiples of the next finer level's is averaged from it (one pass over the
    study; on coarse grids several levels share the factors and differ in smoothing only)."""
    out: list = [None] * len(factors)
    for i in reversed(range(len(factors))):
        finer = factors[i + 1] if i + 1 < len(factors) else None
        if finer is not None and np.all(factors[i] % finer == 0):
            src = np.moveaxis(out[i + 1], 0, -1)  # (x, y, z, n) view of the finer blocks
            out[i] = block_mean(src, factors[i] // finer)
        else:
            out[i] = block_mean(frames, factors[i], index)
    return out


@contextlib.contextmanager
def _torch_threads(torch: Any, n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Grid:
    """One resolution: block size, positions and the mm -> grid_sample coordinate map."""

    def __init__(self, shape, spacing, voxel_mm, center, device) -> None:
        import torch

        self.torch = torch
        self.device = device
        self.voxel_mm = voxel_mm
        self.factor = block_factor(shape, spacing, voxel_mm)
        self.n = shape // self.factor
        self.step = self.factor * spacing
        self.origin = (self.factor - 1) / 2 * spacing  # mm of the first block's centre
        self.center = np.asarray(center, float)
        # grid_sample's coordinate (align_corners) of a point p mm from the centre:
        # ((p + center - origin) / step) / (n - 1) * 2 - 1 = p * scale + offset
        scale = 2.0 / ((self.n - 1) * self.step)
        offset = (self.center - self.origin) * scale - 1.0
        self.scale = torch.tensor(scale, dtype=torch.float32, device=device)
        self.offset = torch.tensor(offset, dtype=torch.float32, device=device)

    def volumes(self, blocks: np.ndarray, threads: int):
        """Block averages (n, nx, ny, nz) smoothed in-plane (sigma: the level's voxel size;
        not along z, whose thick slices hold the through-plane information) on the device."""
        sigma = self.voxel_mm / self.step[:2]
        out = np.empty_like(blocks)

        def smooth(k: int) -> None:
            ndimage.gaussian_filter(blocks[k], (*sigma, 0), mode="nearest", output=out[k])

        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(smooth, range(len(blocks))))
        return self.torch.from_numpy(out).to(self.device)

    def points(self, ref, edge: int, n_points: int, rng: np.random.Generator):
        """Random sample positions in the head and its margin: (4, n) homogeneous mm from the
        centre, and the reference there (n,)."""
        torch = self.torch
        head = ref.cpu().numpy() > HEAD_HU
        grow = max(1, round(MARGIN_MM / float(self.step[0])))
        head = ndimage.binary_dilation(head, np.ones((3, 3, 1), bool), iterations=grow)
        head[..., : min(edge, self.n[2])] = False
        head[..., self.n[2] - edge :] = False
        idx = np.argwhere(head) if head.any() else np.argwhere(np.ones_like(head))
        idx = idx[rng.choice(len(idx), min(n_points, len(idx)), replace=False)].astype(float)
        lo = np.array([0.0, 0.0, edge if head.any() else 0.0])
        idx = np.clip(idx + rng.uniform(-0.5, 0.5, idx.shape), lo, self.n - 1 - lo)
        pos = np.c_[self.origin + idx * self.step - self.center, np.ones(len(idx))].T
        points = torch.tensor(pos, dtype=torch.float32, device=self.device)
        identity = torch.eye(4, dtype=torch.float32, device=self.device)[None]
        return points, self.sample(ref[None], identity, points)[0]

    def sample(self, volumes, mats, points, *, gradient: bool = False):
        """Trilinear values (b, n) of volumes (b, nx, ny, nz) at ``mats @ points`` (mats
        (b, 4, 4) float32, points (4, n)); with ``gradient``, also d(value)/d(position)
        (b, 3, n) in HU/mm."""
        torch = self.torch
        # grid_sample's coordinates, (z, y, x) order: one affine map of the points
        to_grid = mats[:, :3] * self.scale[:, None]
        to_grid[:, :, 3] += self.offset
        coords = (to_grid.flip(1) @ points).transpose(1, 2)[:, None, None]  # (b, 1, 1, n, 3)
        coords.requires_grad_(gradient)
        with torch.set_grad_enabled(gradient):
            values = torch.nn.functional.grid_sample(
                volumes[:, None], coords, mode="bilinear", padding_mode="border", align_corners=True
            )
        if not gradient:
            return values.view(len(mats), -1)
        (grad,) = torch.autograd.grad(values, coords, torch.ones_like(values))
        grad = grad.view(len(mats), -1, 3)
        grad = torch.stack([grad[..., 2 - a] * self.scale[a] for a in range(3)], dim=1)
        return values.detach().view(len(mats), -1), grad

    def slice_index(self, where):
        """Position along z in the level's slices (float) of positions (b, 3, n) mm from the
        centre."""
        return (where[:, 2] + float(self.center[2] - self.origin[2])) / float(self.step[2])


def _fit_part(grid, moving, points, ref_values, mats, iterations, frames, edge) -> int:
    """`_fit` on ``frames`` (consecutive rows of ``moving`` and ``mats``)."""
    part = slice(int(frames[0]), int(frames[-1]) + 1)
    return _fit(grid, moving[part], points, ref_values, mats[part], iterations, edge)


def _fit(grid: _Grid, moving, points, ref_values, mats, iterations: int, edge: int):
    """Gauss-Newton iterations on the frames still moving, updating ``mats`` (b, 4, 4) in
    place; returns the number of iterations run."""
    torch = grid.torch
    active = torch.arange(len(mats), device=mats.device)
    radius = float(points[:3].norm(dim=0).max())
    steps = 0
    while steps < iterations and len(active):
        steps += 1
        m = mats[active].float()
        volumes = moving if len(active) == len(mats) else moving[active]  # a copy: when needed
        values, grad = grid.sample(volumes, m, points, gradient=True)
        where = m[:, :3] @ points  # (b, 3, n) mm from the centre
        residual = values - ref_values
        weights = _tukey(residual) * _edge_taper(grid.slice_index(where), grid.n[2], edge)
        jac = torch.cat([grad, _cross(where, grad)], dim=1)  # (b, 6, n)
        wj = jac * weights[:, None]
        normal = (wj @ jac.transpose(1, 2)).double()
        rhs = (wj @ residual[..., None]).double()
        diag = torch.diagonal(normal, dim1=1, dim2=2)
        # damping per kind of parameter (mm and rad differ): no motion along a direction
        # the image does not constrain
        scale = torch.cat(
            [diag[:, :3].amax(1, True).expand(-1, 3), diag[:, 3:].amax(1, True).expand(-1, 3)], 1
        )
        damping = scale * 1e-6 + 1e-12
        dp = -torch.linalg.solve(normal + torch.diag_embed(damping), rhs)[..., 0]
        mats[active] = _exp(dp) @ mats[active]
        moved = dp[:, :3].norm(dim=1) + dp[:, 3:].norm(dim=1) * radius
        active = active[moved > TOL_MM]
    return steps


def _cross(a, b):
    """a x b along axis 1 of (b, 3, n) arrays."""
    import torch

    ax, ay, az = a.unbind(1)
    bx, by, bz = b.unbind(1)
    return torch.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], dim=1)


def _tukey(residual):
    # the points are in random order: the first few thousand give the scale
    scale = 1.4826 * residual[:, :4096].abs().median(dim=1, keepdim=True).values
    u = residual / (TUKEY_C * scale.clamp_min(1e-3))
    return (1 - u * u).clamp_min(0) ** 2


def _edge_taper(z, n_z: int, edge: int):
    """1 from ``2 * edge`` slices inside either end, falling to 0 at ``edge`` (no taper
    when ``edge`` is 0)."""
    if edge == 0:
        return 1.0
    return (z - edge).clamp(0, 1) * ((n_z - 1 - edge) - z).clamp(0, 1)


def _exp(dp):
    """(b, 4, 4) float64 rigid matrices of (translation mm, rotation vector rad) steps."""
    import torch

    t, w = dp[:, :3], dp[:, 3:]
    theta = w.norm(dim=1).clamp_min(1e-12)[:, None, None]
    k = torch.zeros(len(dp), 3, 3, dtype=dp.dtype, device=dp.device)
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -w[:, 2], w[:, 1], -w[:, 0]
    k = k - k.transpose(1, 2)
    rot = torch.eye(3, dtype=dp.dtype, device=dp.device) + (
        torch.sin(theta) / theta * k + (1 - torch.cos(theta)) / theta**2 * (k @ k)
    )
    out = torch.eye(4, dtype=dp.dtype, device=dp.device).repeat(len(dp), 1, 1)
    out[:, :3, :3] = rot
    out[:, :3, 3] = t
    return out
