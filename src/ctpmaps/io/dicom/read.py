"""Reading a CT perfusion study (or one 3D volume) from a folder of DICOM files.

Two passes: a header pass (``stop_before_pixels``) lists every image with its position,
geometry and time, picks the series and orders the frames; a pixel pass then decodes only
the files used, in a thread pool, into a preallocated ``(x, y, z, t)`` float32 array.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, pixel_array

from ...errors import InputError
from ..study import Study
from .geometry import LPS_RAS, normal_of
from .headers import (
    DicomFile,
    Image,
    check_decoders,
    label,
    list_files,
    map_threads,
    read_header,
    series_metadata,
)
from .order import order_frames
from .series import assign_slices, check_geometry, select_series
from .source import ImageRef, SourceImages, pixel_less

__all__ = ["read_dicom_study", "read_dicom_volume", "Volume"]

log = logging.getLogger(__name__)


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


def _source_images(per_slice: list[list[Image]]) -> SourceImages:
    """Pixel-less headers of the first image in time of each slice and every image's UIDs."""

    def ref(im: Image) -> ImageRef:
        ds = im.header
        frame = None if im.frame is None else im.frame + 1
        return ImageRef(str(ds.get("SOPClassUID", "")), str(ds.get("SOPInstanceUID", "")), frame)

    multiframe = any(im.frame is not None for frames in per_slice for im in frames)
    firsts = [frames[0].header for frames in per_slice]
    headers = firsts[:1] if multiframe else firsts
    return SourceImages(
        headers=tuple(pixel_less(ds) for ds in headers),
        images=tuple(tuple(ref(im) for im in frames) for frames in per_slice),
        multiframe=multiframe,
    )


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
        transfer_syntax, slice_thickness_mm), the non-fatal problems found and
        ``source_images`` (the source headers the derived outputs reference).

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
    series = select_series(folder, _headers(folder, problems, workers), series_uid, problems)
    images = [im for f in series for im in f.images]
    check_geometry(images)
    centres = assign_slices(images)
    if len(images) == len(centres):
        raise InputError(folder, "one frame per slice position: not a perfusion (time) series")
    per_slice, times = order_frames(folder, images, centres, frame_interval, problems)
    check_decoders(series)
    meta = series_metadata(series[0].ds)
    frames = _read_pixels(per_slice, workers)
    affine = _affine(per_slice, centres, meta.get("slice_thickness_mm"), problems)
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
        source_images=_source_images(per_slice),
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
    check_decoders(files)
    meta = series_metadata(files[0].ds)
    data = _read_pixels(per_slice, workers)[..., 0]
    affine = _affine(per_slice, centres, meta.get("slice_thickness_mm"), problems)
    return Volume(data, affine, meta, problems)
