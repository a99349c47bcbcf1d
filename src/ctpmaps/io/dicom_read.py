"""Reading a CT perfusion study from a folder of DICOM files.

Two passes: a header pass (``stop_before_pixels``) lists every image with its position,
geometry and time, picks the series and orders the frames; a pixel pass then decodes only
the files used, in a thread pool, into a preallocated ``(x, y, z, t)`` float32 array.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, pixel_array

from ..errors import InputError
from .dicom import (
    POSITION_TOL_MM,
    TIME_NAMES,
    TIME_SOURCES,
    DicomFile,
    Image,
    check_decoders,
    label,
    list_files,
    map_threads,
    normal_of,
    read_header,
    series_metadata,
)
from .dicom_write import LPS_RAS
from .study import Study

__all__ = ["read_dicom_study", "read_dicom_volume", "Volume"]

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- series
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


def _select_series(
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


def _check_geometry(images: list[Image]) -> None:
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


def _assign_slices(images: list[Image]) -> np.ndarray:
    """Set each image's slice index (ascending along the normal); slice centres in mm."""
    normal = normal_of(images[0].orientation)
    pos = np.array([im.position @ normal for im in images])
    order = np.argsort(pos, kind="stable")
    labels = np.empty(len(pos), dtype=int)
    labels[order] = np.concatenate([[0], np.cumsum(np.diff(pos[order]) > POSITION_TOL_MM)])
    for im, p, index in zip(images, pos, labels, strict=True):
        im.slice_pos, im.slice_index = float(p), int(index)
    return np.array([pos[labels == i].mean() for i in range(labels.max() + 1)])


# ----------------------------------------------------------------------------- time order
def _first_duplicate(images: list[Image], values: np.ndarray) -> tuple[Image, Image] | None:
    """Two images of one slice whose ``values`` agree within 1 ms, if any."""
    slices = np.array([im.slice_index for im in images])
    order = np.lexsort((values, slices))
    same = (np.diff(slices[order]) == 0) & (np.abs(np.diff(values[order])) < 1e-3)
    if not same.any():
        return None
    i = int(np.argmax(same))
    return images[order[i]], images[order[i + 1]]


def _duplicate_error(pair: tuple[Image, Image], what: str) -> InputError:
    a, b = pair
    return InputError(
        b.path,
        f"duplicate frame: {label(a)} and {label(b)} have the same slice "
        f"position ({a.slice_pos:.2f} mm) and {what}",
    )


def _unwrap_midnight(values: np.ndarray, source: str, problems: list[str]) -> np.ndarray:
    """Times without a date that cross midnight: add a day to the early ones."""
    if values.max() - values.min() <= 43200:
        return values
    problems.append(
        f"{TIME_NAMES[source]} crosses midnight (no date given): times after "
        "midnight were moved to the next day"
    )
    return np.where(values < 43200, values + 86400, values)


def _time_values(
    folder: Path, images: list[Image], frame_interval: float | None, problems: list[str]
) -> np.ndarray:
    """One time (s) per image from the best source; see `read_dicom_study` for the order."""
    duplicate = None
    for source in TIME_SOURCES:
        if any(im.times[source] is None for im in images):
            continue
        values = np.array([im.times[source] for im in images], dtype=np.float64)
        if not all(im.dated for im in images) and source != "trigger":
            values = _unwrap_midnight(values, source, problems)
        pair = _first_duplicate(images, values)
        if pair is None:
            if duplicate is not None:
                problems.append(
                    f"{TIME_NAMES[duplicate[0]]} repeats within a slice "
                    f"({label(duplicate[1][0])}, {label(duplicate[1][1])}): frames "
                    f"ordered by {TIME_NAMES[source]}"
                )
            return values
        duplicate = duplicate or (source, pair)
    if frame_interval is not None:
        return _index_values(images, frame_interval, problems)
    if duplicate is not None:
        raise _duplicate_error(duplicate[1], f"time ({TIME_NAMES[duplicate[0]]})")
    for source in TIME_SOURCES:
        lacking = [im for im in images if im.times[source] is None]
        if len(lacking) < len(images):
            raise InputError(
                lacking[0].path,
                f"has no {TIME_NAMES[source]} while other files "
                "of the series do; pass frame_interval (s) to order frames by "
                "InstanceNumber instead",
            )
    raise InputError(
        folder,
        "no AcquisitionDateTime/AcquisitionTime, ContentTime or TriggerTime "
        "in any file: frame times are unknown; pass frame_interval (s) to order "
        "frames by InstanceNumber",
    )


