"""Phantom vessels: cerebral arteries (AIF candidates) and the superior sagittal sinus (VOF).

Vessels are tubes along polylines given in MNI mm, moved with the head pose and voxelised
on the CT grid with sub-voxel sampling across the slice thickness, then blurred in-plane by
the scanner's point spread function. Arteries of 2–3 mm diameter therefore never fill a
voxel completely: partial volume lowers their peaks, as in real CTP, which is why the AIF
is rescaled against the venous output function of the larger sinus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .anatomy import Template

__all__ = ["Vessel", "vessel_tree", "voxelise"]


@dataclass(frozen=True)
class Vessel:
    """A tube: polyline points (n, 3) in MNI mm, radius in mm, kind and side.

    ``kind`` is ``"artery"`` or ``"vein"``; ``side`` is ``"left"``, ``"right"`` or
    ``"midline"``; ``territory`` names what the artery feeds (``"MCA"``, ``"ACA"``), which
    decides whether an occlusion delays it.
    """

    name: str
    points: np.ndarray
    radius_mm: float
    kind: str
    side: str
    territory: str = ""


def _mirror(points: list[tuple[float, float, float]], sign: float) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    p[:, 0] *= sign
    return p


def vessel_tree(template: Template, rng: np.random.Generator) -> list[Vessel]:
    """Arteries (ACA pericallosal, MCA M1/M2 trunks) on both sides and the sinus.

    Radii vary by ±10 % per patient. The sinus follows the inner skull surface on the
    midline, found from the template's brain mask.
    """
    aca = [
        (2.8, 10, -10),
        (2.8, 20, 0),
        (2.8, 28, 10),
        (2.8, 30, 20),
        (2.8, 24, 31),
        (2.8, 10, 38),
        (2.8, -10, 42),
        (2.8, -30, 40),
    ]
    m1 = [(6, 2, -14), (18, 3, -13), (30, 4, -10), (38, 6, -6)]
    m2_sup = [(38, 6, -6), (40, 8, 2), (42, 2, 12), (44, -8, 22), (46, -18, 32), (46, -28, 42)]
    m2_inf = [(38, 6, -6), (43, 0, -1), (48, -12, 5), (50, -26, 11), (48, -40, 18)]
    out: list[Vessel] = []
    jitter = lambda r: r * rng.uniform(0.9, 1.1)  # noqa: E731
    for side, sign in (("right", 1.0), ("left", -1.0)):
        out.append(Vessel(f"ACA {side}", _mirror(aca, sign), jitter(1.1), "artery", side, "ACA"))
        out.append(Vessel(f"MCA M1 {side}", _mirror(m1, sign), jitter(1.5), "artery", side, "MCA"))
        out.append(
            Vessel(
                f"MCA M2 superior {side}",
                _mirror(m2_sup, sign),
                jitter(1.15),
                "artery",
                side,
                "MCA",
            )
        )
        out.append(
            Vessel(
                f"MCA M2 inferior {side}",
                _mirror(m2_inf, sign),
                jitter(1.05),
                "artery",
                side,
                "MCA",
            )
        )
    out.append(
        Vessel("superior sagittal sinus", _sinus_path(template), jitter(4.0), "vein", "midline")
    )
    return out


def _sinus_path(template: Template) -> np.ndarray:
    """Midline points 4.5 mm outside the brain surface, in order: up the back, over the
    vertex from back to front, down the front (the sinus's course along the falx)."""
    inv = np.linalg.inv(template.affine)
    x0 = int(round((inv @ [0, 0, 0, 1])[0]))
    inside = template.signed_distance[x0] < 0  # (y, z) midline plane
    pts = []
    ys = np.nonzero(inside.any(axis=1))[0]
    zs = np.nonzero(inside.any(axis=0))[0]
    # Posterior edge, bottom to top, then over the vertex, then anterior edge top to bottom.
    z_range = range(zs.min() + 30, zs.max() - 5, 4)
    for z in z_range:
        col = np.nonzero(inside[:, z])[0]
        pts.append((0.0, col.min() - 4.5, z))
    top = zs.max()
    for y in range(ys.min() + 25, ys.max() - 25, 8):
        row = np.nonzero(inside[y, :])[0]
        if row.size:
            pts.append((0.0, y, row.max() + 4.5))
    for z in reversed(z_range):
        col = np.nonzero(inside[:, z])[0]
        if z > top - 60:
            pts.append((0.0, col.max() + 4.5, z))
    vox = np.asarray(pts, dtype=np.float64)
    world = (template.affine @ np.c_[vox, np.ones(len(vox))].T).T[:, :3]
    world[:, 0] = 0.0
    return world


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1)


def voxelise(
    vessel: Vessel,
    mni_to_ct_vox: np.ndarray,
    shape: tuple[int, int, int],
    spacing_mm: tuple[float, float, float],
    *,
    n_sub: int = 5,
    psf_fwhm_mm: float = 0.9,
) -> np.ndarray:
    """Fraction of each CT voxel inside the tube, shape ``shape``, float32.

    ``mni_to_ct_vox`` maps MNI mm to CT voxel indices. Distances are measured in CT mm,
    sampled at ``n_sub`` positions across each slice and about every 0.3 mm in-plane (at
    most 8 x 8 per voxel), and
    averaged; the result is blurred
    in-plane with a Gaussian PSF of ``psf_fwhm_mm``.
    """
    pts_vox = (mni_to_ct_vox @ np.c_[vessel.points, np.ones(len(vessel.points))].T).T[:, :3]
    sp = np.asarray(spacing_mm, dtype=np.float64)
    pts_mm = pts_vox * sp
    out = np.zeros(shape, np.float32)
    reach = vessel.radius_mm + 2 * psf_fwhm_mm
    # Sub-voxel sample points: n_sub across the slice, about every 0.3 mm in-plane.
    n_xy = min(8, max(2, int(np.ceil(sp[0] / 0.3))))
    oxy = (np.arange(n_xy) + 0.5) / n_xy - 0.5
    oz = (np.arange(n_sub) + 0.5) / n_sub - 0.5
    offsets = np.stack(np.meshgrid(oxy, oxy, oz, indexing="ij"), axis=-1).reshape(-1, 3)
    for a, b in zip(pts_mm[:-1], pts_mm[1:], strict=True):
        lo = np.floor((np.minimum(a, b) - reach) / sp).astype(int)
        hi = np.ceil((np.maximum(a, b) + reach) / sp).astype(int) + 1
        lo, hi = np.maximum(lo, 0), np.minimum(hi, shape)
        if np.any(hi <= lo):
            continue
        grid = np.meshgrid(*(np.arange(lo[d], hi[d]) for d in range(3)), indexing="ij")
        centres = np.stack([g.ravel() for g in grid], axis=1).astype(np.float64)
        frac = np.zeros(len(centres), np.float32)
        for i in range(0, len(centres), 4096):
            c = centres[i : i + 4096]
            pts = ((c[:, None, :] + offsets[None, :, :]) * sp).reshape(-1, 3)
            inside = _segment_distance(pts, a, b) <= vessel.radius_mm
            frac[i : i + 4096] = inside.reshape(len(c), -1).mean(axis=1)
        box = out[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        np.maximum(box, frac.reshape(grid[0].shape), out=box)
    sigma_px = psf_fwhm_mm / 2.3548 / sp[:2]
    return ndimage.gaussian_filter(out, sigma=(sigma_px[0], sigma_px[1], 0), mode="constant")
