"""The head's mid-sagittal plane from its symmetry, and hemisphere labels.

Heads lie tilted in the scanner (yaw of a few degrees in-plane, roll about the
antero-posterior axis, flexion), so the midline is neither the image's centre column nor
the same in every slice. The mid-sagittal plane meets each axial slice in a line; over the
slab these lines share one in-plane angle and their offset changes linearly along the
slice axis (roll). `fit_midline` finds the angle ``theta``, the offset ``c`` at the slab
centre and the offset slope ``t`` (mm per mm of slice position) that maximise the
correlation of the unenhanced image with its mirror image across the line, slice by slice:

1. a ~2 mm in-plane copy of the image, clipped to [-50, 120] HU (head outline, skull and
   brain, without the skull's 1,000 HU dominating) and lightly smoothed;
2. a first guess from the head's moments: centroid and the minor principal axis;
3. a grid search over angle and offset around it, then Nelder-Mead over (angle, offset,
   slope).

The plane is returned in world (RAS+) coordinates, its normal pointing to the patient's
right, so ``normal @ p - offset_mm > 0`` is the right hemisphere.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, optimize

from ..errors import InputError

__all__ = ["Midline", "fit_midline", "hemisphere_labels", "HEMISPHERES"]

log = logging.getLogger(__name__)

#: Hemisphere codes of `hemisphere_labels`.
HEMISPHERES = {0: "outside", 1: "right", 2: "left"}

_WORK_MM = 2.0  # in-plane pixel size of the working image
_CLIP_HU = (-50.0, 120.0)


@dataclass(frozen=True)
class Midline:
    """The mid-sagittal plane ``normal @ p = offset_mm`` (world RAS+ mm).

    Attributes
    ----------
    normal : ndarray, shape (3,)
        Unit normal in world coordinates, towards the patient's right (+x in RAS+).
    offset_mm : float
        Signed distance of the plane from the world origin along ``normal``, mm.
    angle_deg : float
        In-plane angle of the normal from the image's column axis (x), degrees.
    tilt_deg : float
        Angle between the plane and the slice axis (roll), degrees.
    score : float
        Correlation of the image with its mirror image across the plane (1 = symmetric).
    """

    normal: np.ndarray
    offset_mm: float
    angle_deg: float
    tilt_deg: float
    score: float

    def signed_distance(self, shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
        """Distance of every voxel centre from the plane in mm, (x, y, z) float32; > 0 right."""
        idx = np.indices(shape, dtype=np.float32).reshape(3, -1)
        world = np.asarray(affine, float)[:3, :3] @ idx + np.asarray(affine, float)[:3, 3:4]
        return (self.normal @ world - self.offset_mm).reshape(shape).astype(np.float32)

    def as_dict(self) -> dict[str, float | list[float]]:
        """JSON-ready record."""
        return {
            "normal": [round(float(v), 6) for v in self.normal],
            "offset_mm": round(self.offset_mm, 3),
            "angle_deg": round(self.angle_deg, 3),
            "tilt_deg": round(self.tilt_deg, 3),
            "score": round(self.score, 4),
        }


def hemisphere_labels(
    shape: tuple[int, int, int], affine: np.ndarray, midline: Midline, *, mask=None
) -> np.ndarray:
    """Hemisphere of every voxel, (x, y, z) uint8: 1 right, 2 left, 0 outside ``mask``.

    Voxels exactly on the plane count as right.
    """
    d = midline.signed_distance(tuple(shape), affine)
    labels = np.where(d >= 0, 1, 2).astype(np.uint8)
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != tuple(shape):
            raise InputError("mask", f"expected shape {tuple(shape)}, got {mask.shape}")
        labels[~mask] = 0
    return labels


def _working_image(image: np.ndarray, spacing) -> tuple[np.ndarray, tuple[float, float]]:
    """Down-sampled (~2 mm in-plane), clipped, smoothed copy and its pixel size."""
    fx = max(1, int(round(_WORK_MM / spacing[0])))
    fy = max(1, int(round(_WORK_MM / spacing[1])))
    nx, ny = (image.shape[0] // fx) * fx, (image.shape[1] // fy) * fy
    img = np.clip(image[:nx, :ny].astype(np.float32), *_CLIP_HU)
    img = img.reshape(nx // fx, fx, ny // fy, fy, -1).mean(axis=(1, 3))
    px = (spacing[0] * fx, spacing[1] * fy)
    img = ndimage.gaussian_filter(img, (1.0 / px[0], 1.0 / px[1], 0))
    # the block means sit at the centre of each block: shift back to voxel-index mm later
    return img, px


def _moments_guess(img: np.ndarray, px, z_mm: np.ndarray) -> tuple[float, float]:
    """Angle (rad) and offset (mm) of the line through the head's centroid along its long axis."""
    head = img > 0.5 * (_CLIP_HU[0] + 20.0)
    if head.sum() < 10:
        raise InputError("image", "no head found: fewer than 10 voxels above -15 HU")
    ii, jj, _ = np.nonzero(head)
    x, y = ii * px[0], jj * px[1]
    cx, cy = x.mean(), y.mean()
    cov = np.cov(np.stack([x - cx, y - cy]))
    evals, evecs = np.linalg.eigh(cov)
    minor = evecs[:, 0]  # the head is longer front-to-back: the midline's normal is the minor axis
    if abs(minor[0]) < abs(minor[1]):  # a round head: fall back to the column axis
        minor = np.array([1.0, 0.0])
    if minor[0] < 0:
        minor = -minor
    theta = float(np.arctan2(minor[1], minor[0]))
    return theta, float(np.cos(theta) * cx + np.sin(theta) * cy)