def _index_values(images: list[Image], frame_interval: float, problems: list[str]) -> np.ndarray:
    """Last resort: rank by TemporalPositionIndex or InstanceNumber, times from the interval."""
    if all(im.temporal_index is not None for im in images):
        name, keys = "TemporalPositionIndex", [im.temporal_index for im in images]
    else:
        name, keys = "InstanceNumber", [im.instance for im in images]
        if any(k is None for k in keys):
            lacking = next(im for im, k in zip(images, keys, strict=True) if k is None)
            raise InputError(
                lacking.path,
                "has neither frame times nor an InstanceNumber: its place in time is unknown",
            )
    values = np.array(keys, dtype=np.float64) + np.array([im.frame or 0 for im in images]) * 1e-6
    pair = _first_duplicate(images, values)
    if pair is not None:
        raise _duplicate_error(pair, f"{name} and no frame times")
    ranks = np.empty(len(images))
    slices = np.array([im.slice_index for im in images])
    for s in np.unique(slices):
        idx = np.flatnonzero(slices == s)
        ranks[idx[np.argsort(values[idx])]] = np.arange(len(idx))
    problems.append(
        f"no usable frame times: frames ordered by {name}, "
        f"{frame_interval:g} s apart (frame_interval)"
    )
    return ranks * frame_interval


def _missing_times(ref: np.ndarray, mine: np.ndarray) -> list[float]:
    """Reference times a slice lacks: greedily leave out the one whose removal fits best."""
    kept, missing = list(ref), []
    while len(kept) > len(mine):
        best = min(range(len(kept)), key=lambda j: _misfit(np.delete(kept, j), mine))
        missing.append(kept.pop(best))
    return sorted(missing)


def _misfit(ref: np.ndarray, mine: np.ndarray) -> float:
    n = min(len(ref), len(mine))
    return float(np.abs(ref[:n] - mine[:n]).sum())


def _check_counts(
    folder: Path, per_slice: list[list[Image]], values: dict[int, float], centres: np.ndarray
) -> None:
    """Every slice has the same number of frames, else say which is missing or extra."""
    counts = [len(frames) for frames in per_slice]
    if len(set(counts)) == 1:
        return
    usual = Counter(counts).most_common(1)[0][0]
    ref = np.median([[values[id(im)] for im in f] for f in per_slice if len(f) == usual], axis=0)
    half = 0.5 * float(np.median(np.diff(ref))) if usual > 1 else 0.5
    for s, frames in enumerate(per_slice):
        n = len(frames)
        if n == usual:
            continue
        mine = np.array([values[id(im)] for im in frames])
        head = f"the slice at {centres[s]:.2f} mm has {n} frames, the other slices {usual}"
        if n < usual:
            when = ", ".join(f"{t - ref[0]:.2f} s" for t in _missing_times(ref, mine))
            raise InputError(
                folder,
                f"{head}: missing frame at t = {when} (one of its files is {frames[0].path.name})",
            )
        extra = [im for im, t in zip(frames, mine, strict=True) if np.abs(ref - t).min() > half]
        culprit = extra[0] if extra else frames[-1]
        raise InputError(
            culprit.path, f"{head}; {label(culprit)} has no counterpart in the other slices"
        )


