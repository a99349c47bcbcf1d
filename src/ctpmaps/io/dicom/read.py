"""Reading a CT perfusion study (or one 3D volume) from a folder of DICOM files.

Two passes: a header pass (no pixel data read) lists every image with its position,
geometry and time, picks the series and orders the frames; a pixel pass (`pixels`) then
decodes only the files used into a preallocated ``(x, y, z, t)`` float32 array.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ..study import Study, check_affine
from .geometry import LPS_RAS, normal_of
from .headers import label, read_headers
from .image import Image
from .metadata import series_metadata
from .order import order_frames
from .pixels import read_pixels
from .series import assign_slices, check_geometry, select_series
from .source import ImageRef, SourceImages, kept_header
from .values import text

__all__ = ["read_dicom_study", "read_dicom_volume", "Volume"]

log = logging.getLogger(__name__)


def _affine(
    per_slice: list[list[Image]], centres: np.ndarray, thickness: float | None, problems: list[str]
) -> np.ndarray:
    """Voxel (column, row, slice) -> RAS+ mm, from the first frame of each slice."""
    first = per_slice[0][0]
    dr, dc = first.spacing
    lps = np.eye(4)
    lps[:3, 0] = first.orientation[:3] * dc
    lps[:3, 1] = first.orientation[3:] * dr
    lps[:3, 3] = first.position
    nz = len(per_slice)
    if nz > 1:
        lps[:3, 2] = (per_slice[-1][0].position - first.position) / (nz - 1)
        gaps = np.diff(centres)
        if gaps.max() - gaps.min() > max(0.01, 0.01 * float(np.median(gaps))):
            problems.append(
                f"slice gaps vary from {gaps.min():.3f} to {gaps.max():.3f} mm; the "
                f"affine assumes an even {gaps.mean():.3f} mm"
            )
    else:
        lps[:3, 2] = normal_of(first.orientation) * (thickness or 1.0)
    check_affine(lps, first.path)
    return LPS_RAS @ lps


def _source_images(per_slice: list[list[Image]], problems: list[str]) -> SourceImages:
    """Pixel-less headers of the first image in time of each slice and every image's UIDs."""

    def ref(im: Image) -> ImageRef:
        frame = None if im.frame is None else im.frame + 1
        sop_class = text(im.header, "SOPClassUID", im.path)
        return ImageRef(sop_class, text(im.header, "SOPInstanceUID", im.path), frame)

    multiframe = any(im.frame is not None for frames in per_slice for im in frames)
    firsts = [frames[0] for frames in per_slice]
    kept = firsts[:1] if multiframe else firsts
    return SourceImages(
        headers=tuple(kept_header(im.header, im.path, problems) for im in kept),
        images=tuple(tuple(ref(im) for im in frames) for frames in per_slice),
        multiframe=multiframe,
    )


# ----------------------------------------------------------------------------- public
@contextlib.contextmanager
def _naming_skipped(skipped: list[str]) -> Iterator[None]:
    """An error about the series also lists the files skipped as unreadable: one of them
    may be the missing frame."""
    try:
        yield
    except InputError as exc:
        if not skipped:
            raise
        shown = "; ".join(skipped[:3]) + (
            f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        )
        raise InputError(exc.source, f"{exc.problem} (files skipped: {shown})") from exc


