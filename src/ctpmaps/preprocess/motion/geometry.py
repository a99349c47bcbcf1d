"""Rigid geometry of motion correction: transforms, resampling and block averages.

Convention (all of `ctpmaps.preprocess.motion`): positions are mm along the array axes from
the centre of voxel (0, 0, 0). A frame's transform maps a point ``x`` of the reference to
where that anatomy is in the frame: ``T(x) = R (x - center) + center + t`` with
``R = Rz(rz) Ry(ry) Rx(rx)``; the registered frame is ``frame(T(x))``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

__all__ = [
    "rigid_matrix",
    "resample_rigid",
    "params_of_matrix",
    "block_factor",
    "block_mean",
    "resample_frames",
]


def rigid_matrix(rotations_deg, translations_mm, center_mm) -> np.ndarray:
    """Homogeneous (4, 4) matrix of ``x -> Rz Ry Rx (x - center) + center + t`` in mm.

    Parameters
    ----------
    rotations_deg : sequence of 3 floats
        Rotations about the x, y and z axes through ``center_mm``, degrees.
    translations_mm : sequence of 3 floats
        Translation along the array axes, mm.
    center_mm : sequence of 3 floats
        Centre of rotation, mm from voxel (0, 0, 0).

    Examples
    --------
    >>> m = rigid_matrix((0, 0, 90), (1, 0, 0), (0, 0, 0))
    >>> np.round(m @ [1, 0, 0, 1], 6).tolist()
    [1.0, 1.0, 0.0, 1.0]
    """
    rot = Rotation.from_euler("xyz", np.asarray(rotations_deg, float), degrees=True).as_matrix()
    center = np.asarray(center_mm, float)
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = center - rot @ center + np.asarray(translations_mm, float)
    return m


def params_of_matrix(matrix: np.ndarray, center_mm) -> np.ndarray:
    """Inverse of `rigid_matrix`: ``(rx, ry, rz deg, tx, ty, tz mm)`` of a rigid (4, 4)."""
    rot = np.asarray(matrix, float)[:3, :3]
    center = np.asarray(center_mm, float)
    angles = Rotation.from_matrix(rot).as_euler("xyz", degrees=True)
    return np.r_[angles, matrix[:3, 3] - (center - rot @ center)]


def resample_rigid(
    volume: np.ndarray,
    spacing,
    matrix: np.ndarray,
    *,
    fill_hu: float | None = None,
    output: np.ndarray | None = None,
) -> np.ndarray:
    """Return ``volume(matrix @ x)`` on the voxel grid (mm from voxel 0), linear interpolation.

    Parameters
    ----------
    volume : ndarray, shape (x, y, z)
        Image to resample.
    spacing : sequence of 3 floats
        Voxel size in mm.
    matrix : ndarray, shape (4, 4)
        Maps output positions (mm) to input positions (mm).
    fill_hu : float, optional
        Value outside the input; default the nearest edge value.
    output : ndarray, shape (x, y, z), optional
        Where to write (e.g. a frame of a 4D array).

    Returns
    -------
    ndarray, shape (x, y, z), float32
    """
    s = np.asarray(spacing, float)
    lin = matrix[:3, :3] * s[None, :] / s[:, None]  # index -> index
    offset = matrix[:3, 3] / s
    mode, cval = ("nearest", 0.0) if fill_hu is None else ("constant", float(fill_hu))
    src = np.ascontiguousarray(volume, dtype=np.float32)
    return ndimage.affine_transform(
        src,
        lin,
        offset,
        output=output if output is not None else np.float32,
        order=1,
        mode=mode,
        cval=cval,
    )


def resample_frames(frames, out, todo, matrices, spacing, fill_hu, n_threads) -> None:
    """``out[..., k] = frames[..., k](matrices[k] x)`` for the frames in ``todo``, threaded
    (scipy.ndimage releases the GIL)."""

    def one(k: int) -> None:
        out[..., k] = resample_rigid(frames[..., k], spacing, matrices[k], fill_hu=fill_hu)

    if n_threads == 1 or len(todo) < 2:
        for k in todo:
            one(k)
    else:
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            list(pool.map(one, todo))


def block_factor(shape, spacing, voxel_mm: float) -> np.ndarray:
    """Block size (voxels per axis) giving voxels of about ``voxel_mm``; at least 1, and no
    axis shrunk below 4 blocks."""
    shape, spacing = np.asarray(shape), np.asarray(spacing, float)
    return np.clip(np.round(voxel_mm / spacing), 1, np.maximum(1, shape // 4)).astype(int)


def block_mean(frames: np.ndarray, factor, frame_index=None) -> np.ndarray:
    """Averages of ``factor``-sized blocks of the frames, time first.

    Parameters
    ----------
    frames : ndarray, shape (x, y, z, t)
    factor : sequence of 3 ints
        Block size along x, y and z (voxels); the remainder at the far edge is dropped.
    frame_index : sequence of int, optional
        Frames to keep (default all).

    Returns
    -------
    ndarray, shape (n, x // fx, y // fy, z // fz), float32
        One block-averaged volume per frame, each contiguous.

    Notes
    -----
    One pass over the whole array, a slab of x at a time (time is its last, fastest
    axis): taking the frames one by one would read every cache line of the study once
    per frame.
    """
    f = np.asarray(factor, int)
    n = np.array(frames.shape[:3]) // f
    index = np.arange(frames.shape[3]) if frame_index is None else np.asarray(frame_index)
    blocks = np.empty((len(index), *n), np.float32)
    for i in range(n[0]):
        v = frames[i * f[0] : (i + 1) * f[0], : n[1] * f[1], : n[2] * f[2]]
        if frame_index is not None:
            v = v[..., index]
        v = v.reshape(f[0], n[1], f[1], n[2], f[2], len(index))
        blocks[:, i] = np.moveaxis(v.mean(axis=(0, 2, 4), dtype=np.float32), -1, 0)
    return blocks