def _order_frames(
    folder: Path,
    images: list[Image],
    centres: np.ndarray,
    frame_interval: float | None,
    problems: list[str],
) -> tuple[list[list[Image]], np.ndarray]:
    """Images as ``[slice][frame]`` in time order, and the frame times (s from the first)."""
    raw = _time_values(folder, images, frame_interval, problems)
    values = {id(im): float(v) for im, v in zip(images, raw, strict=True)}
    per_slice: list[list[Image]] = [[] for _ in centres]
    for im in images:
        per_slice[im.slice_index].append(im)
    for frames in per_slice:
        frames.sort(key=lambda im: values[id(im)])
    _check_counts(folder, per_slice, values, centres)
    grid = np.array([[values[id(im)] for im in frames] for frames in per_slice])  # (z, t)
    late, early = grid.max(axis=0), grid.min(axis=0)
    for k in np.flatnonzero(late[:-1] >= early[1:]):
        a = per_slice[int(np.argmax(grid[:, k]))][k]
        b = per_slice[int(np.argmin(grid[:, k + 1]))][k + 1]
        raise InputError(
            b.path,
            f"frame times are not monotonic across slices: frame {k + 2} "
            f"({label(b)}, slice at {b.slice_pos:.2f} mm) is not later than frame "
            f"{k + 1} ({label(a)}, slice at {a.slice_pos:.2f} mm), so frames "
            "cannot be matched across slices",
        )
    times = np.median(grid, axis=0)
    times -= times[0]
    if len(times) > 1:
        spread = float((late - early).max())
        interval = float(np.median(np.diff(times)))
        if spread > 0.5 * interval:
            problems.append(
                f"slices of one frame were acquired up to {spread:.2f} s apart, more "
                f"than half the frame interval ({interval:.2f} s); frame times are "
                "the median over slices"
            )
    return per_slice, times


# ----------------------------------------------------------------------------- pixels
def _physical_into(dest: np.ndarray, stored: np.ndarray, ds: Dataset) -> None:
    """``dest`` (columns, rows) float32 <- stored (rows, columns) through the modality LUT.

    A *Modality LUT Sequence* goes through `pydicom.pixels.apply_modality_lut`; the usual
    linear rescale is the same operation (``stored * slope + intercept``) done in place in
    float32, avoiding the float64 intermediate pydicom returns.
    """
    if "ModalityLUTSequence" in ds:
        dest[...] = apply_modality_lut(stored, ds).T
        return
    dest[...] = stored.T
    slope, intercept = float(ds.get("RescaleSlope", 1.0)), float(ds.get("RescaleIntercept", 0.0))
    if slope != 1.0:
        dest *= np.float32(slope)
    if intercept != 0.0:
        dest += np.float32(intercept)


#: Frames of one slice are gathered (K frames x 64 columns blocks) before being written
#: into the t-last (x, y, z, t) array: ~4x faster than scattering one image at a time.
_CHUNK, _BLOCK = 16, 64


def _load(path: Path, size: tuple[int, int], plugin: str) -> np.ndarray:
    """Stored pixel values of one file: (rows, columns), or (frames, rows, columns)."""
    try:
        arr = pixel_array(path, decoding_plugin=plugin)
    except Exception as exc:  # decoders and truncated files raise many kinds
        raise InputError(path, f"cannot read its pixel data ({type(exc).__name__}: {exc})") from exc
    if arr.shape[-2:] != size:
        raise InputError(
            path,
            f"pixel data of shape {arr.shape}, expected {size[0]} x {size[1]} (Rows x Columns)",
        )
    return arr