class _MirrorCost:
    """1 - correlation of the working image with its mirror across a line per slice."""

    def __init__(self, img: np.ndarray, px, z_mm: np.ndarray) -> None:
        self.img = img
        nx, ny, nz = img.shape
        gi, gj = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
        head = img > 0.5 * (_CLIP_HU[0] + 20.0)
        region = ndimage.binary_dilation(head, np.ones((3, 3, 1), bool), iterations=2)
        self.k, self.i, self.j = [], [], []
        for k in range(nz):
            sel = region[..., k]
            self.i.append(gi[sel].astype(np.float64))
            self.j.append(gj[sel].astype(np.float64))
            self.k.append(np.full(int(sel.sum()), k, np.float64))
        self.values = np.concatenate([img[..., k][region[..., k]] for k in range(nz)])
        self.ii, self.jj, self.kk = map(np.concatenate, (self.i, self.j, self.k))
        self.px = px
        self.zc = z_mm[self.kk.astype(int)] - z_mm.mean()

    def __call__(self, params) -> float:
        theta, c, t = params
        n = np.array([np.cos(theta), np.sin(theta)])
        x, y = self.ii * self.px[0], self.jj * self.px[1]
        dist = n[0] * x + n[1] * y - (c + t * self.zc)
        xm, ym = x - 2 * dist * n[0], y - 2 * dist * n[1]
        coords = np.stack([xm / self.px[0], ym / self.px[1], self.kk])
        mirrored = ndimage.map_coordinates(
            self.img, coords, order=1, mode="constant", cval=_CLIP_HU[0]
        )
        a = self.values - self.values.mean()
        b = mirrored - mirrored.mean()
        denom = np.sqrt((a * a).sum() * (b * b).sum())
        return 1.0 - float((a * b).sum() / denom) if denom > 0 else 1.0


