"""Rigid head motion of the phantom: per-frame transforms and the moved frames."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .anatomy import euler_matrix

__all__ = ["rigid_motion", "apply_motion"]


def rigid_motion(rng: np.random.Generator, n: int, mm: float, deg: float) -> np.ndarray:
    """Per-frame (tx, ty, tz mm, rx, ry, rz deg), shape (n, 6): still, then one to three
    smooth head movements, clipped to ``mm`` and ``deg`` (all zero when both are 0)."""
    motion = np.zeros((n, 6))
    if mm <= 0 and deg <= 0:
        return motion
    for _ in range(int(rng.integers(1, 4))):
        start = int(rng.integers(1, n))
        width = max(1, int(rng.integers(1, max(2, n // 8))))
        ramp = np.clip((np.arange(n) - start) / width, 0.0, 1.0)
        step = np.r_[rng.uniform(-1, 1, 3) * mm, rng.uniform(-1, 1, 3) * deg]
        motion += ramp[:, None] * step[None, :] / 2
    lim = np.r_[[mm] * 3, [deg] * 3]
    return np.clip(motion, -lim, lim)


def apply_motion(frames: np.ndarray, affine: np.ndarray, motion: np.ndarray) -> None:
    """Resample moved frames in place: frame k shows the head moved by ``motion[k]``
    (rotation about the slab centre, then translation, in scanner mm), linearly
    interpolated. What moves in from beyond the slab repeats the edge slice (a thin slab
    has no neighbours to take it from; in-plane the edge is air)."""
    shape = np.array(frames.shape[:3])
    centre = affine[:3, :3] @ ((shape - 1) / 2) + affine[:3, 3]
    for k in np.nonzero(np.any(motion != 0, axis=1))[0]:
        rot = euler_matrix(*motion[k, 3:])
        # output point p_out came from p_in = R^-1 (p_out - c - t) + c
        m = np.eye(4)
        m[:3, :3] = rot.T
        m[:3, 3] = centre - rot.T @ (centre + motion[k, :3])
        vox = np.linalg.inv(affine) @ m @ affine
        frames[..., k] = ndimage.affine_transform(
            frames[..., k],
            vox[:3, :3],
            vox[:3, 3],
            order=1,
            mode="nearest",
        )