def _read_pixels(per_slice: list[list[Image]], workers: int | None) -> np.ndarray:
    """Decode and rescale every image into a C-ordered (x, y, z, t) float32 array.

    Files are decoded in a thread pool (the decoders release the GIL), a chunk of frames of
    one slice at a time; multi-frame files are decoded once and kept until the end.
    """
    size = per_slice[0][0].size
    nz, nt = len(per_slice), len(per_slice[0])
    out = np.empty((size[1], size[0], nz, nt), dtype=np.float32)
    multi: dict[Path, np.ndarray] = {}

    def stored(im: Image) -> np.ndarray:
        if im.frame is None:
            return _load(im.path, size, im.plugin)
        if im.path not in multi:
            multi[im.path] = _load(im.path, size, im.plugin)
        arr = multi[im.path]
        return arr if arr.ndim == 2 else arr[im.frame]

    n_workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(n_workers) as pool:
        for s, frames in enumerate(per_slice):
            for k0 in range(0, nt, _CHUNK):
                chunk_images = frames[k0 : k0 + _CHUNK]
                if any(im.frame is not None for im in chunk_images):
                    arrays = [stored(im) for im in chunk_images]
                else:
                    arrays = list(pool.map(stored, chunk_images))
                chunk = np.empty((len(arrays), size[1], size[0]), dtype=np.float32)
                for j, (im, arr) in enumerate(zip(chunk_images, arrays, strict=True)):
                    _physical_into(chunk[j], arr, im.rescale)
                k1 = k0 + len(arrays)
                for x0 in range(0, size[1], _BLOCK):
                    block = chunk[:, x0 : x0 + _BLOCK]
                    out[x0 : x0 + _BLOCK, :, s, k0:k1] = block.transpose(1, 2, 0)
    return out


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
    return LPS_RAS @ lps


# ----------------------------------------------------------------------------- public
def _headers(folder: Path, problems: list[str], workers: int | None) -> list[DicomFile]:
    return map_threads(read_header, list_files(folder, problems), workers)


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
        Threads reading files (default up to 4).

    Returns
    -------
    Study
        ``frames`` (x, y, z, t) float32 HU with x along columns, y along rows and z
        ascending along the slice normal; ``affine`` voxel -> RAS+ mm; ``times`` in s from
        the first frame; ``source="dicom"``; metadata (series_description, patient_id,
        study/series/frame-of-reference UIDs, modality, kvp, exposure_mas, manufacturer,
        transfer_syntax, slice_thickness_mm) and the non-fatal problems found.

    Raises
    ------
    InputError
        Naming the file or folder at fault: empty folder, a non-DICOM or truncated file,
        several series that cannot be told apart, a non-CT series, missing or duplicate
        frames, slices with different frame counts, missing or non-monotonic times,
        inconsistent geometry, or a compression without an installed decoder.

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
    series = _select_series(folder, _headers(folder, problems, workers), series_uid, problems)
    images = [im for f in series for im in f.images]
    _check_geometry(images)
    centres = _assign_slices(images)
    if len(images) == len(centres):
        raise InputError(folder, "one frame per slice position: not a perfusion (time) series")
    per_slice, times = _order_frames(folder, images, centres, frame_interval, problems)
    check_decoders(series)
    meta = series_metadata(series[0].ds)
    frames = _read_pixels(per_slice, workers)
    affine = _affine(per_slice, centres, meta.get("slice_thickness_mm"), problems)
    for problem in problems:
        log.warning("%s: %s", folder, problem)
    return Study(
        frames, affine, times, source="dicom", path=folder, metadata=meta, problems=problems
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
        Threads reading files.

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
    files = _headers(folder, problems, workers)
    uids = {f.series_uid for f in files}
    if len(uids) > 1:
        raise InputError(folder, f"expected one series, found {len(uids)}: {sorted(uids)}")
    for f in files:
        if f.defect:
            raise InputError(f.path, f.defect)
    images = [im for f in files for im in f.images]
    _check_geometry(images)
    centres = _assign_slices(images)
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
    check_decoders(files)
    meta = series_metadata(files[0].ds)
    data = _read_pixels(per_slice, workers)[..., 0]
    affine = _affine(per_slice, centres, meta.get("slice_thickness_mm"), problems)
    return Volume(data, affine, meta, problems)
