"""4D NIfTI studies with a JSON sidecar of frame times, and 3D maps in physical units."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ..errors import InputError
from .atomic import atomic_path
from .study import Study, is_identifying

__all__ = [
    "read_nifti_study",
    "write_nifti_study",
    "write_nifti_map",
    "read_nifti_map",
    "sidecar_path",
    "is_nifti",
]

_TIME_UNITS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}


def is_nifti(path: str | Path) -> bool:
    """True for a ``.nii`` or ``.nii.gz`` path."""
    name = Path(path).name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar beside a NIfTI file: ``name.json`` for ``name.nii(.gz)``."""
    path = Path(path)
    name = path.name
    stem = name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem
    return path.with_name(stem + ".json")


def _frame_times(path: Path, img: nib.Nifti1Image, n_frames: int) -> tuple[np.ndarray, str]:
    side = sidecar_path(path)
    if side.exists():
        try:
            meta = json.loads(side.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(side, f"cannot read the JSON sidecar: {exc}") from exc
        if "FrameTimes" in meta:
            times = np.asarray(meta["FrameTimes"], dtype=np.float64)
            if times.shape != (n_frames,):
                raise InputError(
                    side, f"FrameTimes has {times.size} values, the image has {n_frames} frames"
                )
            return times, "sidecar FrameTimes"
    zooms = img.header.get_zooms()
    unit = img.header.get_xyzt_units()[1]
    dt = float(zooms[3]) if len(zooms) > 3 else 0.0
    if dt <= 0 or unit not in _TIME_UNITS:
        raise InputError(
            path,
            f"no frame times: no sidecar {side.name} with FrameTimes, and "
            f"the header's time step is {dt} {unit!r}",
        )
    return np.arange(n_frames) * dt * _TIME_UNITS[unit], f"header time step ({unit})"


def read_nifti_study(path: str | Path) -> Study:
    """Read a 4D NIfTI (x, y, z, t) in HU as a `Study`.

    Frame times come from the sidecar ``name.json`` (key ``FrameTimes``, s) or, without
    one, from the header's time step and units.

    Raises
    ------
    InputError
        Not 4D, unreadable, NaN/inf values, missing or inconsistent times.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        img = nib.load(path)
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as exc:  # nibabel raises many kinds on corrupt files
        raise InputError(path, f"not a readable NIfTI file ({exc})") from exc
    if data.ndim != 4 or data.shape[3] < 2:
        raise InputError(
            path, f"expected a 4D image (x, y, z, t) with >= 2 frames, got shape {data.shape}"
        )
    bad = ~np.isfinite(data)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            path,
            f"{int(bad.sum())} NaN or infinite values (first at voxel "
            f"{first[:3]}, frame {first[3]})",
        )
    times, origin = _frame_times(path, img, data.shape[3])
    if np.any(np.diff(times) <= 0):
        raise InputError(path, f"frame times are not strictly increasing ({origin})")
    meta: dict[str, Any] = {"times_from": origin}
    side = sidecar_path(path)
    if side.exists():
        extra = json.loads(side.read_text())
        meta.update({k: v for k, v in extra.items() if k != "FrameTimes"})
    return Study(data, img.affine, times - times[0], source="nifti", path=path, metadata=meta)


def write_nifti_study(
    study: Study,
    path: str | Path,
    *,
    dtype: str = "int16",
    extra: dict[str, Any] | None = None,
    anonymize: bool = False,
) -> Path:
    """Write a study as a 4D NIfTI plus ``name.json`` with ``FrameTimes`` (s) and units.

    ``dtype="int16"`` rounds HU to integers (as scanners store them); ``"float32"`` keeps
    them exact. The sidecar also holds the study's JSON-ready metadata, without the keys
    that identify the patient (`ctpmaps.io.study.is_identifying`) when ``anonymize``.
    Both files are written atomically.
    """
    path = Path(path)
    data = study.frames
    if dtype == "int16":
        data = np.clip(np.rint(data), -32768, 32767).astype(np.int16)
    elif dtype != "float32":
        raise ValueError(f"dtype: expected 'int16' or 'float32', got {dtype!r}")
    img = nib.Nifti1Image(data, study.affine)
    img.header.set_xyzt_units("mm", "sec")
    zooms = list(study.spacing) + [study.frame_interval]
    img.header.set_zooms(zooms)
    img.header["descrip"] = b"CTP HU"
    side = {
        "FrameTimes": [float(t) for t in study.times],
        "FrameTimesUnits": "s",
        "Units": "HU",
        **{k: v for k, v in study.metadata.items() if _jsonable(v)},
        **(extra or {}),
    }
    if anonymize:
        side = {k: v for k, v in side.items() if not is_identifying(k)}
    with atomic_path(path) as tmp:
        nib.save(img, tmp)
        with atomic_path(sidecar_path(path)) as tmp_side:
            tmp_side.write_text(json.dumps(side, indent=1))
    return path


def write_nifti_map(
    array: np.ndarray,
    affine: np.ndarray,
    path: str | Path,
    *,
    units: str = "",
    description: str = "",
) -> Path:
    """Write a 3D map (float32, or uint8 for masks) with its units in the header.

    The header's ``descrip`` holds ``"{description} [{units}]"`` (80 characters at most);
    the same goes into the ``intent_name`` where it fits.
    """
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    elif array.dtype != np.uint8:
        array = array.astype(np.float32)
    img = nib.Nifti1Image(array, affine)
    img.header.set_xyzt_units("mm")
    text = f"{description} [{units}]" if units else description
    img.header["descrip"] = text[:79].encode()
    with atomic_path(path) as tmp:
        nib.save(img, tmp)
    return Path(path)


def read_nifti_map(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3D map: (array float32 or uint8, affine)."""
    try:
        img = nib.load(path)
        return np.asanyarray(img.dataobj), img.affine
    except Exception as exc:
        raise InputError(path, f"not a readable NIfTI map ({exc})") from exc


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
        return True
    except TypeError:
        return False
