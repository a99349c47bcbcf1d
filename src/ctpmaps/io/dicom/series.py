"""Choosing the perfusion series of a folder and placing its images on slices."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from pydicom.uid import UID

from ...errors import InputError
from .geometry import normal_of
from .headers import DicomFile, label
from .image import POSITION_TOL_MM, Image

__all__ = ["select_series", "check_geometry", "assign_slices"]


#: SOP classes of CT images a perfusion series may consist of.
_CT_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
        "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
        "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT Image Storage
    }
)
#: ImageType values of planning images (scanner vendors' names for a localizer).
_PLANNING = frozenset({"LOCALIZER", "SCOUT", "SURVIEW", "TOPOGRAM", "SCANOGRAM", "SCOUTVIEW"})


def _value(ds, keyword: str) -> str:
    """A text value for messages and choices ("" when absent or unreadable)."""
    try:
        value = ds.get(keyword, "")
        if not isinstance(value, str) and hasattr(value, "__iter__"):
            return "\\".join(str(v) for v in value)
        return str(value or "").strip()
    except Exception:  # a malformed value: said where the series is read, if it is
        return ""


def _describe(files: list[DicomFile]) -> str:
    ds = files[0].ds
    return (
        f"{files[0].series_uid} ({_value(ds, 'SeriesDescription') or 'no description'}, "
        f"{_value(ds, 'Modality') or '?'}, {len(files)} files)"
    )


def _not_perfusion(files: list[DicomFile]) -> str:
    """Why a series cannot be the perfusion series ("" when it can)."""
    ds = files[0].ds
    modality = _value(ds, "Modality").upper()
    if modality != "CT":
        return f"modality {modality or 'missing'}"
    sop = _value(ds, "SOPClassUID")
    if sop not in _CT_CLASSES:
        return f"not CT images ({UID(sop).name if sop else 'no SOPClassUID'})"
    image_type = _value(ds, "ImageType").upper().split("\\")
    if _PLANNING & set(image_type):
        return f"a localizer (ImageType {'/'.join(image_type)})"
    if image_type[0] == "DERIVED":
        return f"derived images (ImageType {'/'.join(image_type)})"
    images = [im for f in files for im in f.images]
    if not images:
        return "no image that can be placed"
    normal = normal_of(images[0].orientation)
    keys = Counter(round(float(im.position @ normal) / POSITION_TOL_MM) for im in images)
    if max(keys.values()) < 2:
        return "one image per slice position"
    return ""


def select_series(
    folder: Path, files: list[DicomFile], series_uid: str | None, problems: list[str]
) -> list[DicomFile]:
    """The files of the perfusion series: ``series_uid``'s, the only series, or the only
    candidate (CT images, not localizers, not derived, several per slice position).

    Raises
    ------
    InputError
        No such series, no candidate or several, a non-CT series, or a file of the chosen
        series with a defect (naming the file and the problem).
    """
    by_uid: dict[str, list[DicomFile]] = {}
    for f in files:
        by_uid.setdefault(f.series_uid, []).append(f)
    listing = "; ".join(_describe(fs) for fs in by_uid.values())
    if series_uid is not None:
        if series_uid not in by_uid:
            raise InputError("series_uid", f"no series {series_uid} in {folder}; found {listing}")
        chosen = series_uid
    elif len(by_uid) == 1:
        chosen = next(iter(by_uid))
    else:
        why = {uid: _not_perfusion(fs) for uid, fs in by_uid.items()}
        candidates = [uid for uid, reason in why.items() if not reason]
        if not candidates:
            reasons = "; ".join(f"{_describe(by_uid[uid])}: {why[uid]}" for uid in by_uid)
            raise InputError(
                folder,
                f"{len(by_uid)} series and no CT perfusion series among them "
                f"(CT with several frames per slice position): {reasons}",
            )
        if len(candidates) > 1:
            found = "; ".join(_describe(by_uid[uid]) for uid in candidates)
            raise InputError(
                folder,
                f"{len(candidates)} CT perfusion series: {found}; choose one with --series-uid "
                "UID (series_uid= in Python)",
            )
        chosen = candidates[0]
    for uid, fs in by_uid.items():
        if uid != chosen:
            problems.append(f"ignored series {_describe(fs)}")
    series = by_uid[chosen]
    modality = _value(series[0].ds, "Modality")
    if modality.upper() != "CT":
        raise InputError(
            series[0].path, f"modality is {modality!r}, expected 'CT' (a CT perfusion series)"
        )
    for f in series:
        if f.defect:
            raise InputError(f.path, f.defect)
    return series


def check_geometry(images: list[Image]) -> None:
    """Every image has the usual (most common) size, orientation and pixel spacing."""

    def key(im: Image) -> tuple:
        return im.size, tuple(np.round(im.orientation, 4)), tuple(np.round(im.spacing, 4))

    usual = Counter(key(im) for im in images).most_common(1)[0][0]
    ref = next(im for im in images if key(im) == usual)
    where = label(ref)
    for im in images:
        if im.size != ref.size:
            raise InputError(
                im.path,
                f"image size {im.size[0]} x {im.size[1]} (rows x columns) "
                f"differs from {ref.size[0]} x {ref.size[1]} in {where} and most others",
            )
        if np.abs(im.orientation - ref.orientation).max() > 1e-4:
            raise InputError(
                im.path,
                f"ImageOrientationPatient {im.orientation.tolist()} differs "
                f"from {ref.orientation.tolist()} in {where} and most others",
            )
        if np.abs(im.spacing - ref.spacing).max() > 1e-4 * float(ref.spacing.max()):
            raise InputError(
                im.path,
                f"PixelSpacing {im.spacing.tolist()} differs from "
                f"{ref.spacing.tolist()} in {where} and most others",
            )


def assign_slices(images: list[Image]) -> np.ndarray:
    """Set each image's slice index (ascending along the normal); slice centres in mm."""
    normal = normal_of(images[0].orientation)
    pos = np.array([im.position @ normal for im in images])
    order = np.argsort(pos, kind="stable")
    labels = np.empty(len(pos), dtype=int)
    labels[order] = np.concatenate([[0], np.cumsum(np.diff(pos[order]) > POSITION_TOL_MM)])
    for im, p, index in zip(images, pos, labels, strict=True):
        im.slice_pos, im.slice_index = float(p), int(index)
    return np.array([pos[labels == i].mean() for i in range(labels.max() + 1)])