def read_dicom_study(
    folder: str | Path,
    *,
    series_uid: str | None = None,
    frame_interval: float | None = None,
    workers: int | None = None,
) -> Study:
    """Read a CT perfusion series from a folder of DICOM files (any names, any order).

    The folder is searched recursively. Images are grouped by slice position (the
    *ImagePositionPatient* projected on the slice normal, the cross product of the
    *ImageOrientationPatient* cosines) and ordered in time by, in this order of preference,
    *AcquisitionDateTime* (or *AcquisitionDate* + *AcquisitionTime*), *ContentTime* and
    *TriggerTime*: the first one present in every image and not repeated within a slice.
    Instance numbers (or *TemporalPositionIndex*) are used only when no times are usable and
    ``frame_interval`` is given. A frame's time is the median of its slices' times.

    Pixel values go through pydicom's modality LUT (*RescaleSlope/Intercept*) to HU;
    compressed transfer syntaxes are decoded by pydicom's plugins; enhanced multi-frame CT is
    read through its per-frame functional groups.

    Parameters
    ----------
    folder : str or Path
        Folder holding the series (or one enhanced multi-frame file).
    series_uid : str or None
        *SeriesInstanceUID* to read when the folder holds several CT perfusion series.
    frame_interval : float or None
        Time between frames in s, used only when the files carry no usable times.
    workers : int or None
        Threads decoding compressed images (default up to 4).

    Returns
    -------
    Study
        ``frames`` (x, y, z, t) float32 HU with x along columns, y along rows and z
        ascending along the slice normal; ``affine`` voxel -> RAS+ mm; ``times`` in s from
        the first frame; ``source="dicom"``; metadata (series_description, patient_id,
        study/series/frame-of-reference UIDs, modality, kvp, exposure_mas, manufacturer,
        transfer_syntax, slice_thickness_mm), the non-fatal problems found and
        ``source_images`` (the source headers the derived outputs reference).

    Files that are not images of a series (not DICOM, unreadable, DICOMDIR, index files,
    reports) are skipped and listed in ``problems``; among several series, localizers,
    secondary captures, derived and non-CT series are never chosen (see
    `ctpmaps.io.dicom.series.select_series`).

    Raises
    ------
    InputError
        Naming the file or folder at fault and, for a header value, the tag: no image
        file, several series that cannot be told apart, a non-CT series, a malformed or
        implausible value in a file of the series (geometry, rescale, pixel description,
        times, metadata), a truncated file, missing or duplicate frames, slices with
        different frame counts, missing, non-monotonic or implausible times, inconsistent
        geometry, or a compression without an installed decoder.

    Examples
    --------
    >>> study = read_dicom_study("ctp/")  # doctest: +SKIP
    >>> study.frames.shape, study.times[:3]  # doctest: +SKIP
    ((512, 512, 8, 89), array([0. , 0.5, 1. ]))
    """
    folder = Path(folder)
    if frame_interval is not None and not frame_interval > 0:
        raise InputError("frame_interval", f"expected a positive time in s, got {frame_interval}")
    problems: list[str] = []
    files, skipped = read_headers(folder, problems)
    with _naming_skipped(skipped):
        series = select_series(folder, files, series_uid, problems)
        images = [im for f in series for im in f.images]
        check_geometry(images)
        centres = assign_slices(images)
        if len(images) == len(centres):
            raise InputError(folder, "one frame per slice position: not a perfusion (time) series")
        per_slice, times = order_frames(folder, images, centres, frame_interval, problems)
    meta = series_metadata(series[0].path, series[0].ds)
    affine = _affine(per_slice, centres, meta.get("slice_thickness_mm"), problems)
    source = _source_images(per_slice, problems)
    frames = read_pixels(per_slice, workers)
    for problem in problems:
        log.warning("%s: %s", folder, problem)
    return Study(
        frames,
        affine,
        times,
        source="dicom",
        path=folder,
        metadata=meta,
        problems=problems,
        source_images=source,
    )


@dataclass
class Volume:
    """One 3D image read from DICOM: ``data`` (x, y, z) float32, ``affine`` voxel -> RAS+."""

    data: np.ndarray
    affine: np.ndarray
    metadata: dict[str, Any]
    problems: list[str]


def read_dicom_volume(folder: str | Path, *, workers: int | None = None) -> Volume:
    """Read a single-series 3D volume (one image per slice position), e.g. a perfusion map.

    Parameters
    ----------
    folder : str or Path
        Folder of one series, any modality, one image per slice.
    workers : int or None
        Threads decoding compressed images.

    Returns
    -------
    Volume
        Values after the modality LUT (physical units, not display values), ``(x, y, z)``.

    Raises
    ------
    InputError
        As `read_dicom_study`, and when the folder holds several series or two images at
        one slice position.
    """
    folder = Path(folder)
    problems: list[str] = []
    files, _ = read_headers(folder, problems)
    uids = {f.series_uid for f in files}
    if len(uids) > 1:
        raise InputError(folder, f"expected one series, found {len(uids)}: {sorted(uids)}")
    for f in files:
        if f.defect:
            raise InputError(f.path, f.defect)
    images = [im for f in files for im in f.images]
    check_geometry(images)
    centres = assign_slices(images)
    per_slice: list[list[Image]] = [[] for _ in centres]
    for im in images:
        per_slice[im.slice_index].append(im)
    for frames in per_slice:
        if len(frames) > 1:
            raise InputError(
                frames[1].path,
                f"{label(frames[0])} and {label(frames[1])} are "
                f"both at slice position {frames[0].slice_pos:.2f} mm",
            )
    meta = series_metadata(files[0].path, files[0].ds)
    affine = _affine(per_slice, centres, meta.get("slice_thickness_mm"), problems)
    data = read_pixels(per_slice, workers)[..., 0]
    return Volume(data, affine, meta, problems)
