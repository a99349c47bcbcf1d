"""One 2D image of a series: where it lies, when it was acquired, how its pixels map to HU.

Every number is checked where it is read (`values`): positions, orientation and spacing
finite and plausible, the orientation's cosines unit and orthogonal, the rescale finite
with a non-zero slope, a Modality LUT Sequence applicable by pydicom.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut

from ...errors import InputError
from .times import date_time, dt_seconds
from .values import MISSING, number, numbers, raw, tag_name, text

__all__ = [
    "Image",
    "classic_image",
    "placement",
    "rescale_of",
    "check_lut",
    "POSITION_TOL_MM",
    "TIME_SOURCES",
    "TIME_NAMES",
]

#: Slice positions along the normal closer than this (mm) are one slice.
POSITION_TOL_MM = 0.05

TIME_SOURCES = ("acquisition", "content", "trigger")
TIME_NAMES = {
    "acquisition": "AcquisitionDateTime/AcquisitionTime",
    "content": "ContentTime",
    "trigger": "TriggerTime",
}

#: Plausible bounds (mm): a position within 100 m of the origin, a pixel below 100 mm.
_MAX_POSITION_MM = 1e5
_MAX_SPACING_MM = 100.0


@dataclass
class Image:
    """One 2D image: a single-frame file, or one frame of an enhanced multi-frame file."""

    path: Path
    frame: int | None  # index in a multi-frame file
    position: np.ndarray  # ImagePositionPatient (LPS, mm)
    orientation: np.ndarray  # ImageOrientationPatient (6,)
    spacing: np.ndarray  # PixelSpacing (row, column) mm
    size: tuple[int, int]  # (rows, columns)
    times: dict[str, float | None]  # source -> seconds (absolute, per source)
    dated: bool  # times carry a date (no midnight ambiguity)
    instance: int | None
    temporal_index: int | None
    header: Dataset  # the file's header (pixel data not read)
    slope: float = 1.0  # HU = stored * slope + intercept ...
    intercept: float = 0.0
    lut: Dataset | None = field(default=None, repr=False)  # ... or this Modality LUT
    plugin: str = ""  # pydicom decoding plugin to ask for ("" lets pydicom choose)
    native: tuple[int, str] | None = None  # (file offset, dtype) of uncompressed pixels
    slice_pos: float = 0.0  # position along the series' slice normal (mm)
    slice_index: int = -1


def placement(
    path: Path, where: Dataset, orient: Dataset, measures: Dataset
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(position, orientation, spacing) from the datasets holding each, checked."""
    position = numbers(where, "ImagePositionPatient", path, 3, limit=_MAX_POSITION_MM)
    orientation = numbers(orient, "ImageOrientationPatient", path, 6, limit=1.5)
    spacing = numbers(measures, "PixelSpacing", path, 2, limit=_MAX_SPACING_MM + 1)
    row, col = orientation[:3], orientation[3:]
    if abs(np.linalg.norm(row) - 1) > 1e-2 or abs(np.linalg.norm(col) - 1) > 1e-2:
        raise InputError(
            path,
            f"{tag_name('ImageOrientationPatient')}: expected two unit vectors, got "
            f"{orientation.tolist()}",
        )
    if abs(float(row @ col)) > 1e-2:
        raise InputError(
            path,
            f"{tag_name('ImageOrientationPatient')}: rows and columns are not orthogonal "
            f"({orientation.tolist()})",
        )
    if not np.all((spacing > 0) & (spacing <= _MAX_SPACING_MM)):
        raise InputError(
            path, f"{tag_name('PixelSpacing')}: expected (0, 100] mm, got {spacing.tolist()}"
        )
    return position, orientation, spacing


def rescale_of(path: Path, ds: Dataset, default: Dataset | None = None) -> tuple[float, float]:
    """(slope, intercept) from ``ds``, else ``default``: finite, slope not zero."""
    pair = []
    for keyword, fallback, bound in (("RescaleSlope", 1.0, 1e4), ("RescaleIntercept", 0.0, 1e5)):
        source = ds if keyword in ds or default is None else default
        pair.append(number(source, keyword, path, default=fallback, low=-bound, high=bound))
    if pair[0] == 0:
        raise InputError(path, f"{tag_name('RescaleSlope')}: expected a non-zero slope, got 0")
    return pair[0], pair[1]


def check_lut(path: Path, ds: Dataset) -> Dataset | None:
    """The dataset holding a usable Modality LUT Sequence, None without one.

    pydicom applies it; here it is tried once on the stored range so that a malformed
    sequence is an `InputError` naming the tag, not a failure at decoding.
    """
    value = raw(ds, "ModalityLUTSequence", path)
    if value is MISSING:
        return None
    try:
        signed = int(ds.get("PixelRepresentation", 0)) == 1
        bits = int(ds.get("BitsStored", 16))
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        probe = np.array([lo, 0, hi], dtype=np.int64)
        mapped = np.asarray(apply_modality_lut(probe, ds), dtype=np.float64)
    except Exception as exc:  # pydicom raises many kinds on malformed LUTs
        raise InputError(
            path, f"{tag_name('ModalityLUTSequence')}: unusable ({type(exc).__name__}: {exc})"
        ) from None
    if not np.isfinite(mapped).all():
        raise InputError(path, f"{tag_name('ModalityLUTSequence')}: maps to non-finite values")
    return ds


def _classic_times(path: Path, ds: Dataset) -> tuple[dict[str, float | None], bool]:
    dated = True
    acq = dt_seconds(text(ds, "AcquisitionDateTime", path))
    if acq is None:
        acq, dated = date_time(text(ds, "AcquisitionDate", path), text(ds, "AcquisitionTime", path))
    content, content_dated = date_time(text(ds, "ContentDate", path), text(ds, "ContentTime", path))
    trigger = number(ds, "TriggerTime", path, low=-1e7, high=1e8)  # ms
    times = {
        "acquisition": acq,
        "content": content,
        "trigger": None if trigger is None else trigger / 1000.0,
    }
    return times, (dated if acq is not None else content_dated)


def _index(ds: Dataset, keyword: str, path: Path) -> int | None:
    """An ordering index (*InstanceNumber*, *TemporalPositionIndex*): None if unusable."""
    try:
        value = number(ds, keyword, path)
    except InputError:
        return None
    return int(value) if value is not None and value == int(value) else None


def classic_image(path: Path, ds: Dataset) -> Image:
    """The one image of a single-frame file, checked (`InputError` naming file and tag)."""
    position, orientation, spacing = placement(path, ds, ds, ds)
    times, dated = _classic_times(path, ds)
    slope, intercept = rescale_of(path, ds)
    return Image(
        path=path,
        frame=None,
        position=position,
        orientation=orientation,
        spacing=spacing,
        size=(int(ds.Rows), int(ds.Columns)),
        times=times,
        dated=dated,
        instance=_index(ds, "InstanceNumber", path),
        temporal_index=_index(ds, "TemporalPositionIndex", path),
        header=ds,
        slope=slope,
        intercept=intercept,
        lut=check_lut(path, ds),
    )
