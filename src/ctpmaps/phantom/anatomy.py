"""Phantom anatomy: MNI152 grey/white matter placed in a CT slab with a random head pose.

Grey and white matter probability maps come from the MNI152 (ICBM 2009a) templates that
ship inside the ``nilearn`` wheel (read offline). CSF fills the rest of the template's
brain mask; a thin CSF layer, the skull and the scalp are shells at set distances outside
the brain. Each patient gets its own head pose (rotation, translation) and size, and every
slice averages the anatomy over its thickness (partial volume).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..io.atomic import atomic_path
from .config import Acquisition

__all__ = [
    "Template",
    "load_template",
    "HeadPose",
    "random_pose",
    "ct_affine",
    "ct_to_template",
    "Anatomy",
    "sample_anatomy",
    "TISSUE_LABELS",
    "CoarseGrid",
]

#: Labels of the tissue-class map (dominant class of each voxel).
TISSUE_LABELS = {
    0: "air",
    1: "grey matter",
    2: "white matter",
    3: "CSF",
    4: "bone",
    5: "soft tissue (scalp)",
    6: "artery",
    7: "vein (sinus)",
}


@dataclass(frozen=True)
class Template:
    """MNI152 1 mm templates: GM and WM probabilities and a signed distance to the brain.

    ``signed_distance`` is in mm, negative inside the brain mask, positive outside.
    """

    gm: np.ndarray
    wm: np.ndarray
    signed_distance: np.ndarray
    affine: np.ndarray


def _cache_dir() -> Path:
    """Where derived template data is kept: ``$CTPMAPS_CACHE`` or ``~/.cache/ctpmaps``."""
    return Path(os.environ.get("CTPMAPS_CACHE", Path.home() / ".cache" / "ctpmaps"))


def _signed_distance(brain: np.ndarray, key: str) -> np.ndarray:
    """Signed distance (mm) to the brain mask, cached on disk (it takes seconds)."""
    path = _cache_dir() / f"mni152_signed_distance_{key}.npy"
    if path.exists():
        try:
            cached = np.load(path)
            if cached.shape == brain.shape:
                return cached.astype(np.float32)
        except (OSError, ValueError):
            pass
    outside = ndimage.distance_transform_edt(~brain)
    inside = ndimage.distance_transform_edt(brain)
    signed = np.where(brain, -inside + 0.5, outside - 0.5).astype(np.float32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            np.save(tmp, signed.astype(np.float16))
    except OSError:  # a read-only home is fine: compute again next time
        pass
    return signed


@lru_cache(maxsize=1)
def load_template() -> Template:
    """Load (once per process) the MNI152 templates shipped with nilearn (no download)."""
    import nilearn
    from nilearn.datasets import (
        load_mni152_brain_mask,
        load_mni152_gm_template,
        load_mni152_wm_template,
    )

    gm_img = load_mni152_gm_template(resolution=1)
    gm = np.asarray(gm_img.get_fdata(), dtype=np.float32)
    wm = np.asarray(load_mni152_wm_template(resolution=1).get_fdata(), dtype=np.float32)
    brain = np.asarray(load_mni152_brain_mask(resolution=1).get_fdata()) > 0.5
    brain = ndimage.binary_fill_holes(brain)
    signed = _signed_distance(brain, f"nilearn{nilearn.__version__}")
    return Template(gm=gm, wm=wm, signed_distance=signed, affine=np.asarray(gm_img.affine))


@dataclass(frozen=True)
class HeadPose:
    """Where the head sits in the scanner: template (MNI mm) → scanner (RAS mm).

    ``p_ct = R @ (scale * (p_mni - centre_mni)) + shift_mm`` with ``R`` from the Euler
    angles (degrees, about x then y then z).
    """

    angles_deg: tuple[float, float, float]
    shift_mm: tuple[float, float, float]
    scale: tuple[float, float, float]
    centre_mni: tuple[float, float, float]

    def matrix(self) -> np.ndarray:
        """4 x 4 homogeneous transform from MNI mm to scanner mm."""
        rot = euler_matrix(*self.angles_deg)
        m = np.eye(4)
        m[:3, :3] = rot @ np.diag(self.scale)
        m[:3, 3] = np.asarray(self.shift_mm) - m[:3, :3] @ np.asarray(self.centre_mni)
        return m


def euler_matrix(rx_deg: float, ry_deg: float, rz_deg: float) -> np.ndarray:
    """Rotation matrix ``Rz @ Ry @ Rx`` from angles in degrees."""
    rx, ry, rz = np.deg2rad([rx_deg, ry_deg, rz_deg])
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return mz @ my @ mx


def random_pose(rng: np.random.Generator) -> HeadPose:
    """A plausible head pose: flexion (gantry tilt) up to 12°, yaw 6°, roll 4°, offsets
    up to 8 mm in-plane, head size 0.9–1.1, slab centred at the basal ganglia/ventricles."""
    angles = (rng.uniform(-12, 12), rng.uniform(-4, 4), rng.uniform(-6, 6))
    shift = (rng.uniform(-8, 8), rng.uniform(-8, 8), rng.uniform(-2, 2))
    size = rng.uniform(0.9, 1.1)
    scale = tuple(size * rng.uniform(0.97, 1.03, size=3))
    centre = (0.0, -15.0, rng.uniform(8.0, 22.0))
    return HeadPose(angles, shift, scale, centre)  # type: ignore[arg-type]


def ct_affine(acq: Acquisition) -> np.ndarray:
    """Voxel → scanner RAS mm affine of the CT grid (DICOM axial: columns run to the
    patient's left, rows to posterior, slices ascend), centred on the isocentre."""
    px, dz = acq.pixel_mm, acq.slice_thickness_mm
    aff = np.diag([-px, -px, dz, 1.0])
    aff[:3, 3] = [
        px * (acq.matrix - 1) / 2,
        px * (acq.matrix - 1) / 2,
        -dz * (acq.n_slices - 1) / 2,
    ]
    return aff


def ct_to_template(acq: Acquisition, pose: HeadPose, template: Template) -> np.ndarray:
    """4 x 4 transform from CT voxel indices to template voxel indices."""
    return np.linalg.inv(template.affine) @ np.linalg.inv(pose.matrix()) @ ct_affine(acq)


@dataclass
class Anatomy:
    """Tissue fractions of every CT voxel, averaged over the slice thickness.

    Each array is (x, y, z) float32 in [0, 1]; they sum to 1 with `air`.
    """

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    bone: np.ndarray
    scalp: np.ndarray
    artery: np.ndarray
    vein: np.ndarray

    @property
    def air(self) -> np.ndarray:
        """Fraction of air (what no tissue fills)."""
        total = self.gm + self.wm + self.csf + self.bone + self.scalp + self.artery + self.vein
        return np.clip(1.0 - total, 0.0, 1.0)

    def labels(self) -> np.ndarray:
        """Dominant tissue class per voxel, uint8 (see `TISSUE_LABELS`)."""
        stack = np.stack(
            [self.air, self.gm, self.wm, self.csf, self.bone, self.scalp, self.artery, self.vein]
        )
        return np.argmax(stack, axis=0).astype(np.uint8)

    def brain_mask(self) -> np.ndarray:
        """Voxels mostly made of brain parenchyma (GM + WM >= 0.5, no large vessel)."""
        return ((self.gm + self.wm) >= 0.5) & (self.artery + self.vein < 0.1)


def _grid_points(shape: tuple[int, int, int], matrix: np.ndarray, z_offsets: np.ndarray):
    """Template voxel coordinates of CT points; z sampled at sub-slice offsets."""
    nx, ny, nz = shape
    i = np.arange(nx, dtype=np.float32)[:, None, None]
    j = np.arange(ny, dtype=np.float32)[None, :, None]
    k = (np.arange(nz, dtype=np.float32)[:, None] + z_offsets[None, :]).ravel()[None, None, :]
    return np.stack(
        [matrix[c, 0] * i + matrix[c, 1] * j + matrix[c, 2] * k + matrix[c, 3] for c in range(3)]
    ).astype(np.float32)


def sample_anatomy(
    acq: Acquisition,
    pose: HeadPose,
    *,
    skull_mm: float = 6.5,
    scalp_mm: float = 5.0,
    csf_layer_mm: float = 1.5,
    n_sub: int = 3,
) -> tuple[Anatomy, np.ndarray]:
    """Tissue fractions on the CT grid (without vessels) and the sampling transform.

    Anatomy is sampled on a grid of at most 256 x 256 in-plane (the templates have 1 mm
    voxels, so finer sampling adds nothing), at ``n_sub`` positions across each slice,
    averaged over the thickness, then interpolated to the CT matrix.

    Returns
    -------
    anatomy : Anatomy
        Fractions with ``artery`` and ``vein`` zero (see `ctpmaps.phantom.vessels`).
    ct_to_tmpl : ndarray, shape (4, 4)
        CT voxel → template voxel transform (for other fields sampled the same way).
    """
    template = load_template()
    grid = CoarseGrid.for_acquisition(acq, max_matrix=256)
    coarse = grid.shape[0]
    ct_to_tmpl = ct_to_template(acq, pose, template)
    m = ct_to_tmpl @ grid.to_fine
    offsets = (np.arange(n_sub, dtype=np.float32) + 0.5) / n_sub - 0.5
    pts = _grid_points(grid.shape, m, offsets)

    def sample(vol: np.ndarray, cval: float) -> np.ndarray:
        out = ndimage.map_coordinates(
            vol, pts, order=1, mode="constant", cval=cval, output=np.float32
        )
        return out.reshape(coarse, coarse, acq.n_slices, n_sub)

    gm = sample(template.gm, 0.0)
    wm = sample(template.wm, 0.0)
    d = sample(template.signed_distance, 100.0) * float(np.mean(pose.scale))
    # Fraction of each shell from the signed distance, with a 1 mm linear edge.
    inside = np.clip(0.5 - d, 0.0, 1.0)
    shell = lambda lo, hi: np.clip(np.minimum(d - lo, hi - d) + 0.5, 0.0, 1.0)  # noqa: E731
    brain_tissue = np.minimum(gm + wm, inside)
    scale = np.where(gm + wm > 0, brain_tissue / np.maximum(gm + wm, 1e-6), 0.0)
    gm, wm = gm * scale, wm * scale
    csf = np.clip(inside - gm - wm, 0.0, 1.0) + shell(0.0, csf_layer_mm)
    bone = shell(csf_layer_mm, csf_layer_mm + skull_mm)
    scalp = shell(csf_layer_mm + skull_mm, csf_layer_mm + skull_mm + scalp_mm)

    def finish(a: np.ndarray) -> np.ndarray:
        return np.clip(grid.upsample(a.mean(axis=3)), 0.0, 1.0).astype(np.float32)

    zeros = np.zeros((acq.matrix, acq.matrix, acq.n_slices), np.float32)
    anat = Anatomy(
        finish(gm), finish(wm), finish(csf), finish(bone), finish(scalp), zeros, zeros.copy()
    )
    return anat, ct_to_tmpl


@dataclass(frozen=True)
class CoarseGrid:
    """A coarser in-plane version of the CT grid, for fields that vary slowly in space.

    Coarse voxel ``(i, j, k)`` covers the CT voxels ``step * i ... step * (i + 1) - 1`` in
    each in-plane direction (slices are kept), so its centre sits at CT index
    ``step * i + (step - 1) / 2``.

    Attributes
    ----------
    shape : tuple of int
        Coarse grid shape (x, y, z).
    step : float
        CT voxels per coarse voxel in-plane (``matrix / coarse``).
    matrix : int
        In-plane size of the CT grid.
    """

    shape: tuple[int, int, int]
    step: float
    matrix: int

    @classmethod
    def for_acquisition(cls, acq: Acquisition, *, max_matrix: int) -> CoarseGrid:
        """The finest integer subsampling of the CT grid with at most ``max_matrix`` voxels
        in-plane (the CT grid itself when it is no larger)."""
        factor = max(1, int(np.ceil(acq.matrix / max_matrix)))
        coarse = acq.matrix // factor
        return cls((coarse, coarse, acq.n_slices), acq.matrix / coarse, acq.matrix)

    @property
    def to_fine(self) -> np.ndarray:
        """4 x 4 transform from coarse voxel indices to CT voxel indices."""
        m = np.diag([self.step, self.step, 1.0, 1.0])
        m[:2, 3] = (self.step - 1) / 2
        return m

    def upsample(self, a: np.ndarray) -> np.ndarray:
        """A coarse field (x, y, z) linearly interpolated onto the CT grid."""
        if self.step == 1:
            return a
        return ndimage.zoom(a, (self.step, self.step, 1), order=1, mode="nearest", grid_mode=True)

    def downsample_mean(self, a: np.ndarray) -> np.ndarray:
        """Block average of a CT-grid array onto the coarse grid (approximate when the step
        is not an integer: blocks of the rounded step)."""
        s = int(round(self.step))
        if s == 1:
            return a.astype(np.float32)
        n = self.shape[0] * s
        blocks = a[:n, :n].reshape(self.shape[0], s, self.shape[1], s, self.shape[2])
        return blocks.mean(axis=(1, 3), dtype=np.float32)
