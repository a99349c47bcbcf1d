"""DICOM headers: where, when and how each image of a folder was acquired.

The header model shared by the readers: one `Image` per 2D image (a single-frame file or
one frame of an enhanced multi-frame CT file) with its position, orientation, pixel
spacing, candidate times and rescale; the folder listing and series metadata.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from ...errors import InputError
from .codecs import check_decoder, decoding_plugin
from .times import date_time, dt_seconds

__all__ = [
    "Image",
    "DicomFile",
    "read_header",
    "list_files",
    "map_threads",
    "label",
    "check_decoders",
    "series_metadata",
    "POSITION_TOL_MM",
    "TIME_SOURCES",
    "TIME_NAMES",
]

#: Files that may sit in a DICOM folder and are skipped (recorded in ``Study.problems``).
HARMLESS_NAMES = frozenset({"dicomdir", ".ds_store", "thumbs.db", "desktop.ini"})
HARMLESS_SUFFIXES = frozenset({".txt", ".json"})

#: Slice positions along the normal closer than this (mm) are one slice.
POSITION_TOL_MM = 0.05

TIME_SOURCES = ("acquisition", "content", "trigger")
TIME_NAMES = {
    "acquisition": "AcquisitionDateTime/AcquisitionTime",
    "content": "ContentTime",
    "trigger": "TriggerTime",
}


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
    rescale: Dataset  # holds the modality LUT / rescale of this image
    plugin: str = ""  # pydicom decoding plugin to ask for ("" lets pydicom choose)
    slice_pos: float = 0.0  # position along the series' slice normal (mm)
    slice_index: int = -1
    header: Dataset | None = None  # the file's header (pixel data not read)


def _classic_times(ds: Dataset) -> tuple[dict[str, float | None], bool]:
    dated = True
    acq = dt_seconds(ds.get("AcquisitionDateTime"))
    if acq is None:
        acq, dated = date_time(ds.get("AcquisitionDate"), ds.get("AcquisitionTime"))
    content, content_dated = date_time(ds.get("ContentDate"), ds.get("ContentTime"))
    trigger = ds.get("TriggerTime")
    trigger_s = float(trigger) / 1000.0 if trigger not in (None, "") else None
    times = {"acquisition": acq, "content": content, "trigger": trigger_s}
    return times, (dated if acq is not None else content_dated)


# ----------------------------------------------------------------------------- headers
def _floats(value: Any, n: int) -> np.ndarray | None:
    try:
        out = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return out if out.shape == (n,) else None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _classic_image(path: Path, ds: Dataset) -> Image | None:
    position = _floats(ds.get("ImagePositionPatient"), 3)
    orientation = _floats(ds.get("ImageOrientationPatient"), 6)
    spacing = _floats(ds.get("PixelSpacing"), 2)
    if position is None or orientation is None or spacing is None:
        return None
    times, dated = _classic_times(ds)
    return Image(
        path,
        None,
        position,
        orientation,
        spacing,
        (int(ds.get("Rows", 0)), int(ds.get("Columns", 0))),
        times,
        dated,
        _int_or_none(ds.get("InstanceNumber")),
        _int_or_none(ds.get("TemporalPositionIndex")),
        ds,
    )


def _group(ds: Dataset, i: int, name: str) -> Dataset | None:
    """Functional group ``name`` of frame ``i``: per-frame first, then shared."""
    for seq in (ds.PerFrameFunctionalGroupsSequence[i], shared_group(ds)):
        if seq is not None and name in seq and len(seq[name].value):
            return seq[name].value[0]
    return None


def shared_group(ds: Dataset) -> Dataset | None:
    shared = ds.get("SharedFunctionalGroupsSequence")
    return shared[0] if shared else None


def _enhanced_images(path: Path, ds: Dataset) -> list[Image]:
    """One `Image` per frame of an enhanced multi-frame CT file (functional groups)."""
    n = int(ds.get("NumberOfFrames", 1))
    if len(ds.PerFrameFunctionalGroupsSequence) != n:
        raise InputError(
            path,
            f"NumberOfFrames is {n} but there are "
            f"{len(ds.PerFrameFunctionalGroupsSequence)} per-frame functional groups",
        )
    images = []
    for i in range(n):
        plane = _group(ds, i, "PlanePositionSequence")
        orient = _group(ds, i, "PlaneOrientationSequence")
        measures = _group(ds, i, "PixelMeasuresSequence")
        content = _group(ds, i, "FrameContentSequence") or Dataset()
        pvt = _group(ds, i, "PixelValueTransformationSequence")
        position = _floats(plane.get("ImagePositionPatient") if plane else None, 3)
        orientation = _floats(orient.get("ImageOrientationPatient") if orient else None, 6)
        spacing = _floats(measures.get("PixelSpacing") if measures else None, 2)
        if position is None or orientation is None or spacing is None:
            raise InputError(
                path,
                f"frame {i + 1} lacks its plane position, orientation or "
                "pixel spacing (functional groups)",
            )
        acq = dt_seconds(content.get("FrameAcquisitionDateTime"))
        ref = dt_seconds(content.get("FrameReferenceDateTime"))
        rescale = Dataset()
        for key in ("RescaleSlope", "RescaleIntercept", "RescaleType"):
            value = pvt.get(key) if pvt is not None and key in pvt else ds.get(key)
            if value is not None:
                setattr(rescale, key, value)
        images.append(
            Image(
                path,
                i,
                position,
                orientation,
                spacing,
                (int(ds.get("Rows", 0)), int(ds.get("Columns", 0))),
                {"acquisition": acq, "content": ref, "trigger": None},
                True,
                _int_or_none(ds.get("InstanceNumber")),
                _int_or_none(content.get("TemporalPositionIndex")),
                rescale,
            )
        )
    return images


@dataclass
class DicomFile:
    """Header of one DICOM file and its images (empty when it has no usable geometry)."""

    path: Path
    ds: Dataset
    images: list[Image]
    defect: str | None = None  # why it has no images (an error only if its series is read)

    @property
    def series_uid(self) -> str:
        return str(self.ds.get("SeriesInstanceUID", "(no SeriesInstanceUID)"))


def read_header(path: Path) -> DicomFile:
    """Header pass over one file (no pixel data read); its images, if it holds any."""
    try:
        # defer_size: the pixel data are skipped now and read from the file by pydicom when
        # decoded, so each file's header is parsed once
        ds = pydicom.dcmread(str(path), defer_size=_DEFER_BYTES)
    except InvalidDicomError:
        raise InputError(
            path, "not a DICOM file (no 'DICM' marker after the 128-byte preamble)"
        ) from None
    except Exception as exc:  # pydicom raises many kinds on damaged files
        raise InputError(path, f"unreadable DICOM header ({type(exc).__name__}: {exc})") from exc
    if _is_image_storage(ds):
        _check_complete(path, ds)
    images: list[Image] = []
    defect = None
    if "PerFrameFunctionalGroupsSequence" in ds:
        try:
            images = _enhanced_images(path, ds)
        except InputError as exc:
            defect = exc.problem
    elif int(ds.get("NumberOfFrames", 1) or 1) > 1:
        defect = (
            "multi-frame image without per-frame functional groups: the positions and times "
            "of its frames are unknown"
        )
    else:
        image = _classic_image(path, ds)
        if image is None:
            defect = (
                "no ImagePositionPatient, ImageOrientationPatient or PixelSpacing: the image "
                "cannot be placed"
            )
        images = [] if image is None else [image]
    plugin = decoding_plugin(str(ds.file_meta.get("TransferSyntaxUID", "")))
    for image in images:
        image.plugin, image.header = plugin, ds
    return DicomFile(path, ds, images, defect)


#: Elements longer than this (bytes) are read only when used: the pixel data.
_DEFER_BYTES = 16384
_PIXEL_DATA = 0x7FE00010


def _check_complete(path: Path, ds: Dataset) -> None:
    """An image file cut short: pydicom stops silently at the end of the file."""
    pixels = ds.get_item(_PIXEL_DATA, keep_deferred=True)
    if pixels is None:
        raise InputError(path, "truncated: the file ends before its pixel data")
    tell = getattr(pixels, "value_tell", None)
    if pixels.value is None and tell is not None:  # deferred: its bytes must all be there
        size = os.stat(path).st_size
        if tell + pixels.length > size:
            raise InputError(
                path,
                f"truncated: the pixel data should have {pixels.length} bytes, the file "
                f"holds {max(0, size - tell)}",
            )


def _is_image_storage(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    sop = ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta else None)
    return bool(sop) and "Image Storage" in UID(str(sop)).name


def list_files(folder: Path, problems: list[str]) -> list[Path]:
    """Every file under ``folder`` (sorted); harmless non-image files are skipped."""
    if not folder.exists():
        raise InputError(folder, "does not exist")
    if folder.is_file():
        return [folder]
    paths = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            low = name.lower()
            if (
                low in HARMLESS_NAMES
                or Path(low).suffix in HARMLESS_SUFFIXES
                or low.startswith("._")
            ):
                problems.append(f"skipped {path.relative_to(folder)}: not image data")
                continue
            paths.append(path)
    if not paths:
        raise InputError(
            folder, "no DICOM files found (the folder is empty or holds only DICOMDIR/text files)"
        )
    return paths


def map_threads(fn, items, workers: int | None) -> list:
    workers = workers or min(4, os.cpu_count() or 1)
    if workers <= 1 or len(items) < 8:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def label(im: Image) -> str:
    return im.path.name + (f" frame {im.frame + 1}" if im.frame is not None else "")


def check_decoders(files: list[DicomFile]) -> None:
    """Fail before the pixel pass when a transfer syntax has no installed decoder."""
    seen: set[str] = set()
    for f in files:
        ts = str(f.ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(f.ds, "file_meta") else ""
        if ts and ts not in seen:
            seen.add(ts)
            check_decoder(f.path, ts)


def _value(ds: Dataset, key: str, *groups: str) -> Any:
    """``key`` from the dataset, else from the named shared functional groups."""
    if ds.get(key) not in (None, ""):
        return ds.get(key)
    shared = shared_group(ds)
    for name in groups:
        if shared is not None and name in shared and len(shared[name].value):
            item = shared[name].value[0]
            if item.get(key) not in (None, ""):
                return item.get(key)
    return None


def series_metadata(ds: Dataset) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key, tag in (
        ("series_description", "SeriesDescription"),
        ("patient_id", "PatientID"),
        ("patient_name", "PatientName"),
        ("patient_birth_date", "PatientBirthDate"),
        ("patient_sex", "PatientSex"),
        ("study_instance_uid", "StudyInstanceUID"),
        ("series_instance_uid", "SeriesInstanceUID"),
        ("frame_of_reference_uid", "FrameOfReferenceUID"),
        ("modality", "Modality"),
        ("manufacturer", "Manufacturer"),
    ):
        if ds.get(tag) not in (None, ""):
            meta[key] = str(ds.get(tag))
    for key, tag, groups in (
        ("kvp", "KVP", ("CTXRayDetailsSequence",)),
        ("exposure_mas", "Exposure", ()),
        ("exposure_mas", "ExposureInmAs", ("CTExposureSequence",)),
        ("slice_thickness_mm", "SliceThickness", ("PixelMeasuresSequence",)),
    ):
        value = _value(ds, tag, *groups)
        if key not in meta and value is not None:
            meta[key] = float(value)
    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if ts:
        meta["transfer_syntax"] = str(ts)
    return meta
