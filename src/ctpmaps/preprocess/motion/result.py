"""The result of motion correction: registered frames and one rigid transform per frame."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .geometry import rigid_matrix

__all__ = ["MotionResult"]


@dataclass
class MotionResult:
    """Registered frames and the rigid transform found for each frame.

    The transform of frame ``k`` maps a point ``x`` of the reference (mm, array axes) to
    where that anatomy is in frame ``k``: ``T(x) = R (x - center) + center + t`` with
    ``R = Rz(rz) Ry(ry) Rx(rx)`` (rotate about x, then y, then z). The registered frame is
    ``frame_k(T(x))``.

    Attributes
    ----------
    frames : ndarray, shape (x, y, z, t), float32
        Registered frames in HU (frames screened still are copied unchanged).
    translations_mm : ndarray, shape (t, 3)
        ``t`` along the array axes (x, y, z), mm.
    rotations_deg : ndarray, shape (t, 3)
        Rotations about the x, y and z axes through ``center_mm``, degrees.
    registered : ndarray, shape (t,), bool
        Frames that were registered (by ``parameters["method"]``).
    source : ndarray, shape (t,), int
        Where each transform comes from: ``-1`` identity (the reference, or screened still
        against it), ``k`` itself (registered), or an earlier registered frame whose
        transform it shares (``elastix-seed`` only: screened still since that frame).
    flagged : ndarray, shape (t,), bool
        Frames whose translation exceeds ``flag_mm`` or rotation exceeds ``flag_deg`` (any
        axis).
    screen_mm : ndarray, shape (t,)
        The screening estimate of each frame's largest displacement over the head, mm.
    center_mm : ndarray, shape (3,)
        Centre of rotation: the volume centre, mm from voxel (0, 0, 0) along the array axes.
    reference : int
        Index of the reference frame.
    times : ndarray, shape (t,), or None
        Frame times in s, when known.
    flag_mm, flag_deg : float
        Thresholds used for ``flagged``.
    parameters : dict
        The method, its settings (the elastix parameter map for ``elastix-seed``) and the
        screening settings, as used.
    timings : dict
        Seconds spent screening, loading itk (``elastix-seed``), registering and resampling.
    """

    frames: np.ndarray
    translations_mm: np.ndarray
    rotations_deg: np.ndarray
    registered: np.ndarray
    source: np.ndarray
    flagged: np.ndarray
    screen_mm: np.ndarray
    center_mm: np.ndarray
    reference: int
    times: np.ndarray | None
    flag_mm: float
    flag_deg: float
    parameters: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def matrices(self) -> np.ndarray:
        """Per-frame transforms as (t, 4, 4) homogeneous matrices in mm (see class doc)."""
        return np.stack(
            [
                rigid_matrix(r, t, self.center_mm)
                for r, t in zip(self.rotations_deg, self.translations_mm, strict=True)
            ]
        )

    def world_matrices(self, affine: np.ndarray) -> np.ndarray:
        """The transforms in world mm (e.g. scanner RAS+) for a study with this ``affine``.

        Parameters
        ----------
        affine : ndarray, shape (4, 4)
            Voxel index to world mm (`Study.affine`).

        Returns
        -------
        ndarray, shape (t, 4, 4)
            Each maps a world point of the reference to where that anatomy is in the frame.
        """
        affine = np.asarray(affine, float)
        spacing = np.linalg.norm(affine[:3, :3], axis=0)
        to_world = affine @ np.diag([*(1.0 / spacing), 1.0])  # array mm -> world mm
        return to_world @ self.matrices @ np.linalg.inv(to_world)

    def summary(self) -> dict[str, Any]:
        """JSON-ready record for ``run.json``: thresholds, flagged frames and transforms."""
        return {
            "reference": self.reference,
            "center_mm": [round(float(v), 4) for v in self.center_mm],
            "flag_mm": self.flag_mm,
            "flag_deg": self.flag_deg,
            "n_registered": int(self.registered.sum()),
            "n_shared": int(((self.source >= 0) & ~self.registered).sum()),
            "flagged_frames": [int(k) for k in np.flatnonzero(self.flagged)],
            "max_translation_mm": round(float(np.abs(self.translations_mm).max(initial=0)), 4),
            "max_rotation_deg": round(float(np.abs(self.rotations_deg).max(initial=0)), 4),
            "translations_mm": np.round(self.translations_mm, 4).tolist(),
            "rotations_deg": np.round(self.rotations_deg, 4).tolist(),
            "parameters": self.parameters,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }
