"""Series metadata: what a study records of its acquisition, read from its first file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from .values import MISSING, number, raw, sequence, text

__all__ = ["series_metadata"]

#: Metadata key -> text attribute.
_TEXT = (
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
)

#: Metadata key -> numeric attribute, the shared functional groups holding it in enhanced
#: files, and its plausible range (physical units: kV, mAs, mm, HU).
_NUMBERS = (
    ("kvp", "KVP", ("CTXRayDetailsSequence",), (1.0, 1000.0)),
    ("exposure_mas", "Exposure", (), (0.0, 1e5)),
    ("exposure_mas", "ExposureInmAs", ("CTExposureSequence",), (0.0, 1e5)),
    ("slice_thickness_mm", "SliceThickness", ("PixelMeasuresSequence",), (0.0, 1000.0)),
    ("window_center_hu", "WindowCenter", ("FrameVOILUTSequence",), (-1e5, 1e5)),
    ("window_width_hu", "WindowWidth", ("FrameVOILUTSequence",), (0.0, 1e6)),
)


def _holder(ds: Dataset, keyword: str, groups: tuple[str, ...], path: Path) -> Dataset | None:
    """``ds`` when it holds ``keyword``, else the shared functional group that does."""
    if raw(ds, keyword, path) is not MISSING:
        return ds
    shared = sequence(ds, "SharedFunctionalGroupsSequence", path)
    for name in groups if shared else ():
        items = sequence(shared[0], name, path)
        if items and raw(items[0], keyword, path) is not MISSING:
            return items[0]
    return None


def series_metadata(path: Path, ds: Dataset) -> dict[str, Any]:
    """Metadata of the series whose file ``path`` holds ``ds``; missing items absent.

    Raises
    ------
    InputError
        A malformed value (naming the file and the tag): text that does not decode, a
        number that is not one, several where one is expected, non-finite or out of range.
    """
    meta: dict[str, Any] = {}
    for key, keyword in _TEXT:
        value = text(ds, keyword, path)
        if value:
            meta[key] = value
    for key, keyword, groups, (low, high) in _NUMBERS:
        holder = _holder(ds, keyword, groups, path)
        if key not in meta and holder is not None:
            first = keyword.startswith("Window")  # one value per display window: the first
            meta[key] = number(holder, keyword, path, low=low, high=high, first=first)
    syntax = text(ds.file_meta, "TransferSyntaxUID", path) if hasattr(ds, "file_meta") else ""
    if syntax:
        meta["transfer_syntax"] = syntax
    return meta
