"""4D NIfTI studies with a JSON sidecar of frame times, and 3D maps in physical units."""

from __future__ import annotations

import gzip
import json
import os
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ..errors import InputError
from ._layout import c_order_copy
from .atomic import atomic_path
from .study import Study, check_affine, is_identifying

__all__ = [
    "read_nifti_study",
    "write_nifti_study",
    "write_nifti_map",
    "read_nifti_map",
    "sidecar_path",
    "read_sidecar",
    "is_nifti",
]

_TIME_UNITS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}

#: ``FrameTimesUnits`` of a sidecar -> seconds per unit (BIDS writes "s").
SIDECAR_UNITS = {
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
    "ms": 1e-3, "msec": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3,
    "us": 1e-6, "usec": 1e-6, "microsecond": 1e-6, "microseconds": 1e-6,
    "min": 60.0, "minute": 60.0, "minutes": 60.0,
}  # fmt: skip

#: Longest plausible acquisition (s), as for DICOM.
MAX_DURATION_S = 3600.0
#: Largest plausible magnitude of a CT value (HU).
MAX_HU = 1e5


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


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The JSON object of a sidecar file.

    Raises
    ------
    InputError
        Unreadable, not UTF-8, not JSON (``NaN`` and ``Infinity`` included), or not an
        object.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        meta = json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise InputError(
            path, f"the JSON sidecar is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except (OSError, ValueError, RecursionError) as exc:
        raise InputError(path, f"cannot read the JSON sidecar: {exc}") from None
    if not isinstance(meta, dict):
        raise InputError(
            path, f"the JSON sidecar holds a {type(meta).__name__}, expected an object"
        )
    return meta


def _sidecar_times(side: Path, meta: dict[str, Any], n_frames: int) -> np.ndarray:
    """``FrameTimes`` in s, through ``FrameTimesUnits``."""
    values = meta["FrameTimes"]
    if not isinstance(values, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise InputError(side, f"FrameTimes: expected a list of numbers, got {str(values)[:60]}")
    if len(values) != n_frames:
        raise InputError(
            side, f"FrameTimes has {len(values)} values, the image has {n_frames} frames"
        )
    unit = meta.get("FrameTimesUnits", "s")
    if not isinstance(unit, str) or unit.strip().lower() not in SIDECAR_UNITS:
        raise InputError(
            side, f"FrameTimesUnits: expected one of {sorted(SIDECAR_UNITS)}, got {unit!r}"
        )
    return np.asarray(values, dtype=np.float64) * SIDECAR_UNITS[unit.strip().lower()]


def _frame_times(
    path: Path, img: Any, time_axis: int, n_frames: int, meta: dict[str, Any] | None
) -> tuple[np.ndarray, str]:
    side = sidecar_path(path)
    if meta is not None and "FrameTimes" in meta:
        return _sidecar_times(side, meta, n_frames), "sidecar FrameTimes"
    zooms = img.header.get_zooms()
    unit = img.header.get_xyzt_units()[1]
    dt = float(zooms[time_axis]) if len(zooms) > time_axis else 0.0
    if not (np.isfinite(dt) and dt > 0) or unit not in _TIME_UNITS:
        raise InputError(
            path,
            f"no frame times: no sidecar {side.name} with FrameTimes, and "
            f"the header's time step is {dt} {unit!r}",
        )
    return np.arange(n_frames) * dt * _TIME_UNITS[unit], f"header time step ({unit})"


def _check_times(path: Path, times: np.ndarray, origin: str) -> None:
    if not np.isfinite(times).all():
        raise InputError(path, f"frame times are not all finite ({origin})")
    if np.any(np.diff(times) <= 0):
        raise InputError(path, f"frame times are not strictly increasing ({origin})")
    if times[-1] - times[0] > MAX_DURATION_S:
        raise InputError(
            path,
            f"frame times span {times[-1] - times[0]:.0f} s ({origin}): not one perfusion "
            "acquisition; in a sidecar, FrameTimesUnits gives their unit (default s)",
        )


def _image_class(first: bytes) -> type:
    """NIfTI-1 or NIfTI-2, from *sizeof_hdr* (either byte order)."""
    size = int.from_bytes(first[:4], "little")
    return nib.Nifti2Image if size in (540, 0x1C020000) else nib.Nifti1Image


def _held_bytes(path: Path, gz: bool) -> int | None:
    """Bytes the file holds: its size, or for gzip the uncompressed size from the trailer
    (modulo 2**32; None when the file is too short to have one)."""
    if not gz:
        return os.stat(path).st_size
    with open(path, "rb") as fp:
        fp.seek(0, os.SEEK_END)
        if fp.tell() < 18:
            return None
        fp.seek(-4, os.SEEK_END)
        return int.from_bytes(fp.read(4), "little")


def _check_size(path: Path, img: Any, gz: bool) -> None:
    """The data the header announces fit in the file (this bounds a read's memory)."""
    header = img.header
    shape = header.get_data_shape()
    needed = int(np.prod(shape, dtype=np.float64)) * header.get_data_dtype().itemsize
    needed += int(header.get_data_offset())
    held = _held_bytes(path, gz)
    if held is None:
        return
    if (gz and needed >= 2**32) or needed > held:
        raise InputError(
            path,
            f"the header announces {tuple(shape)} voxels of {header.get_data_dtype()} "
            f"({needed} bytes with the header), the file holds {held}",
        )


def _scaled_c_order(proxy) -> np.ndarray:
    """A NIfTI image's data as float32 in C order (each voxel's curve contiguous): the
    stored values (Fortran order, often int16) converted during the reordering copy
    (`_layout.c_order_copy`), then scaled by ``scl_slope`` and ``scl_inter`` in place.
    nibabel's float32 array, then a C-ordered copy of it, took one more pass over the
    study and one more copy of it (1 GB at 512 x 512 x 8 x 89)."""
    data = c_order_copy(np.asarray(proxy.get_unscaled()))
    slope, inter = float(proxy.slope), float(proxy.inter)
    if slope != 1.0:
        data *= np.float32(slope)
    if inter != 0.0:
        data += np.float32(inter)
    return data


def _load(path: Path) -> tuple[Any, np.ndarray]:
    """(image, data float32 in C order), a gzip stream read to its end so that its CRC is
    checked.

    nibabel reads only the bytes the data need, and Python's gzip checks a stream's CRC-32
    and length only at its end: a corrupted .nii.gz would load as silent garbage. Here the
    stream is opened once, read by nibabel, then read to its end.
    """
    gz = path.name.lower().endswith(".gz")
    try:
        with gzip.open(path, "rb") if gz else open(path, "rb") as fp:
            cls = _image_class(fp.read(4))
            fp.seek(0)
            holder = nib.fileholders.FileHolder(fileobj=fp)
            img = cls.from_file_map({"header": holder, "image": holder})
            _check_size(path, img, gz)
            data = _scaled_c_order(img.dataobj)
            while gz and fp.read(1 << 20):  # to the end: gzip checks the CRC and length there
                pass
    except InputError:
        raise
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise InputError(
            path, f"corrupted or truncated gzip data ({type(exc).__name__}: {exc})"
        ) from None
    except Exception as exc:  # nibabel raises many kinds on corrupt files
        raise InputError(path, f"not a readable NIfTI file ({type(exc).__name__}: {exc})") from None
    return img, data


def _as_4d(path: Path, data: np.ndarray) -> tuple[np.ndarray, int]:
    """4D data (x, y, z, t) and the header axis of time: a 5D (x, y, z, 1, t) image (as
    ISLES 2018 ships CT perfusion) loses its singleton 4th axis."""
    axis = 3
    if data.ndim == 5 and data.shape[3] == 1:
        data, axis = data[:, :, :, 0, :], 4
    elif data.ndim == 5 and data.shape[4] == 1:
        data = data[..., 0]
    if data.ndim != 4 or data.shape[3] < 2 or 0 in data.shape:
        raise InputError(
            path,
            f"expected a 4D image (x, y, z, t) with >= 2 frames and no empty axis, got shape "
            f"{data.shape}",
        )
    return data, axis


def _check_values(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    check_affine(affine, path)
    lo, hi = float(np.min(data)), float(np.max(data))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        bad = ~np.isfinite(data)
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            path,
            f"{int(bad.sum())} NaN or infinite values (first at voxel "
            f"{first[:3]}, frame {first[3]})",
        )
    if lo < -MAX_HU or hi > MAX_HU:
        raise InputError(path, f"values from {lo:g} to {hi:g}: not CT attenuation in HU")


def read_nifti_study(path: str | Path) -> Study:
    """Read a 4D NIfTI (x, y, z, t) in HU as a `Study`.

    Frame times come from the sidecar ``name.json`` (key ``FrameTimes``, in
    ``FrameTimesUnits``, default s) or, without one, from the header's time step and units.
    A 5D image with a singleton 4th (or 5th) axis is read as 4D. A .nii.gz is read to the
    end of its gzip stream, so that a corrupted file fails its CRC check.

    Raises
    ------
    InputError
        Unreadable or corrupted (gzip CRC), not 4D, a header announcing more data than the
        file holds, a non-finite or singular affine, NaN/inf or implausible values, a
        sidecar that is not a UTF-8 JSON object, or missing, non-numeric, non-increasing
        or implausible frame times.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    img, data = _load(path)
    data, time_axis = _as_4d(path, data)
    affine = np.asarray(img.affine, dtype=np.float64)
    _check_values(path, data, affine)
    side = sidecar_path(path)
    extra = read_sidecar(side) if side.exists() else None
    times, origin = _frame_times(path, img, time_axis, data.shape[3], extra)
    _check_times(side if extra is not None and "FrameTimes" in extra else path, times, origin)
    meta: dict[str, Any] = {"times_from": origin}
    meta.update({k: v for k, v in (extra or {}).items() if k != "FrameTimes"})
    return Study(data, affine, times - times[0], source="nifti", path=path, metadata=meta)


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
