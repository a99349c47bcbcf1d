"""The `Study`: one CT perfusion acquisition in memory, whatever it was read from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .dicom.source import SourceImages

__all__ = ["Study", "SOURCE_KINDS", "is_identifying", "check_affine"]

#: Where a study can come from.
SOURCE_KINDS = ("dicom", "nifti", "unitobrain", "array")

#: Parts of metadata keys that identify a patient (compared lower case, without ``_``).
_IDENTIFYING = ("patient", "birth", "institution", "physician", "operator", "accession")


def is_identifying(key: str) -> bool:
    """Whether a metadata key holds a patient identifier or identifying detail.

    Any key about the patient (``patient_id``, ``patient_name``, ``PatientBirthDate``,
    ``patient_sex``, ...), institution, physicians, operators or accession number.
    """
    name = key.lower().replace("_", "").replace(" ", "")
    return any(part in name for part in _IDENTIFYING)


#: Plausible voxel sizes (mm) and distance of the first voxel from the origin (mm).
VOXEL_MM = (1e-3, 100.0)
MAX_ORIGIN_MM = 1e5


def check_affine(affine: np.ndarray, source: str | Path) -> None:
    """Refuse an affine a scanner cannot have produced, naming ``source``.

    Raises
    ------
    InputError
        Non-finite or singular; a voxel size outside `VOXEL_MM`; the first voxel farther
        than `MAX_ORIGIN_MM` from the origin.
    """
    from ..errors import InputError

    affine = np.asarray(affine, dtype=np.float64)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError(
            source, f"the voxel-to-world affine is not finite or singular: {affine.tolist()}"
        )
    sizes = np.linalg.norm(affine[:3, :3], axis=0)
    if not np.all((sizes >= VOXEL_MM[0]) & (sizes <= VOXEL_MM[1])):
        raise InputError(
            source,
            f"voxel sizes {np.round(sizes, 6).tolist()} mm: expected {VOXEL_MM[0]:g} to "
            f"{VOXEL_MM[1]:g} mm",
        )
    if np.abs(affine[:3, 3]).max() > MAX_ORIGIN_MM:
        raise InputError(
            source, f"the first voxel lies at {affine[:3, 3].tolist()} mm: not a patient position"
        )


def _json_ready(value: Any) -> Any:
    """Plain JSON values: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@dataclass
class Study:
    """A CT perfusion study: HU frames on a voxel grid, with their times.

    Parameters
    ----------
    frames : ndarray, shape (x, y, z, t), float32
        Attenuation in Hounsfield units. ``x`` runs along image columns, ``y`` along image
        rows, ``z`` along the slice normal (ascending position), ``t`` over time.
    affine : ndarray, shape (4, 4)
        Voxel index ``(i, j, k)`` to world position in mm, RAS+ (NIfTI/nibabel convention;
        DICOM's LPS is converted on reading).
    times : ndarray, shape (t,), float64
        Acquisition time of each frame in s, from the first frame (``times[0] == 0``),
        strictly increasing.
    source : str
        One of `SOURCE_KINDS`.
    path : Path or None
        The file or folder the study was read from.
    metadata : dict
        Source metadata, missing items absent: ``series_description``, ``patient_id``,
        ``study_instance_uid``, ``series_instance_uid``, ``modality``, ``kvp``,
        ``exposure_mas``, ``manufacturer``, ``transfer_syntax`` ...
    problems : list of str
        Non-fatal problems found while reading (each one sentence).
    source_images : SourceImages or None
        For a study read from DICOM: the pixel-less headers of its first image in time at
        each slice and the UIDs of every image (`ctpmaps.io.dicom.source.SourceImages`), so
        that derived DICOM outputs carry the source's patient, study and frame of reference
        and reference its images without reading a header again. None for other sources.
        Kept by `dataclasses.replace`, so a preprocessed study still points at its source.

    Examples
    --------
    >>> import numpy as np
    >>> s = Study(np.zeros((4, 4, 2, 3), np.float32), np.eye(4), np.array([0.0, 1.0, 2.0]))
    >>> s.shape, s.n_frames, s.spacing
    ((4, 4, 2), 3, (1.0, 1.0, 1.0))
    """

    frames: np.ndarray
    affine: np.ndarray
    times: np.ndarray
    source: str = "array"
    path: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    source_images: SourceImages | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames)
        if self.frames.ndim != 4:
            raise ValueError(
                f"frames: expected 4 dimensions (x, y, z, t), got shape {self.frames.shape}"
            )
        if self.frames.dtype != np.float32:
            self.frames = self.frames.astype(np.float32)
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine: expected shape (4, 4), got {self.affine.shape}")
        self.times = np.asarray(self.times, dtype=np.float64)
        if self.times.shape != (self.frames.shape[3],):
            n = self.frames.shape[3]
            raise ValueError(f"times: expected {n} values (one per frame), got {self.times.shape}")
        if self.source not in SOURCE_KINDS:
            raise ValueError(f"source: expected one of {SOURCE_KINDS}, got {self.source!r}")
        if self.path is not None:
            self.path = Path(self.path)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape ``(x, y, z)``."""
        return tuple(int(n) for n in self.frames.shape[:3])  # type: ignore[return-value]

    @property
    def n_frames(self) -> int:
        """Number of frames (time points)."""
        return int(self.frames.shape[3])

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along ``(x, y, z)``, from the affine."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def frame_interval(self) -> float:
        """Median time between frames in s."""
        return float(np.median(np.diff(self.times))) if self.n_frames > 1 else 0.0

    def summary(self, *, identifiers: bool = False) -> dict[str, Any]:
        """What was read, as plain JSON values (used by ``ctpmaps info``).

        Parameters
        ----------
        identifiers : bool
            Include the metadata that identify the patient (`is_identifying`: name, ID,
            birth date, sex ...). Left out by default; `metadata` keeps them for the
            DICOM outputs.

        Returns
        -------
        dict
            Strict JSON (no NaN or infinity: a non-finite number reads as null).
        """
        metadata = {k: v for k, v in self.metadata.items() if identifiers or not is_identifying(k)}
        return _json_ready(
            {
                "source": self.source,
                "path": str(self.path) if self.path is not None else None,
                "shape": list(self.shape),
                "n_frames": self.n_frames,
                "spacing_mm": [round(v, 4) for v in self.spacing],
                "times_s": [round(float(t), 4) for t in self.times],
                "duration_s": round(float(self.times[-1]), 4),
                "frame_interval_s": round(self.frame_interval, 4),
                "hu_range": [float(np.min(self.frames)), float(np.max(self.frames))],
                "series_description": self.metadata.get("series_description"),
                "metadata": metadata,
                "problems": list(self.problems),
            }
        )
