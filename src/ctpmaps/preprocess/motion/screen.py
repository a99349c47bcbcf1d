"""Cheap motion screening: which frames need registering at all.

Each frame is block-averaged to about 2 mm voxels and smoothed (sigma 2 mm), then a few
Gauss-Newton steps of a rigid least-squares fit (Lucas-Kanade, gradient of the anchor
image) estimate its motion against an anchor frame. The frame's motion is the largest
displacement that estimate gives over the head's bounding box (voxels above -500 HU).
The fit stops as soon as a frame is clearly under or over the threshold, so most frames
cost one matrix product; no itk, no torch.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from .geometry import block_factor, block_mean

#: Voxel size (mm) of the screening volumes, and their smoothing sigma (mm).
SCREEN_MM = 2.0
#: Largest number of Gauss-Newton steps.
_STEPS = 4


@dataclass
class _Anchor:
    """What a fit against one anchor frame needs, computed once."""

    image: np.ndarray  # (sx, sy, sz) smoothed low-resolution anchor
    jac: np.ndarray  # (n, 6) d(image)/d(translation mm, rotation vector rad)
    normal: np.ndarray  # (6, 6) jac.T @ jac, regularised
    corners: np.ndarray  # (8, 3) mm, bounding box of the head


class Screen:
    """Low-resolution copies of all frames and rigid fits between them.

    Parameters
    ----------
    frames : ndarray, shape (x, y, z, t)
    spacing : tuple of 3 floats, mm
    center : ndarray, shape (3,), mm
        Centre of rotation (mm from voxel 0).
    threads : int
    """

    def __init__(self, frames: np.ndarray, spacing, center: np.ndarray, threads: int) -> None:
        spacing = np.asarray(spacing, float)
        self.factor = block_factor(frames.shape[:3], spacing, SCREEN_MM)
        self.step = self.factor * spacing
        self.origin = (self.factor - 1) / 2 * spacing  # mm of the first block's centre
        self.center = np.asarray(center, float)
        self.threads = threads
        blocks = block_mean(frames, self.factor)
        sigma = SCREEN_MM / self.step
        self.small = self._map(
            lambda k: ndimage.gaussian_filter(blocks[k], sigma, mode="nearest"),
            range(frames.shape[3]),
        )
        n = np.array(blocks.shape[1:])
        grid = [self.origin[a] + self.step[a] * np.arange(n[a]) for a in range(3)]
        self.pos = np.stack(np.meshgrid(*grid, indexing="ij"), axis=-1).reshape(-1, 3) - self.center

    def _map(self, fn, items) -> list:
        items = list(items)
        if self.threads == 1 or len(items) < 2:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            return list(pool.map(fn, items))

    def anchor(self, k: int) -> _Anchor:
        image = self.small[k]
        grad = np.stack(
            [
                np.gradient(image, self.step[a], axis=a)
                if image.shape[a] > 1
                else np.zeros_like(image)
                for a in range(3)
            ],
            axis=-1,
        ).reshape(-1, 3)  # HU / mm
        jac = np.concatenate([grad, np.cross(self.pos, grad)], axis=1)
        normal = jac.T @ jac
        # Damping per kind of parameter (translations and rotations have different units):
        # a direction the image does not constrain (e.g. z for a z-invariant object) gets
        # no motion from noise.
        diag = np.diag(normal)
        damping = np.r_[[diag[:3].max()] * 3, [diag[3:].max()] * 3] * 1e-3 + 1e-12
        normal += np.diag(damping)
        head = image.reshape(-1) > -500.0
        box = self.pos[head] if head.any() else self.pos
        lo_hi = list(zip(box.min(axis=0), box.max(axis=0), strict=True))
        corners = np.array(np.meshgrid(*lo_hi, indexing="ij")).reshape(3, -1).T + self.center
        return _Anchor(image, jac, normal, corners)

    def displacement(self, k: int, anchor: _Anchor, threshold_mm: float) -> float:
        """Largest displacement (mm) over the head of frame ``k`` against ``anchor``.

        Gauss-Newton steps stop once the answer is clear against ``threshold_mm``: under
        half of it or over twice it (the first step needs no resampling, so a still frame
        costs one product), or when the steps become negligible.
        """
        moving = self.small[k]
        p = np.zeros(6)  # translation (mm), rotation vector (rad)
        warped = moving
        for step in range(_STEPS):
            if step:
                warped = self._warp(moving, p)
            dp = np.linalg.solve(anchor.normal, -anchor.jac.T @ (warped - anchor.image).reshape(-1))
            p += dp
            disp = self._largest(p, anchor.corners)
            if not 0.5 * threshold_mm <= disp <= 2.0 * threshold_mm:
                break
            if np.abs(dp[:3]).max() < 1e-3 and np.abs(dp[3:]).max() < 1e-5:
                break
        return disp

    def _largest(self, p: np.ndarray, corners: np.ndarray) -> float:
        m = _matrix(p, self.center)
        return float(np.linalg.norm(corners @ m[:3, :3].T + m[:3, 3] - corners, axis=1).max())

    def displacements(self, frames: list[int], anchor: _Anchor, threshold_mm: float) -> np.ndarray:
        return np.array(self._map(lambda k: self.displacement(k, anchor, threshold_mm), frames))

    def _warp(self, image: np.ndarray, p: np.ndarray) -> np.ndarray:
        """``image(T_p(x))`` on the low-resolution grid, linear, edge values outside."""
        shift = np.eye(4)
        shift[:3, 3] = self.origin
        m = np.linalg.inv(shift) @ _matrix(p, self.center) @ shift  # grid mm -> grid mm
        lin = m[:3, :3] * self.step[None, :] / self.step[:, None]
        return ndimage.affine_transform(image, lin, m[:3, 3] / self.step, order=1, mode="nearest")


def _matrix(p: np.ndarray, center: np.ndarray) -> np.ndarray:
    rot = Rotation.from_rotvec(p[3:]).as_matrix()
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = center - rot @ center + p[:3]
    return m


def plan(
    screen: Screen, reference: int, threshold_mm: float, *, share: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Decide, frame by frame, how each frame gets its transform.

    With ``share=False`` every frame that moved against the reference is registered on its
    own (no anchors: for a solver whose cost does not grow much with the frame count).

    Returns
    -------
    screen_mm : ndarray (t,)
        Displacement of each frame against the reference (mm; accurate near the
        threshold, only known to be well under or over it elsewhere).
    source : ndarray (t,) int
        ``-1``: identity (the reference, or still against it); ``k``: frame ``k``'s own
        registration when ``source[k] == k``; otherwise the frame whose
        transform it shares, because it did not move (by more than the threshold) since
        that frame, the last one registered before it (its anchor). Comparing with the
        anchor, not the previous frame, keeps slow drifts from accumulating.
    """
    n_t = len(screen.small)
    ref = screen.anchor(reference)
    others = [k for k in range(n_t) if k != reference]
    screen_mm = np.zeros(n_t)
    screen_mm[others] = screen.displacements(others, ref, threshold_mm)
    source = np.full(n_t, -1)
    anchor_k, anchor = -1, None
    for k in others:
        if screen_mm[k] <= threshold_mm:
            continue
        if not share:
            source[k] = k
            continue
        if anchor is not None and screen.displacement(k, anchor, threshold_mm) <= threshold_mm:
            source[k] = anchor_k
        else:
            anchor_k, anchor = k, screen.anchor(k)
            source[k] = k
    return screen_mm, source