def fit_midline(
    image: np.ndarray,
    spacing: tuple[float, float, float],
    affine: np.ndarray,
    *,
    max_angle_deg: float = 15.0,
    max_shift_mm: float = 15.0,
    max_tilt_deg: float = 10.0,
) -> Midline:
    """Fit the mid-sagittal plane of a head from the symmetry of an unenhanced CT image.

    Parameters
    ----------
    image : ndarray, shape (x, y, z)
        Unenhanced attenuation in HU (e.g. the mean of the pre-bolus frames), axial slices.
    spacing : tuple of 3 floats
        Voxel size in mm along (x, y, z).
    affine : ndarray, shape (4, 4)
        Voxel index to world (RAS+ mm); gives the result in world coordinates and tells
        right from left.
    max_angle_deg, max_shift_mm : float
        Search range around the first guess from the head's moments: in-plane angle
        (degrees) and offset (mm).
    max_tilt_deg : float
        Largest roll of the plane against the slice axis, degrees.

    Returns
    -------
    Midline
        The plane in world coordinates, normal towards the patient's right.

    Raises
    ------
    InputError
        Not a 3D image, bad spacing or affine, or no head in the image.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.full((64, 64, 2), -1000.0, np.float32)
    >>> ii, jj = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    >>> img[((ii - 34) / 20.0) ** 2 + ((jj - 32) / 28.0) ** 2 < 1] = 40.0
    >>> m = fit_midline(img, (1.0, 1.0, 5.0), np.diag([1.0, 1.0, 5.0, 1.0]))
    >>> round(abs(m.angle_deg)), round(m.offset_mm)
    (0, 34)
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise InputError("image", f"expected shape (x, y, z), got {image.shape}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise InputError("spacing", f"expected 3 positive voxel sizes in mm, got {spacing}")
    affine = np.asarray(affine, float)
    if affine.shape != (4, 4) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError("affine", "expected a non-singular (4, 4) voxel-to-world matrix")
    img, px = _working_image(image, spacing)
    z_mm = np.arange(image.shape[2]) * spacing[2]
    theta0, c0 = _moments_guess(img, px, z_mm)
    # grid search on a 2x coarser copy (4 mm), refined at 2 mm below
    nx, ny = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    coarse = img[:nx, :ny].reshape(nx // 2, 2, ny // 2, 2, -1).mean(axis=(1, 3))
    px_c = (2 * px[0], 2 * px[1])
    cost_c = _MirrorCost(coarse, px_c, z_mm)
    shift_c = np.cos(theta0) * px[0] / 2 + np.sin(theta0) * px[1] / 2  # block-centre offset
    best = (np.inf, theta0, c0)
    step_deg, step_mm = 2.0, 2.0
    for dth in np.arange(-max_angle_deg, max_angle_deg + 1e-9, step_deg):
        th = theta0 + np.deg2rad(dth)
        for dc in np.arange(-max_shift_mm, max_shift_mm + 1e-9, step_mm):
            value = cost_c((th, c0 + dc - shift_c, 0.0))
            if value < best[0]:
                best = (value, th, c0 + dc)
    cost = _MirrorCost(img, px, z_mm)
    t_max = np.tan(np.deg2rad(max_tilt_deg)) if image.shape[2] > 1 else 0.0
    res = optimize.minimize(
        lambda p: cost((p[0], p[1], np.clip(p[2], -t_max, t_max))),
        x0=[best[1], best[2], 0.0],
        method="Nelder-Mead",
        options={
            "initial_simplex": [
                [best[1], best[2], 0.0],
                [best[1] + np.deg2rad(step_deg), best[2], 0.0],
                [best[1], best[2] + step_mm, 0.0],
                [best[1], best[2], 0.3 * t_max if t_max else 0.0],
            ],
            "xatol": 1e-3,
            "fatol": 1e-6,
            "maxiter": 400,
        },
    )
    theta, c, t = float(res.x[0]), float(res.x[1]), float(np.clip(res.x[2], -t_max, t_max))
    # Block means sit half a block beyond voxel centres: back to voxel-index mm.
    fx, fy = px[0] / spacing[0], px[1] / spacing[1]
    c += np.cos(theta) * (fx - 1) / 2 * spacing[0] + np.sin(theta) * (fy - 1) / 2 * spacing[1]
    midline = _to_world(theta, c, t, z_mm.mean(), spacing, affine, 1.0 - float(res.fun))
    log.info(
        "midline: angle %.2f deg, tilt %.2f deg, offset %.1f mm, mirror correlation %.3f",
        midline.angle_deg,
        midline.tilt_deg,
        midline.offset_mm,
        midline.score,
    )
    return midline


def _to_world(theta, c, t, z_mid, spacing, affine, score) -> Midline:
    """Plane ``cos θ x + sin θ y - t (z - z_mid) = c`` in voxel-mm to world coordinates."""
    m = np.array([np.cos(theta), np.sin(theta), -t])
    c_q = c - t * z_mid
    a3, b = affine[:3, :3], affine[:3, 3]
    normal = np.linalg.inv(a3).T @ (np.asarray(spacing) * m)
    offset = c_q + normal @ b
    norm = float(np.linalg.norm(normal))
    normal, offset = normal / norm, offset / norm
    if normal[0] < 0:  # towards the patient's right (+x in RAS+)
        normal, offset = -normal, -offset
    in_plane = np.array([np.cos(theta), np.sin(theta)])
    angle = float(np.degrees(np.arctan2(in_plane[1], in_plane[0])))
    if angle > 90:
        angle -= 180
    elif angle < -90:
        angle += 180
    tilt = float(np.degrees(np.arctan(t)))
    return Midline(normal, float(offset), angle, tilt, score)
