"""Choosing the perfusion series of a folder and placing its images on slices."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ...errors import InputError
from .geometry import normal_of
from .headers import POSITION_TOL_MM, DicomFile, Image, label

__all__ = ["select_series", "check_geometry", "assign_slices"]


def _describe(files: list[DicomFile]) -> str:
    ds = files[0].ds
    return (
        f"{files[0].series_uid} ({str(ds.get('SeriesDescription', '')) or 'no description'}, "
        f"{ds.get('Modality', '?')}, {len(files)} files)"
    )


def _is_perfusion(files: list[DicomFile]) -> bool:
    """CT with several images at one slice position."""
    images = [im for f in files for im in f.images]
    if str(files[0].ds.get("Modality", "")).upper() != "CT" or not images:
        return False
    normal = normal_of(images[0].orientation)
    keys = Counter(round(float(im.position @ normal) / POSITION_TOL_MM) for im in images)
    return max(keys.values()) > 1


def select_series(
    folder: Path, files: list[DicomFile], series_uid: str | None, problems: list[str]
) -> list[DicomFile]:
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
        candidates = [uid for uid, fs in by_uid.items() if _is_perfusion(fs)]
        if not candidates:
            raise InputError(
                folder,
                f"{len(by_uid)} series and no CT perfusion series among them "
                f"(CT with several frames per slice position): {listing}",
            )
        if len(candidates) > 1:
            found = "; ".join(_describe(by_uid[uid]) for uid in candidates)
            raise InputError(
                folder,
                f"{len(candidates)} CT perfusion series: {found}; pass series_uid= to choose one",
            )
        chosen = candidates[0]
    for uid, fs in by_uid.items():
        if uid != chosen:
            problems.append(f"ignored series {_describe(fs)}")
    series = by_uid[chosen]
    modality = str(series[0].ds.get("Modality", ""))
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
