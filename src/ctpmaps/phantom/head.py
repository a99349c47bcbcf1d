"""One patient's head on the CT grid: pose, tissue fractions, vessels and positions.

Shared by both forward models: what is drawn here (pose, vessel radii) comes first from a
patient's random generator, in the same order as in the first version of the phantom, so a
seed gives the same head in the classic preset as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import Anatomy, CoarseGrid, HeadPose, ct_affine, random_pose, sample_anatomy
from .config import Acquisition
from .vessels import Vessel, vessel_tree, voxelise

__all__ = ["Head", "build_head", "HEMISPHERES", "BASELINE_HU"]

#: Codes of the hemisphere map (from the phantom's mid-sagittal plane, MNI x = 0).
HEMISPHERES = {1: "left", 2: "right"}
#: Unenhanced attenuation per tissue in HU at 80 kV.
BASELINE_HU = {
    "gm": 38.0,
    "wm": 29.0,
    "csf": 7.0,
    "bone": 1100.0,
    "scalp": 40.0,
    "blood": 45.0,
    "air": -1000.0,
}


@dataclass
class Head:
    """A patient's head on the CT grid.

    Attributes
    ----------
    acq : Acquisition
    affine : ndarray, shape (4, 4)
        CT voxel -> scanner mm.
    pose : HeadPose
    anat : Anatomy
        Tissue fractions, vessels included (other tissues make room for them).
    vessels : list of Vessel
    vessel_fractions : list of ndarray (x, y, z) float32
        Fraction of each voxel inside each vessel, in the order of ``vessels``.
    """

    acq: Acquisition
    affine: np.ndarray
    pose: HeadPose
    anat: Anatomy
    vessels: list[Vessel]
    vessel_fractions: list[np.ndarray]

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.acq.matrix, self.acq.matrix, self.acq.n_slices)

    @property
    def voxel_ml(self) -> float:
        """Voxel volume in mL."""
        a = self.acq
        return a.pixel_mm * a.pixel_mm * a.slice_thickness_mm / 1000.0

    def mni_positions(self, grid: CoarseGrid | None = None) -> np.ndarray:
        """MNI positions in mm of the voxel centres of the CT grid (or of a coarse version
        of it), (3, x, y, z) float32."""
        to_ct = self.affine @ (grid.to_fine if grid is not None else np.eye(4))
        return _points(np.linalg.inv(self.pose.matrix()) @ to_ct, grid or self.shape)

    def scanner_positions(self, grid: CoarseGrid) -> np.ndarray:
        """Scanner positions in mm of the voxel centres of a coarse grid, (3, x, y, z)."""
        return _points(self.affine @ grid.to_fine, grid)

    def unenhanced(self) -> np.ndarray:
        """Unenhanced image (x, y, z) float32 HU from the tissue fractions (`BASELINE_HU`)."""
        a, hu = self.anat, BASELINE_HU
        return (
            a.gm * hu["gm"]
            + a.wm * hu["wm"]
            + a.csf * hu["csf"]
            + a.bone * hu["bone"]
            + a.scalp * hu["scalp"]
            + (a.artery + a.vein) * hu["blood"]
            + a.air * hu["air"]
        )

    def hemisphere(self) -> np.ndarray:
        """Hemisphere code per voxel (`HEMISPHERES`), from the sign of MNI x (left < 0)."""
        m = np.linalg.inv(self.pose.matrix()) @ self.affine
        i, j, k = np.meshgrid(*(np.arange(n) for n in self.shape), indexing="ij", sparse=True)
        x = m[0, 0] * i + m[0, 1] * j + m[0, 2] * k + m[0, 3]
        return np.where(x < 0, 1, 2).astype(np.uint8)

    def arteries(self, *, territory: str | None = None, side: str | None = None) -> np.ndarray:
        """Artery fraction per voxel, of all arteries or of those feeding ``territory`` on
        ``side`` (branches share their start point, so the largest fraction, not the sum,
        avoids counting a junction twice)."""
        sel = [
            f
            for v, f in zip(self.vessels, self.vessel_fractions, strict=True)
            if v.kind == "artery"
            and (territory is None or (v.territory == territory and v.side == side))
        ]
        return _union(sel, self.shape)

    def vessel_summary(self) -> list[dict]:
        """Name, kind, side, radius (mm) and peak voxel fraction of every vessel."""
        return [
            {
                "name": v.name,
                "kind": v.kind,
                "side": v.side,
                "radius_mm": v.radius_mm,
                "peak_fraction": float(f.max()),
            }
            for v, f in zip(self.vessels, self.vessel_fractions, strict=True)
        ]


def _points(m: np.ndarray, grid: CoarseGrid | tuple[int, int, int]) -> np.ndarray:
    """``m`` (4 x 4) applied to every voxel index of a grid: (3, x, y, z) float32."""
    shape = grid.shape if isinstance(grid, CoarseGrid) else grid
    ii, jj, kk = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    return np.stack(
        [m[c, 0] * ii + m[c, 1] * jj + m[c, 2] * kk + m[c, 3] for c in range(3)]
    ).astype(np.float32)


def _union(fractions: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    if not fractions:
        return np.zeros(shape, np.float32)
    return np.maximum.reduce(fractions).astype(np.float32)


def build_head(acq: Acquisition, rng: np.random.Generator) -> Head:
    """Draw a head pose and vessel radii, sample the anatomy and voxelise the vessels."""
    from .anatomy import load_template

    affine = ct_affine(acq)
    pose = random_pose(rng)
    anat, _ = sample_anatomy(acq, pose)
    template = load_template()
    mni_to_ct = np.linalg.inv(affine) @ pose.matrix()
    shape = (acq.matrix, acq.matrix, acq.n_slices)
    spacing = (acq.pixel_mm, acq.pixel_mm, acq.slice_thickness_mm)
    vessels = vessel_tree(template, rng)
    fractions = [voxelise(v, mni_to_ct, shape, spacing) for v in vessels]
    head = Head(acq, affine, pose, anat, vessels, fractions)
    artery = head.arteries()
    vein = _union([f for v, f in zip(vessels, fractions, strict=True) if v.kind == "vein"], shape)
    keep = np.clip(1.0 - artery - vein, 0.0, 1.0)
    for name in ("gm", "wm", "csf", "bone", "scalp"):
        setattr(anat, name, getattr(anat, name) * keep)
    anat.artery, anat.vein = artery, vein
    return head
